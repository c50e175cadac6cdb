package config

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/weftmesh/weft/internal/registry"
)

// HTTPRoute and GRPCRoute are Gateway API's, for mesh traffic as GAMMA
// defines it: the parent is the destination service (parentRefs of kind
// Service), and a request to that service is routed by the route's
// rules. Their specs are the upstream Go types (sigs.k8s.io/gateway-api),
// so the shape check knows every field Gateway API has; what this
// version of Weft does not follow is refused by name.

// ServiceSubset names the instances of a service that carry some labels,
// for a route's backendRef (group weftmesh.io, kind ServiceSubset):
// Gateway API routes to whole services, and a canary is often the same
// service's instances with another version label.
type ServiceSubset struct {
	Service string            `json:"service"`
	Labels  map[string]string `json:"labels"`
}

// WeftGroup is the API group of Weft's kinds in a reference.
const WeftGroup = "weftmesh.io"

func validateServiceSubset(spec json.RawMessage) *FieldError {
	var s ServiceSubset
	if fe := decodeSpec(spec, &s); fe != nil {
		return fe
	}
	if err := registry.ValidName(s.Service); err != nil {
		return &FieldError{Field: "spec.service", Msg: err.Error()}
	}
	if len(s.Labels) == 0 {
		return &FieldError{Field: "spec.labels", Msg: "needs at least one label: the instances that carry all of them are the subset"}
	}
	return validateLabels("spec.labels", s.Labels)
}

// DecodeServiceSubset reads the spec of a validated ServiceSubset.
func DecodeServiceSubset(r *Resource) (ServiceSubset, error) {
	var s ServiceSubset
	err := json.Unmarshal(r.Spec, &s)
	return s, err
}

// RouteRule is one match of one rule of a route, as the data path
// matches it: every field given must match (an empty one matches
// anything). A rule with no matches is one RouteRule that matches every
// request.
type RouteRule struct {
	Route    string // HTTPRoute/NAME or GRPCRoute/NAME
	Rule     int    // index in spec.rules
	RuleName string // spec.rules[i].name, if given
	Match    int    // index in spec.rules[i].matches; -1: the rule has none
	GRPC     bool   // from a GRPCRoute: matches gRPC calls only
	// PathType is Exact, PathPrefix or RegularExpression; Path its value.
	PathType string
	Path     string
	Method   string
	Headers  []ValueMatch
	Query    []ValueMatch
	// Backends are where matching requests go, by weight; none: to the
	// parent service itself (GAMMA).
	Backends []RouteBackend
}

// ValueMatch is a header or query parameter match.
type ValueMatch struct {
	Name  string
	Value string // the value, or a regular expression (RE2)
	Regex bool
}

// RouteBackend is one backendRef: a service, or a subset of one.
type RouteBackend struct {
	Service string
	Subset  string // a ServiceSubset's name ("": the whole service)
	Weight  int
}

// Path match types, as Gateway API names them.
const (
	PathExact  = string(gwv1.PathMatchExact)
	PathPrefix = string(gwv1.PathMatchPathPrefix)
	PathRegex  = string(gwv1.PathMatchRegularExpression)
)

// maxWeight is Gateway API's bound on a backend's weight.
const maxWeight = 1000000

var methods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete,
	http.MethodConnect, http.MethodOptions, http.MethodTrace, http.MethodPatch}

func validateHTTPRoute(spec json.RawMessage) *FieldError {
	_, _, fe := compileHTTPRoute("", spec)
	return fe
}

func validateGRPCRoute(spec json.RawMessage) *FieldError {
	_, _, fe := compileGRPCRoute("", spec)
	return fe
}

// CompileRoute turns a validated HTTPRoute or GRPCRoute into the
// services it attaches to and its rules.
func CompileRoute(r *Resource) (parents []string, rules []RouteRule, err error) {
	var fe *FieldError
	switch r.Kind {
	case "HTTPRoute":
		parents, rules, fe = compileHTTPRoute(r.Ref(), r.Spec)
	case "GRPCRoute":
		parents, rules, fe = compileGRPCRoute(r.Ref(), r.Spec)
	default:
		return nil, nil, fmt.Errorf("%s is not a route", r.Ref())
	}
	if fe != nil {
		fe.Ref = r.Ref()
		return nil, nil, fe
	}
	return parents, rules, nil
}

