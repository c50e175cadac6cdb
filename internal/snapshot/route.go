package snapshot

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/weftmesh/weft/internal/config"
)

// Route is one match of one rule of an HTTPRoute or GRPCRoute whose
// parent is the service, with its backends' subsets resolved.
type Route struct {
	config.RouteRule
	// Backends are the rule's backends (RouteRule.Backends, resolved);
	// none: the parent service itself.
	Backends []Backend
	// Faults are the rule's Fault resources, resolved; InvalidFault says
	// why one cannot be used (it does not exist): then every request the
	// rule matches gets 500, as Gateway API asks of a filter it cannot
	// follow.
	Faults       []Fault
	InvalidFault string
	// Mirrors are the rule's RequestMirror filters, resolved.
	Mirrors []Mirror
}

// Mirror is where a rule copies a share of its requests to.
type Mirror struct {
	Backend Backend // Weight unused
	Percent float64
}

// Fault is a Fault resource, parsed.
type Fault struct {
	Name         string
	Delay        time.Duration
	DelayPercent float64
	AbortHTTP    int // 0: none
	AbortGRPC    int // 0: none (for gRPC calls, else AbortHTTP)
	AbortPercent float64
}

// Backend is one weighted backend of a route rule.
type Backend struct {
	Service string
	// Subset is the ServiceSubset's name, and Labels the labels its
	// instances carry ("" and nil: the whole service).
	Subset string
	Labels map[string]string
	Weight int
	// Invalid says why the backend cannot take requests (a ServiceSubset
	// that does not exist); its share of the requests gets 500.
	Invalid string
	// RequestHeaders and ResponseHeaders are the backendRef's header
	// modifiers (nil: none).
	RequestHeaders, ResponseHeaders *config.HeaderModifier
}

// routeRecord is a decoded HTTPRoute or GRPCRoute.
type routeRecord struct {
	parents []string
	rules   []config.RouteRule
}

// faultRecord is a decoded Fault.
type faultRecord struct{ fault Fault }

func decodeFault(raw []byte) (faultRecord, error) {
	r, err := config.Decode(raw, 0)
	if err != nil {
		return faultRecord{}, fmt.Errorf("malformed resource: %w", err)
	}
	if err := r.Validate(); err != nil {
		return faultRecord{}, err
	}
	f, delay, err := config.DecodeFault(&r)
	if err != nil {
		return faultRecord{}, err
	}
	out := Fault{Name: r.Metadata.Name}
	if f.Delay != nil {
		out.Delay, out.DelayPercent = delay, f.Delay.Percent
	}
	if a := f.Abort; a != nil {
		out.AbortHTTP, out.AbortPercent = a.HTTPStatus, a.Percent
		if a.GRPCStatus != nil {
			out.AbortGRPC = *a.GRPCStatus
		}
	}
	return faultRecord{fault: out}, nil
}

// subsetRecord is a decoded ServiceSubset.
type subsetRecord struct {
	name string
	spec config.ServiceSubset
}

func decodeRoute(key string, raw []byte) (routeRecord, error) {
	r, err := config.Decode(raw, 0)
	if err != nil {
		return routeRecord{}, fmt.Errorf("malformed resource: %w", err)
	}
	if key != config.Key(r.Kind, r.Metadata.Name) {
		return routeRecord{}, fmt.Errorf("resource %s is not the one of its key", r.Ref())
	}
	if err := r.Validate(); err != nil {
		return routeRecord{}, err
	}
	parents, rules, err := config.CompileRoute(&r)
	if err != nil {
		return routeRecord{}, err
	}
	return routeRecord{parents: parents, rules: rules}, nil
}

