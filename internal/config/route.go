package config

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

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
	// Faults are the Fault resources the rule's ExtensionRef filters name.
	Faults []string
	// RequestHeaders and ResponseHeaders are the rule's
	// RequestHeaderModifier and ResponseHeaderModifier filters.
	RequestHeaders, ResponseHeaders *HeaderModifier
	// Mirrors are the rule's RequestMirror filters: services (or
	// subsets) a share of its requests is copied to.
	Mirrors []RouteMirror
	// Rewrite and Redirect are the rule's URLRewrite and RequestRedirect
	// filters (nil: none; never both).
	Rewrite  *RouteRewrite
	Redirect *RouteRedirect
	// Timeouts and Retry override the backends' TrafficPolicy for
	// requests this rule routes (Gateway API's timeouts and retry).
	Timeouts *RouteTimeouts
	Retry    *RouteRetry
}

// HeaderModifier sets (replacing every value), adds and removes header
// fields; names are lower case.
type HeaderModifier struct {
	Set, Add []HeaderValue
	Remove   []string
}

// RouteMirror is one RequestMirror filter: Backend (its Weight unused)
// gets a copy of Percent of the requests (0 to 100).
type RouteMirror struct {
	Backend RouteBackend
	Percent float64
}

// HeaderValue is one header field.
type HeaderValue struct{ Name, Value string }

// RouteTimeouts is a rule's timeouts: Request bounds the whole request,
// retries included; Backend each try (0: none; a field not given keeps
// the policy's).
type RouteTimeouts struct {
	Request, Backend       time.Duration
	HasRequest, HasBackend bool
}

// RouteRetry is a rule's retry: Attempts retries (so Attempts+1 tries)
// on connect failures, resets and the Codes, waiting Backoff at least.
type RouteRetry struct {
	Codes    []int
	Attempts int // -1: the policy's
	Backoff  time.Duration
}

// Fault is a fault a route injects into a share of the requests it
// routes: a delay before the request is sent, an abort that answers it
// at once, or both (the delay first), each for its own percent.
type Fault struct {
	Delay *FaultDelay `json:"delay,omitempty"`
	Abort *FaultAbort `json:"abort,omitempty"`
}

// FaultDelay holds a share of requests back before they are sent.
type FaultDelay struct {
	FixedDelay string  `json:"fixedDelay"`
	Percent    float64 `json:"percent"`
}

// FaultAbort answers a share of requests without sending them: with
// HTTPStatus, or for gRPC calls with GRPCStatus when given.
type FaultAbort struct {
	HTTPStatus int     `json:"httpStatus,omitempty"`
	GRPCStatus *int    `json:"grpcStatus,omitempty"`
	Percent    float64 `json:"percent"`
}

func validateFault(spec json.RawMessage) *FieldError {
	_, fe := decodeFault(spec)
	return fe
}

// DecodeFault reads the spec of a validated Fault, its delay parsed.
func DecodeFault(r *Resource) (Fault, time.Duration, error) {
	f, fe := decodeFault(r.Spec)
	if fe != nil {
		return Fault{}, 0, fe
	}
	var d time.Duration
	if f.Delay != nil {
		d, _ = time.ParseDuration(f.Delay.FixedDelay)
	}
	return f, d, nil
}

func decodeFault(spec json.RawMessage) (Fault, *FieldError) {
	var f Fault
	if fe := decodeSpec(spec, &f); fe != nil {
		return f, fe
	}
	if f.Delay == nil && f.Abort == nil {
		return f, &FieldError{Field: "spec", Msg: "needs a delay, an abort or both"}
	}
	if d := f.Delay; d != nil {
		v, err := time.ParseDuration(d.FixedDelay)
		if err != nil || v <= 0 {
			return f, &FieldError{Field: "spec.delay.fixedDelay", Msg: fmt.Sprintf("%q must be a duration above 0, e.g. 2s or 250ms", d.FixedDelay)}
		}
		if fe := between("spec.delay.percent", d.Percent, 0, 100); fe != nil {
			return f, fe
		}
	}
	if a := f.Abort; a != nil {
		if a.HTTPStatus == 0 && a.GRPCStatus == nil {
			return f, &FieldError{Field: "spec.abort", Msg: "needs httpStatus, grpcStatus or both"}
		}
		if a.HTTPStatus != 0 && (a.HTTPStatus < 200 || a.HTTPStatus > 599) {
			return f, &FieldError{Field: "spec.abort.httpStatus", Msg: fmt.Sprintf("%d must be between 200 and 599", a.HTTPStatus)}
		}
		if g := a.GRPCStatus; g != nil && (*g < 1 || *g > 16) {
			return f, &FieldError{Field: "spec.abort.grpcStatus", Msg: fmt.Sprintf("%d must be a gRPC status from 1 to 16 (0 is OK, which is no abort)", *g)}
		}
		if fe := between("spec.abort.percent", a.Percent, 0, 100); fe != nil {
			return f, fe
		}
	}
	return f, nil
}