func compileHTTPRoute(ref string, spec json.RawMessage) ([]string, []RouteRule, *FieldError) {
	var s gwv1.HTTPRouteSpec
	if fe := decodeSpec(spec, &s); fe != nil {
		return nil, nil, fe
	}
	parents, fe := checkParents(s.CommonRouteSpec)
	if fe != nil {
		return nil, nil, fe
	}
	var out []RouteRule
	for i, rule := range s.Rules {
		at := fmt.Sprintf("spec.rules[%d]", i)
		switch {
		case len(rule.Filters) > 0:
			return nil, nil, notYet(at+".filters", "filters")
		case rule.Timeouts != nil:
			return nil, nil, notYet(at+".timeouts", "per-route timeouts (a TrafficPolicy's timeouts are)")
		case rule.Retry != nil:
			return nil, nil, notYet(at+".retry", "per-route retries (a TrafficPolicy's retries are)")
		case rule.SessionPersistence != nil:
			return nil, nil, notYet(at+".sessionPersistence", "session persistence (a TrafficPolicy's ring-hash on a cookie is)")
		}
		backends := make([]RouteBackend, 0, len(rule.BackendRefs))
		for j, b := range rule.BackendRefs {
			if len(b.Filters) > 0 {
				return nil, nil, notYet(fmt.Sprintf("%s.backendRefs[%d].filters", at, j), "filters")
			}
			rb, fe := checkBackend(b.BackendRef, fmt.Sprintf("%s.backendRefs[%d]", at, j))
			if fe != nil {
				return nil, nil, fe
			}
			backends = append(backends, rb)
		}
		base := RouteRule{Route: ref, Rule: i, Match: -1, Backends: backends}
		if rule.Name != nil {
			base.RuleName = string(*rule.Name)
		}
		if len(rule.Matches) == 0 {
			base.PathType, base.Path = PathPrefix, "/"
			out = append(out, base)
			continue
		}
		for j, m := range rule.Matches {
			rr := base
			rr.Match = j
			if fe := checkHTTPMatch(&rr, m, fmt.Sprintf("%s.matches[%d]", at, j)); fe != nil {
				return nil, nil, fe
			}
			out = append(out, rr)
		}
	}
	if len(s.Rules) == 0 {
		// Gateway API's default: one rule that matches every request and
		// sends it on (to the parent, in a mesh).
		out = append(out, RouteRule{Route: ref, Match: -1, PathType: PathPrefix, Path: "/"})
	}
	return parents, out, nil
}

func compileGRPCRoute(ref string, spec json.RawMessage) ([]string, []RouteRule, *FieldError) {
	var s gwv1.GRPCRouteSpec
	if fe := decodeSpec(spec, &s); fe != nil {
		return nil, nil, fe
	}
	parents, fe := checkParents(s.CommonRouteSpec)
	if fe != nil {
		return nil, nil, fe
	}
	var out []RouteRule
	for i, rule := range s.Rules {
		at := fmt.Sprintf("spec.rules[%d]", i)
		switch {
		case len(rule.Filters) > 0:
			return nil, nil, notYet(at+".filters", "filters")
		case rule.SessionPersistence != nil:
			return nil, nil, notYet(at+".sessionPersistence", "session persistence")
		}
		backends := make([]RouteBackend, 0, len(rule.BackendRefs))
		for j, b := range rule.BackendRefs {
			if len(b.Filters) > 0 {
				return nil, nil, notYet(fmt.Sprintf("%s.backendRefs[%d].filters", at, j), "filters")
			}
			rb, fe := checkBackend(b.BackendRef, fmt.Sprintf("%s.backendRefs[%d]", at, j))
			if fe != nil {
				return nil, nil, fe
			}
			backends = append(backends, rb)
		}
		base := RouteRule{Route: ref, Rule: i, Match: -1, GRPC: true, Backends: backends, PathType: PathPrefix, Path: "/"}
		if rule.Name != nil {
			base.RuleName = string(*rule.Name)
		}
		if len(rule.Matches) == 0 {
			out = append(out, base)
			continue
		}
		for j, m := range rule.Matches {
			rr := base
			rr.Match = j
			if fe := checkGRPCMatch(&rr, m, fmt.Sprintf("%s.matches[%d]", at, j)); fe != nil {
				return nil, nil, fe
			}
			out = append(out, rr)
		}
	}
	if len(s.Rules) == 0 {
		out = append(out, RouteRule{Route: ref, Match: -1, GRPC: true, PathType: PathPrefix, Path: "/"})
	}
	return parents, out, nil
}

func notYet(field, what string) *FieldError {
	return &FieldError{Field: field, Msg: what + " are not followed by this version of Weft yet; leave them out"}
}