func decodeSubset(raw []byte) (subsetRecord, error) {
	r, err := config.Decode(raw, 0)
	if err != nil {
		return subsetRecord{}, fmt.Errorf("malformed resource: %w", err)
	}
	if err := r.Validate(); err != nil {
		return subsetRecord{}, err
	}
	s, err := config.DecodeServiceSubset(&r)
	if err != nil {
		return subsetRecord{}, fmt.Errorf("malformed ServiceSubset: %w", err)
	}
	return subsetRecord{name: r.Metadata.Name, spec: s}, nil
}

// resolveRoutes gives each route's parent service its rules, in
// precedence order, with subsets resolved; a parent the mesh does not
// list otherwise becomes a service with no instances of its own.
func resolveRoutes(routes []routeRecord, subsets map[string]config.ServiceSubset, faults map[string]Fault, service func(string) *Service) {
	for _, rr := range routes {
		for _, parent := range rr.parents {
			s := service(parent)
			for _, rule := range rr.rules {
				r := Route{RouteRule: rule}
				for _, b := range rule.Backends {
					r.Backends = append(r.Backends, resolveBackend(b, subsets))
				}
				for _, m := range rule.Mirrors {
					r.Mirrors = append(r.Mirrors, Mirror{Backend: resolveBackend(m.Backend, subsets), Percent: m.Percent})
				}
				for _, name := range rule.Faults {
					if f, ok := faults[name]; ok {
						r.Faults = append(r.Faults, f)
					} else if r.InvalidFault == "" {
						r.InvalidFault = fmt.Sprintf("Fault/%s does not exist", name)
					}
				}
				s.Routes = append(s.Routes, r)
			}
		}
	}
}

// resolveBackend is b with its ServiceSubset's service and labels.
func resolveBackend(b config.RouteBackend, subsets map[string]config.ServiceSubset) Backend {
	rb := Backend{Service: b.Service, Subset: b.Subset, Weight: b.Weight, RequestHeaders: b.RequestHeaders, ResponseHeaders: b.ResponseHeaders}
	if b.Subset != "" {
		if ss, ok := subsets[b.Subset]; ok {
			rb.Service, rb.Labels = ss.Service, ss.Labels
		} else {
			rb.Invalid = fmt.Sprintf("ServiceSubset/%s does not exist", b.Subset)
		}
	}
	return rb
}

// sortRoutes orders rules as Gateway API's precedence does: gRPC rules
// first (they match gRPC calls only), then an Exact path before a
// prefix, a longer prefix before a shorter, prefixes before regular
// expressions, a method match before none, more header matches before
// fewer, more query matches before fewer; ties by route name (Gateway
// API's creation time, which Weft does not keep, comes first there),
// then rule and match order.
func sortRoutes(rs []Route) {
	rank := func(t string) int {
		switch t {
		case config.PathExact:
			return 0
		case config.PathPrefix:
			return 1
		}
		return 2
	}
	slices.SortStableFunc(rs, func(a, b Route) int {
		if a.GRPC != b.GRPC {
			if a.GRPC {
				return -1
			}
			return 1
		}
		if c := cmp.Compare(rank(a.PathType), rank(b.PathType)); c != 0 {
			return c
		}
		if a.PathType != config.PathRegex {
			if c := cmp.Compare(pathLen(&b.RouteRule), pathLen(&a.RouteRule)); c != 0 {
				return c
			}
		}
		if (a.Method != "") != (b.Method != "") {
			if a.Method != "" {
				return -1
			}
			return 1
		}
		if c := cmp.Compare(len(b.Headers), len(a.Headers)); c != 0 {
			return c
		}
		if c := cmp.Compare(len(b.Query), len(a.Query)); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Route, b.Route); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Rule, b.Rule); c != 0 {
			return c
		}
		return cmp.Compare(a.Match, b.Match)
	})
}

// pathLen is the length of a rule's path for precedence: a PathPrefix's
// trailing / does not count (it matches what the prefix without it does).
func pathLen(r *config.RouteRule) int {
	if r.PathType == config.PathPrefix {
		return len(strings.TrimSuffix(r.Path, "/"))
	}
	return len(r.Path)
}