// ValueMatch is a header or query parameter match.
type ValueMatch struct {
	Name  string
	Value string // the value, or a regular expression (RE2)
	Regex bool
}

// Describe is what the rule matches, as weft shows it: "PathPrefix
// /api, GET, header x-user=beta".
func (r *RouteRule) Describe() string {
	parts := []string{r.PathType + " " + r.Path}
	if r.GRPC {
		parts = append(parts, "gRPC")
	}
	if r.Method != "" {
		parts = append(parts, r.Method)
	}
	for _, h := range r.Headers {
		parts = append(parts, "header "+h.String())
	}
	for _, q := range r.Query {
		parts = append(parts, "query "+q.String())
	}
	return strings.Join(parts, ", ")
}

// String is the match as weft shows it: name=value, or name~regex.
func (m ValueMatch) String() string {
	if m.Regex {
		return m.Name + "~" + m.Value
	}
	return m.Name + "=" + m.Value
}

// RouteBackend is one backendRef: a service, or a subset of one.
type RouteBackend struct {
	Service string
	Subset  string // a ServiceSubset's name ("": the whole service)
	Weight  int
	// RequestHeaders and ResponseHeaders are the backendRef's own
	// header modifiers, applied after the rule's to the requests it takes.
	RequestHeaders, ResponseHeaders *HeaderModifier
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
		if rule.SessionPersistence != nil {
			return nil, nil, notYet(at+".sessionPersistence", "session persistence (a TrafficPolicy's ring-hash on a cookie is)")
		}
		filters, fe := checkFilters(rule.Filters, at)
		if fe != nil {
			return nil, nil, fe
		}
		timeouts, fe := checkRouteTimeouts(rule.Timeouts, at+".timeouts")
		if fe != nil {
			return nil, nil, fe
		}
		retry, fe := checkRouteRetry(rule.Retry, at+".retry")
		if fe != nil {
			return nil, nil, fe
		}
		backends := make([]RouteBackend, 0, len(rule.BackendRefs))
		for j, b := range rule.BackendRefs {
			bat := fmt.Sprintf("%s.backendRefs[%d]", at, j)
			rb, fe := checkBackend(b.BackendRef, bat)
			if fe != nil {
				return nil, nil, fe
			}
			if fe := checkBackendFilters(&rb, b.Filters, bat); fe != nil {
				return nil, nil, fe
			}
			backends = append(backends, rb)
		}
		if filters.redirect != nil && len(backends) > 0 {
			return nil, nil, &FieldError{Field: at + ".backendRefs", Msg: "a rule with a RequestRedirect answers itself: it takes no backendRefs"}
		}
		base := RouteRule{Route: ref, Rule: i, Match: -1, Backends: backends, Faults: filters.faults, Timeouts: timeouts, Retry: retry,
			RequestHeaders: filters.request, ResponseHeaders: filters.response, Mirrors: filters.mirrors,
			Rewrite: filters.rewrite, Redirect: filters.redirect}
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
			mat := fmt.Sprintf("%s.matches[%d]", at, j)
			if fe := checkHTTPMatch(&rr, m, mat); fe != nil {
				return nil, nil, fe
			}
			if fe := prefixReplaceable(&rr, mat); fe != nil {
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
		if rule.SessionPersistence != nil {
			return nil, nil, notYet(at+".sessionPersistence", "session persistence")
		}
		ff, fe := checkFilters(grpcFilters(rule.Filters), at)
		if fe != nil {
			return nil, nil, fe
		}
		backends := make([]RouteBackend, 0, len(rule.BackendRefs))
		for j, b := range rule.BackendRefs {
			bat := fmt.Sprintf("%s.backendRefs[%d]", at, j)
			rb, fe := checkBackend(b.BackendRef, bat)
			if fe != nil {
				return nil, nil, fe
			}
			if fe := checkBackendFilters(&rb, grpcFilters(b.Filters), bat); fe != nil {
				return nil, nil, fe
			}
			backends = append(backends, rb)
		}
		base := RouteRule{Route: ref, Rule: i, Match: -1, GRPC: true, Backends: backends, Faults: ff.faults, PathType: PathPrefix, Path: "/",
			RequestHeaders: ff.request, ResponseHeaders: ff.response, Mirrors: ff.mirrors}
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

// grpcFilters are GRPCRoute filters in the shape of HTTPRoute's (the
// types they share).
func grpcFilters(fs []gwv1.GRPCRouteFilter) []gwv1.HTTPRouteFilter {
	out := make([]gwv1.HTTPRouteFilter, 0, len(fs))
	for _, f := range fs {
		out = append(out, gwv1.HTTPRouteFilter{Type: gwv1.HTTPRouteFilterType(f.Type),
			RequestHeaderModifier: f.RequestHeaderModifier, ResponseHeaderModifier: f.ResponseHeaderModifier,
			RequestMirror: f.RequestMirror, ExtensionRef: f.ExtensionRef})
	}
	return out
}

// checkBackendFilters reads a backendRef's filters: header modifiers
// (the others are refused for now, by name).
func checkBackendFilters(rb *RouteBackend, fs []gwv1.HTTPRouteFilter, at string) *FieldError {
	for j, f := range fs {
		if f.Type != gwv1.HTTPRouteFilterRequestHeaderModifier && f.Type != gwv1.HTTPRouteFilterResponseHeaderModifier {
			return notYet(fmt.Sprintf("%s.filters[%d]", at, j), fmt.Sprintf("backendRef filters of type %s (RequestHeaderModifier and ResponseHeaderModifier are)", f.Type))
		}
	}
	ff, fe := checkFilters(fs, at)
	if fe != nil {
		return fe
	}
	rb.RequestHeaders, rb.ResponseHeaders = ff.request, ff.response
	return nil
}

// prefixReplaceable: a ReplacePrefixMatch needs a PathPrefix match to
// replace (Gateway API).
func prefixReplaceable(rr *RouteRule, at string) *FieldError {
	for _, p := range []*PathModifier{pathOf(rr.Rewrite), redirectPath(rr.Redirect)} {
		if p != nil && p.Type == ReplacePrefixMatch && rr.PathType != PathPrefix {
			return &FieldError{Field: at + ".path.type", Msg: fmt.Sprintf("is %s, but the rule's ReplacePrefixMatch needs PathPrefix", rr.PathType)}
		}
	}
	return nil
}

func pathOf(r *RouteRewrite) *PathModifier {
	if r == nil {
		return nil
	}
	return r.Path
}

func redirectPath(r *RouteRedirect) *PathModifier {
	if r == nil {
		return nil
	}
	return r.Path
}

// ruleFilters is what a rule's filters compile to.
type ruleFilters struct {
	faults            []string
	request, response *HeaderModifier
	mirrors           []RouteMirror
	rewrite           *RouteRewrite
	redirect          *RouteRedirect
}

// checkFilters reads a rule's filters: header modifiers and
// ExtensionRefs to Faults; the other filter types are refused for now,
// by name.
func checkFilters(fs []gwv1.HTTPRouteFilter, at string) (ruleFilters, *FieldError) {
	var out ruleFilters
	for j, f := range fs {
		fat := fmt.Sprintf("%s.filters[%d]", at, j)
		switch f.Type {
		case gwv1.HTTPRouteFilterRequestHeaderModifier, gwv1.HTTPRouteFilterResponseHeaderModifier:
			field, mod, into := "requestHeaderModifier", f.RequestHeaderModifier, &out.request
			if f.Type == gwv1.HTTPRouteFilterResponseHeaderModifier {
				field, mod, into = "responseHeaderModifier", f.ResponseHeaderModifier, &out.response
			}
			if mod == nil {
				return out, &FieldError{Field: fat + "." + field, Msg: "is required with type " + string(f.Type)}
			}
			if *into != nil {
				return out, &FieldError{Field: fat, Msg: string(f.Type) + " is given twice in this rule (Gateway API allows one)"}
			}
			hm, fe := checkHeaderModifier(mod, fat+"."+field)
			if fe != nil {
				return out, fe
			}
			*into = hm
		case gwv1.HTTPRouteFilterRequestMirror:
			m, fe := checkMirror(f.RequestMirror, fat+".requestMirror")
			if fe != nil {
				return out, fe
			}
			out.mirrors = append(out.mirrors, m)
		case gwv1.HTTPRouteFilterURLRewrite, gwv1.HTTPRouteFilterRequestRedirect:
			if out.rewrite != nil || out.redirect != nil {
				return out, &FieldError{Field: fat, Msg: "a rule takes one URLRewrite or RequestRedirect filter (Gateway API)"}
			}
			var fe *FieldError
			if f.Type == gwv1.HTTPRouteFilterURLRewrite {
				out.rewrite, fe = checkRewrite(f.URLRewrite, fat+".urlRewrite")
			} else {
				out.redirect, fe = checkRedirect(f.RequestRedirect, fat+".requestRedirect")
			}
			if fe != nil {
				return out, fe
			}
		case gwv1.HTTPRouteFilterExtensionRef:
			ref := f.ExtensionRef
			if ref == nil {
				return out, &FieldError{Field: fat + ".extensionRef", Msg: "is required with type ExtensionRef"}
			}
			if string(ref.Group) != WeftGroup || ref.Kind != "Fault" {
				return out, &FieldError{Field: fat + ".extensionRef", Msg: fmt.Sprintf("%s of group %q is not an extension Weft knows: a Fault (group %s)", ref.Kind, ref.Group, WeftGroup)}
			}
			if err := registry.ValidName(string(ref.Name)); err != nil {
				return out, &FieldError{Field: fat + ".extensionRef.name", Msg: err.Error()}
			}
			out.faults = append(out.faults, string(ref.Name))
		default:
			return out, notYet(fat, fmt.Sprintf("filters of type %s (RequestHeaderModifier, ResponseHeaderModifier, RequestMirror, URLRewrite, RequestRedirect and ExtensionRef to a Fault are)", f.Type))
		}
	}
	return out, nil
}

// checkMirror reads a RequestMirror filter: a Service or ServiceSubset
// of this namespace, and a share given as percent or as fraction (both
// not at once; neither: every request).
func checkMirror(m *gwv1.HTTPRequestMirrorFilter, at string) (RouteMirror, *FieldError) {
	if m == nil {
		return RouteMirror{}, &FieldError{Field: at, Msg: "is required with type RequestMirror"}
	}
	ref := m.BackendRef
	b, fe := checkBackend(gwv1.BackendRef{BackendObjectReference: ref}, at+".backendRef")
	if fe != nil {
		return RouteMirror{}, fe
	}
	out := RouteMirror{Backend: b, Percent: 100}
	switch {
	case m.Percent != nil && m.Fraction != nil:
		return out, &FieldError{Field: at, Msg: "percent and fraction are given both (Gateway API allows one)"}
	case m.Percent != nil:
		if *m.Percent < 0 || *m.Percent > 100 {
			return out, &FieldError{Field: at + ".percent", Msg: fmt.Sprintf("%d must be between 0 and 100", *m.Percent)}
		}
		out.Percent = float64(*m.Percent)
	case m.Fraction != nil:
		den := int32(100)
		if m.Fraction.Denominator != nil {
			den = *m.Fraction.Denominator
		}
		if den < 1 || m.Fraction.Numerator < 0 || m.Fraction.Numerator > den {
			return out, &FieldError{Field: at + ".fraction", Msg: fmt.Sprintf("%d/%d: want a numerator from 0 to a denominator of at least 1", m.Fraction.Numerator, den)}
		}
		out.Percent = 100 * float64(m.Fraction.Numerator) / float64(den)
	}
	return out, nil
}

// unmodifiable are the fields a header modifier may not touch: framing,
// connection management, and the mesh's own.
var unmodifiable = []string{"host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer",
	"keep-alive", "proxy-connection", "x-weft-error", "x-weft-source", "x-weft-timeout-ms"}

func checkHeaderModifier(m *gwv1.HTTPHeaderFilter, at string) (*HeaderModifier, *FieldError) {
	out := &HeaderModifier{}
	seen := map[string]string{}
	name := func(n, field string) (string, *FieldError) {
		l := strings.ToLower(n)
		if n == "" || strings.ContainsAny(n, " \t:\r\n") {
			return "", &FieldError{Field: field, Msg: fmt.Sprintf("%q is not a field name", n)}
		}
		if slices.Contains(unmodifiable, l) {
			return "", &FieldError{Field: field, Msg: fmt.Sprintf("%q is not modified by routes (framing, connection or the mesh's own)", n)}
		}
		if prev, dup := seen[l]; dup {
			return "", &FieldError{Field: field, Msg: fmt.Sprintf("%q is named already at %s", n, prev)}
		}
		seen[l] = field
		return l, nil
	}
	for i, h := range m.Set {
		n, fe := name(string(h.Name), fmt.Sprintf("%s.set[%d].name", at, i))
		if fe != nil {
			return nil, fe
		}
		if fe := headerValue(h.Value, fmt.Sprintf("%s.set[%d].value", at, i)); fe != nil {
			return nil, fe
		}
		out.Set = append(out.Set, HeaderValue{n, h.Value})
	}
	for i, h := range m.Add {
		n, fe := name(string(h.Name), fmt.Sprintf("%s.add[%d].name", at, i))
		if fe != nil {
			return nil, fe
		}
		if fe := headerValue(h.Value, fmt.Sprintf("%s.add[%d].value", at, i)); fe != nil {
			return nil, fe
		}
		out.Add = append(out.Add, HeaderValue{n, h.Value})
	}
	for i, h := range m.Remove {
		n, fe := name(h, fmt.Sprintf("%s.remove[%d]", at, i))
		if fe != nil {
			return nil, fe
		}
		out.Remove = append(out.Remove, n)
	}
	return out, nil
}

// headerValue refuses a value that could end the field it is written in
// (RFC 9110 §5.5: no CR, LF or NUL).
func headerValue(v, field string) *FieldError {
	if strings.ContainsAny(v, "\r\n\x00") {
		return &FieldError{Field: field, Msg: fmt.Sprintf("%q holds a CR, LF or NUL", v)}
	}
	return nil
}

// checkRouteTimeouts reads a rule's timeouts (Gateway API durations; 0s: none).
func checkRouteTimeouts(t *gwv1.HTTPRouteTimeouts, at string) (*RouteTimeouts, *FieldError) {
	if t == nil {
		return nil, nil
	}
	var out RouteTimeouts
	var fe *FieldError
	if t.Request != nil {
		if out.Request, fe = gatewayDuration(string(*t.Request), at+".request"); fe != nil {
			return nil, fe
		}
		out.HasRequest = true
	}
	if t.BackendRequest != nil {
		if out.Backend, fe = gatewayDuration(string(*t.BackendRequest), at+".backendRequest"); fe != nil {
			return nil, fe
		}
		out.HasBackend = true
	}
	if out.HasRequest && out.HasBackend && out.Request > 0 && (out.Backend == 0 || out.Backend > out.Request) {
		return nil, &FieldError{Field: at + ".backendRequest", Msg: fmt.Sprintf("%s must not be above request (%s)", out.Backend, out.Request)}
	}
	return &out, nil
}

// checkRouteRetry reads a rule's retry.
func checkRouteRetry(r *gwv1.HTTPRouteRetry, at string) (*RouteRetry, *FieldError) {
	if r == nil {
		return nil, nil
	}
	out := RouteRetry{Attempts: -1}
	for i, c := range r.Codes {
		if c < 500 || c > 599 {
			return nil, &FieldError{Field: fmt.Sprintf("%s.codes[%d]", at, i), Msg: fmt.Sprintf("%d: Weft retries 5xx statuses only (500 to 599)", c)}
		}
		out.Codes = append(out.Codes, int(c))
	}
	if r.Attempts != nil {
		if *r.Attempts < 0 || *r.Attempts > 7 {
			return nil, &FieldError{Field: at + ".attempts", Msg: fmt.Sprintf("%d must be between 0 and 7 (retries after the first try)", *r.Attempts)}
		}
		out.Attempts = *r.Attempts
	}
	if r.Backoff != nil {
		d, fe := gatewayDuration(string(*r.Backoff), at+".backoff")
		if fe != nil {
			return nil, fe
		}
		out.Backoff = d
	}
	return &out, nil
}

// gatewayDuration parses a Gateway API duration (GEP-2257: 1h, 10m, 5s,
// 250ms, and sums of them; 0s).
func gatewayDuration(v, at string) (time.Duration, *FieldError) {
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 || strings.ContainsAny(v, ".-+") {
		return 0, &FieldError{Field: at, Msg: fmt.Sprintf("%q is not a Gateway API duration (whole numbers with h, m, s or ms: 10s, 1m30s, 250ms; 0s for none)", v)}
	}
	return d, nil
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