// checkParents reads parentRefs: mesh services (group "" or core, kind
// Service), as GAMMA attaches a route.
func checkParents(c gwv1.CommonRouteSpec) ([]string, *FieldError) {
	if c.UseDefaultGateways != "" {
		return nil, &FieldError{Field: "spec.useDefaultGateways", Msg: "names gateways; a mesh route's parents are services (parentRefs of kind Service)"}
	}
	if len(c.ParentRefs) == 0 {
		return nil, &FieldError{Field: "spec.parentRefs", Msg: "needs at least one parent: the service whose requests the route routes (kind: Service, group: \"\")"}
	}
	var out []string
	for i, p := range c.ParentRefs {
		at := fmt.Sprintf("spec.parentRefs[%d]", i)
		if p.Kind == nil || *p.Kind != "Service" {
			got := "Gateway, the default"
			if p.Kind != nil {
				got = string(*p.Kind)
			}
			return nil, &FieldError{Field: at + ".kind", Msg: fmt.Sprintf("is %s; a mesh route's parent is a service: kind: Service, group: \"\"", got)}
		}
		if p.Group == nil || (*p.Group != "" && *p.Group != "core") {
			got := "gateway.networking.k8s.io, the default"
			if p.Group != nil {
				got = fmt.Sprintf("%q", *p.Group)
			}
			return nil, &FieldError{Field: at + ".group", Msg: fmt.Sprintf("is %s; a Service's group is \"\" (core)", got)}
		}
		if p.SectionName != nil {
			return nil, &FieldError{Field: at + ".sectionName", Msg: "a mesh service has no sections; leave it out (port may name the service's port)"}
		}
		if err := registry.ValidName(string(p.Name)); err != nil {
			return nil, &FieldError{Field: at + ".name", Msg: err.Error()}
		}
		if !slices.Contains(out, string(p.Name)) {
			out = append(out, string(p.Name))
		}
	}
	return out, nil
}

// checkBackend reads one backendRef: a Service (the default kind), or a
// ServiceSubset of group weftmesh.io.
func checkBackend(b gwv1.BackendRef, at string) (RouteBackend, *FieldError) {
	group, kind := "", "Service"
	if b.Group != nil {
		group = string(*b.Group)
	}
	if b.Kind != nil {
		kind = string(*b.Kind)
	}
	rb := RouteBackend{Weight: 1}
	switch {
	case (group == "" || group == "core") && kind == "Service":
		rb.Service = string(b.Name)
	case group == WeftGroup && kind == "ServiceSubset":
		rb.Subset = string(b.Name)
	default:
		return rb, &FieldError{Field: at + ".kind", Msg: fmt.Sprintf("%s of group %q is not a backend Weft knows: a Service (group \"\") or a ServiceSubset (group %s)", kind, group, WeftGroup)}
	}
	if err := registry.ValidName(string(b.Name)); err != nil {
		return rb, &FieldError{Field: at + ".name", Msg: err.Error()}
	}
	if b.Weight != nil {
		if *b.Weight < 0 || *b.Weight > maxWeight {
			return rb, &FieldError{Field: at + ".weight", Msg: fmt.Sprintf("%d must be between 0 and %d", *b.Weight, maxWeight)}
		}
		rb.Weight = int(*b.Weight)
	}
	return rb, nil
}

func checkHTTPMatch(rr *RouteRule, m gwv1.HTTPRouteMatch, at string) *FieldError {
	rr.PathType, rr.Path = PathPrefix, "/"
	if p := m.Path; p != nil {
		if p.Type != nil {
			rr.PathType = string(*p.Type)
		}
		if p.Value != nil {
			rr.Path = *p.Value
		}
		switch rr.PathType {
		case PathExact, PathPrefix:
			if !strings.HasPrefix(rr.Path, "/") {
				return &FieldError{Field: at + ".path.value", Msg: fmt.Sprintf("%q must begin with /", rr.Path)}
			}
			if strings.ContainsAny(rr.Path, "?#") {
				return &FieldError{Field: at + ".path.value", Msg: fmt.Sprintf("%q is a path: no query (?) or fragment (#); match a query with queryParams", rr.Path)}
			}
		case PathRegex:
			if _, err := regexp.Compile(rr.Path); err != nil {
				return &FieldError{Field: at + ".path.value", Msg: fmt.Sprintf("%q is not a regular expression (RE2): %v", rr.Path, regexErr(err))}
			}
		default:
			return &FieldError{Field: at + ".path.type", Msg: fmt.Sprintf("%q must be Exact, PathPrefix or RegularExpression", rr.PathType)}
		}
	}
	if m.Method != nil {
		if !slices.Contains(methods, string(*m.Method)) {
			return &FieldError{Field: at + ".method", Msg: fmt.Sprintf("%q is not one of %s", *m.Method, strings.Join(methods, ", "))}
		}
		rr.Method = string(*m.Method)
	}
	for k, h := range m.Headers {
		vm, fe := valueMatch(string(h.Name), h.Value, (*string)(h.Type), fmt.Sprintf("%s.headers[%d]", at, k), rr.Headers, true)
		if fe != nil {
			return fe
		}
		rr.Headers = append(rr.Headers, vm)
	}
	for k, q := range m.QueryParams {
		vm, fe := valueMatch(string(q.Name), q.Value, (*string)(q.Type), fmt.Sprintf("%s.queryParams[%d]", at, k), rr.Query, false)
		if fe != nil {
			return fe
		}
		rr.Query = append(rr.Query, vm)
	}
	return nil
}

// checkGRPCMatch turns a gRPC method match into the path it matches
// (/service/method) and reads its headers.
func checkGRPCMatch(rr *RouteRule, m gwv1.GRPCRouteMatch, at string) *FieldError {
	if mm := m.Method; mm != nil {
		typ := string(gwv1.GRPCMethodMatchExact)
		if mm.Type != nil {
			typ = string(*mm.Type)
		}
		var svc, meth string
		if mm.Service != nil {
			svc = *mm.Service
		}
		if mm.Method != nil {
			meth = *mm.Method
		}
		if svc == "" && meth == "" {
			return &FieldError{Field: at + ".method", Msg: "needs service, method or both"}
		}
		switch typ {
		case string(gwv1.GRPCMethodMatchExact):
			for _, f := range []struct{ name, v string }{{"service", svc}, {"method", meth}} {
				if strings.ContainsAny(f.v, "/ ") {
					return &FieldError{Field: at + ".method." + f.name, Msg: fmt.Sprintf("%q must not contain / or spaces", f.v)}
				}
			}
			switch {
			case svc != "" && meth != "":
				rr.PathType, rr.Path = PathExact, "/"+svc+"/"+meth
			case svc != "":
				rr.PathType, rr.Path = PathPrefix, "/"+svc
			default:
				rr.PathType, rr.Path = PathRegex, "/[^/]+/"+regexp.QuoteMeta(meth)
			}
		case string(gwv1.GRPCMethodMatchRegularExpression):
			for _, f := range []struct{ name, v string }{{"service", svc}, {"method", meth}} {
				if _, err := regexp.Compile(f.v); err != nil {
					return &FieldError{Field: at + ".method." + f.name, Msg: fmt.Sprintf("%q is not a regular expression (RE2): %v", f.v, regexErr(err))}
				}
			}
			if svc == "" {
				svc = "[^/]+"
			}
			if meth == "" {
				meth = "[^/]+"
			}
			rr.PathType, rr.Path = PathRegex, "/(?:"+svc+")/(?:"+meth+")"
		default:
			return &FieldError{Field: at + ".method.type", Msg: fmt.Sprintf("%q must be Exact or RegularExpression", typ)}
		}
	}
	for k, h := range m.Headers {
		vm, fe := valueMatch(string(h.Name), h.Value, (*string)(h.Type), fmt.Sprintf("%s.headers[%d]", at, k), rr.Headers, true)
		if fe != nil {
			return fe
		}
		rr.Headers = append(rr.Headers, vm)
	}
	return nil
}

// valueMatch reads a header (fold: names in any case) or query match.
func valueMatch(name, value string, typ *string, at string, seen []ValueMatch, fold bool) (ValueMatch, *FieldError) {
	vm := ValueMatch{Name: name, Value: value}
	if name == "" || strings.ContainsAny(name, " \t:=&?") {
		return vm, &FieldError{Field: at + ".name", Msg: fmt.Sprintf("%q is not a field name", name)}
	}
	if fold {
		vm.Name = strings.ToLower(name)
	}
	for _, s := range seen {
		if s.Name == vm.Name {
			return vm, &FieldError{Field: at + ".name", Msg: fmt.Sprintf("%q is matched already in this match: Gateway API takes the first, so write one", name)}
		}
	}
	t := "Exact"
	if typ != nil {
		t = *typ
	}
	switch t {
	case "Exact":
	case "RegularExpression":
		if _, err := regexp.Compile(value); err != nil {
			return vm, &FieldError{Field: at + ".value", Msg: fmt.Sprintf("%q is not a regular expression (RE2): %v", value, regexErr(err))}
		}
		vm.Regex = true
	default:
		return vm, &FieldError{Field: at + ".type", Msg: fmt.Sprintf("%q must be Exact or RegularExpression", t)}
	}
	return vm, nil
}

// regexErr is a regexp error without the repeated expression.
func regexErr(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "error parsing regexp: ")
	return s
}
