package plan

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/lb"
	"github.com/weftmesh/weft/internal/request"
	"github.com/weftmesh/weft/internal/resilience"
	"github.com/weftmesh/weft/internal/snapshot"
)

// Reasons of the route stage's own answers.
const (
	ReasonNoRoute        = "no-route"        // routes attach to the service and none matched: 404
	ReasonInvalidBackend = "invalid-backend" // the rule's backend does not exist: 500
	ReasonInvalidFilter  = "invalid-filter"  // the rule's filter names a Fault that does not exist: 500
	ReasonFault          = "fault-injected"  // a Fault's abort answered
	ReasonRedirected     = "redirected"      // a RequestRedirect answered, with Location
)

// routes is the first stage of a request's plan for a service with
// HTTPRoutes or GRPCRoutes: their rules in precedence order, each with
// its backends' clusters. Built by Table.Update; immutable.
type routes struct {
	service string
	rules   []*routeRule
	names   string // the routes, for the no-route message
}

type routeRule struct {
	r        snapshot.Route
	ref      string // HTTPRoute/NAME rule N
	regex    *regexp.Regexp
	headers  []valueMatcher
	query    []valueMatcher
	backends []routeBackend
	total    int // of the weights
	faults   []snapshot.Fault
	// request and response are the rule's header modifiers (nil: none).
	request, response *HeaderEdits
	// mirrors are the rule's RequestMirror filters, sent by mirrorer
	// (nil: the table has none, and nothing is mirrored).
	mirrors  []routeMirror
	mirrorer Mirrorer
}

type valueMatcher struct {
	name  string
	value string
	regex *regexp.Regexp
}

func (m *valueMatcher) match(v []byte, ok bool) bool {
	if !ok {
		return false
	}
	if m.regex != nil {
		return m.regex.Match(v)
	}
	return string(v) == m.value
}

type routeBackend struct {
	c       *Cluster
	weight  int
	invalid string // why it cannot take requests (c is nil)
	// request and response are the rule's header edits followed by the
	// backendRef's, when it has its own (nil: the rule's).
	request, response *HeaderEdits
	own               bool
}

// Routed is where the route stage sends a request, and what it does to
// it on the way.
type Routed struct {
	// Cluster is the backend's (the request's own cluster when the
	// service has no routes).
	Cluster *Cluster
	// Delay is how long the engine holds the request before its first
	// try (a Fault's).
	Delay time.Duration
	// Request and Response edit the heads the engine writes: to the
	// instance and back to the client (nil: no edits).
	Request, Response *HeaderEdits
	// Rewrite is the rule's URLRewrite for this request.
	Rewrite Rewrite
	// rule is the rule that decided (for Record).
	rule *routeRule
	// authz is the inbound's authorization decision (Authorization).
	authz string
	// the mirrors this request drew (bit i: mirrorOf.mirrors[i];
	// mirror.go)
	mirrorOf  *routeRule
	mirrorSet uint32
}

// Route is the route stage: the cluster a request to c goes to, by the
// first of c's route rules that matches it, and a weighted choice among
// that rule's backends, with the rule's faults drawn for this request
// and its header modifiers, and the rule's mirrors drawn (Mirrors). A
// service without routes is its own
// cluster. A request no rule matches gets 404 no-route; one whose share
// goes to a backend that does not exist gets 500 invalid-backend
// (Gateway API); a Fault's abort is a MeshError with reason
// fault-injected. With an error, the Routed names the rule that matched
// (RuleRef, RouteName) and nothing else. On the inbound, authorization
// comes first (authz.go): a request it denies gets 403 denied.
func (c *Cluster) Route(v request.View) (Routed, *MeshError) {
	var decided string
	if c.authz != nil {
		var merr *MeshError
		if decided, merr = c.authz.check(v); merr != nil {
			return Routed{authz: decided}, merr
		}
	}
	rs := c.routes
	if rs == nil {
		return Routed{Cluster: c, authz: decided}, nil
	}
	out, merr := rs.route(c, v)
	out.authz = decided
	return out, merr
}

// Rewrite is a URLRewrite made for one request: the path (with the
// query) and host the instance gets in place of the client's ("":
// unchanged).
type Rewrite struct{ Path, Host string }

// ApplyTo makes r the rewritten request (the engines built on
// net/http, and mirrored copies).
func (rw Rewrite) ApplyTo(r *http.Request) error {
	if rw.Host != "" {
		r.Host = rw.Host
	}
	if rw.Path != "" {
		u, err := url.ParseRequestURI(rw.Path)
		if err != nil {
			return fmt.Errorf("the rule's URLRewrite makes %q, which is no request target: %w", rw.Path, err)
		}
		r.URL.Path, r.URL.RawPath, r.URL.RawQuery = u.Path, u.RawPath, u.RawQuery
	}
	return nil
}

// Routed reports whether the service has routes, or its inbound an
// authorization in force: requests to it go through Route.
func (c *Cluster) Routed() bool { return c.routes != nil || c.authorized() }

func (rs *routes) route(parent *Cluster, v request.View) (Routed, *MeshError) {
	rule := rs.match(v)
	if rule == nil {
		return Routed{}, &MeshError{Status: http.StatusNotFound, Reason: ReasonNoRoute, Service: rs.service,
			Message: fmt.Sprintf("no rule of %s matches %s %s", rs.names, v.Method(), v.Path())}
	}
	if rule.r.InvalidFault != "" {
		return Routed{rule: rule}, &MeshError{Status: http.StatusInternalServerError, Reason: ReasonInvalidFilter, Service: rs.service,
			Message: fmt.Sprintf("%s: %s", rule.ref, rule.r.InvalidFault)}
	}
	if rule.r.Redirect != nil {
		return Routed{rule: rule}, rs.redirect(rule, v)
	}
	out := Routed{Request: rule.request, Response: rule.response, rule: rule}
	if rw := rule.r.Rewrite; rw != nil {
		out.Rewrite.Host = rw.Hostname
		if rw.Path != nil {
			path, query := splitQuery(v.Path())
			out.Rewrite.Path = rw.Path.Apply(path, rule.r.Path) + query
		}
	}
	if len(rule.mirrors) > 0 {
		out.drawMirrors(rule) // a request a fault aborts is not mirrored
	}
	for i := range rule.faults {
		f := &rule.faults[i]
		if f.Delay > 0 && drawn(f.DelayPercent) {
			out.Delay += f.Delay
		}
		if (f.AbortHTTP != 0 || f.AbortGRPC != 0) && drawn(f.AbortPercent) {
			return Routed{rule: rule}, rs.abort(rule, f, v.GRPC()) // answered at once, delay or not
		}
	}
	b, merr := rule.backend(rs.service)
	switch {
	case merr != nil:
		return Routed{rule: rule}, merr
	case b == nil:
		out.Cluster = parent
	default:
		out.Cluster = b.c
		if b.own {
			out.Request, out.Response = b.request, b.response
		}
	}
	return out, nil
}

// splitQuery is a request target's path, and its query with the ?.
func splitQuery(target []byte) (path, query string) {
	if i := bytes.IndexByte(target, '?'); i >= 0 {
		return string(target[:i]), string(target[i:])
	}
	return string(target), ""
}

// redirect is a RequestRedirect's answer: its status, and a Location
// that is the request's URL with the filter's parts in place. With no
// port given, a new scheme takes its well-known port and otherwise the
// request's stays (Gateway API); a well-known port is left out.
func (rs *routes) redirect(rule *routeRule, v request.View) *MeshError {
	rd := rule.r.Redirect
	path, query := splitQuery(v.Path())
	host, port := string(v.Authority()), ""
	if h, p, err := net.SplitHostPort(host); err == nil {
		host, port = h, p
	}
	scheme := "http"
	if rd.Scheme != "" {
		scheme, port = rd.Scheme, ""
	}
	if rd.Hostname != "" {
		host = rd.Hostname
	}
	if rd.Port != 0 {
		port = strconv.Itoa(rd.Port)
	}
	if scheme == "http" && port == "80" || scheme == "https" && port == "443" {
		port = ""
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]") // ([::1] without a port)
	if port != "" {
		host = net.JoinHostPort(host, port)
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]" // an IPv6 address
	}
	if rd.Path != nil {
		path = rd.Path.Apply(path, rule.r.Path)
	}
	loc := scheme + "://" + host + path + query
	return &MeshError{Status: rd.Status, Reason: ReasonRedirected, Service: rs.service, Location: loc,
		Message: fmt.Sprintf("%s redirects to %s", rule.ref, loc)}
}

// drawn reports a random draw that falls within percent of requests.
func drawn(percent float64) bool {
	return percent >= 100 || percent > 0 && rand.Float64()*100 < percent
}

// abort is a Fault's answer: its HTTP status, or for a gRPC call its
// gRPC status when it has one (as a trailers-only answer).
func (rs *routes) abort(rule *routeRule, f *snapshot.Fault, grpc bool) *MeshError {
	e := &MeshError{Status: f.AbortHTTP, Reason: ReasonFault, Service: rs.service}
	if e.Status == 0 {
		e.Status = http.StatusServiceUnavailable
	}
	what := fmt.Sprint(e.Status)
	if grpc && f.AbortGRPC != 0 {
		e.GRPC = strconv.Itoa(f.AbortGRPC)
		what = "gRPC status " + e.GRPC
	}
	e.Message = fmt.Sprintf("%s: Fault/%s aborted the request with %s", rule.ref, f.Name, what)
	return e
}

// backend draws one of the rule's backends by weight (nil: the rule
// has none, and the parent takes the request).
func (rule *routeRule) backend(service string) (*routeBackend, *MeshError) {
	if len(rule.backends) == 0 {
		return nil, nil
	}
	if rule.total == 0 {
		return nil, &MeshError{Status: http.StatusInternalServerError, Reason: ReasonInvalidBackend, Service: service,
			Message: fmt.Sprintf("%s has no backend with a weight above 0", rule.ref)}
	}
	n := 0
	if len(rule.backends) > 1 {
		n = rand.IntN(rule.total)
	}
	for i := range rule.backends {
		b := &rule.backends[i]
		if n < b.weight {
			if b.c == nil {
				return nil, &MeshError{Status: http.StatusInternalServerError, Reason: ReasonInvalidBackend, Service: service,
					Message: fmt.Sprintf("%s: backend %s", rule.ref, b.invalid)}
			}
			return b, nil
		}
		n -= b.weight
	}
	return nil, &MeshError{Status: http.StatusInternalServerError, Reason: ReasonInvalidBackend, Service: service,
		Message: rule.ref + ": no backend chosen"} // unreachable: the weights sum to total
}

// match is the first rule that matches v.
func (rs *routes) match(v request.View) *routeRule {
	path := v.Path()
	query := []byte(nil)
	if i := bytes.IndexByte(path, '?'); i >= 0 {
		path, query = path[:i], path[i+1:]
	}
	grpc := v.GRPC()
	for _, r := range rs.rules {
		if r.matches(v, path, query, grpc) {
			return r
		}
	}
	return nil
}

func (r *routeRule) matches(v request.View, path, query []byte, grpc bool) bool {
	miss, _ := r.mismatch(v, path, query, grpc)
	return miss == matched
}

// A mismatch is the first condition of a rule a request fails.
type mismatch uint8

const (
	matched mismatch = iota
	missGRPC
	missPath
	missMethod
	missHeader // of headers[i]
	missQuery  // of query[i]
)

// mismatch is the first of r's conditions v fails, and which header or
// query match it is (no allocation: the hot path calls it).
func (r *routeRule) mismatch(v request.View, path, query []byte, grpc bool) (mismatch, int) {
	if r.r.GRPC && !grpc {
		return missGRPC, 0
	}
	switch r.r.PathType {
	case config.PathExact:
		if string(path) != r.r.Path {
			return missPath, 0
		}
	case config.PathPrefix:
		if !prefixMatch(path, r.r.Path) {
			return missPath, 0
		}
	default:
		if !r.regex.Match(path) {
			return missPath, 0
		}
	}
	if r.r.Method != "" && string(v.Method()) != r.r.Method {
		return missMethod, 0
	}
	for i := range r.headers {
		h := &r.headers[i]
		val := v.Header(h.name)
		if !h.match(val, val != nil) {
			return missHeader, i
		}
	}
	for i := range r.query {
		q := &r.query[i]
		val, ok := queryValue(query, q.name)
		if !q.match(val, ok) {
			return missQuery, i
		}
	}
	return matched, 0
}

// prefixMatch is Gateway API's PathPrefix: whole path elements, so /foo
// matches /foo, /foo/ and /foo/bar but not /foobar; a trailing / in the
// prefix is ignored.
func prefixMatch(path []byte, prefix string) bool {
	prefix = strings.TrimSuffix(prefix, "/")
	if prefix == "" {
		return true
	}
	if !bytes.HasPrefix(path, []byte(prefix)) {
		return false
	}
	return len(path) == len(prefix) || path[len(prefix)] == '/'
}

// queryValue is the first value of the query parameter name (decoded),
// and whether it is there.
func queryValue(query []byte, name string) ([]byte, bool) {
	for len(query) > 0 {
		var pair []byte
		pair, query, _ = bytes.Cut(query, []byte{'&'})
		k, val, _ := bytes.Cut(pair, []byte{'='})
		if string(k) != name {
			if uk, err := url.QueryUnescape(string(k)); err != nil || uk != name {
				continue
			}
		}
		if bytes.IndexAny(val, "%+") >= 0 {
			if uv, err := url.QueryUnescape(string(val)); err == nil {
				return []byte(uv), true
			}
		}
		return val, true
	}
	return nil, false
}

// buildRoutes compiles the route rules of parent; clusters holds every
// service's cluster.
func (t *Table) buildRoutes(parent string, rules []snapshot.Route, clusters map[string]*Cluster) (*routes, error) {
	rs := &routes{service: parent}
	// backend is a route backend's cluster, or why it has none.
	backend := func(b snapshot.Backend) (*Cluster, string) {
		if b.Invalid != "" {
			return nil, b.Invalid
		}
		c := clusters[b.Service]
		switch {
		case c == nil:
			return nil, fmt.Sprintf("service %q does not exist", b.Service)
		case b.Subset != "":
			return subsetOf(c, b.Subset, b.Labels), ""
		}
		return c, ""
	}
	seen := map[string]bool{}
	var names []string
	for _, sr := range rules {
		if !seen[sr.Route] {
			seen[sr.Route] = true
			names = append(names, sr.Route)
		}
		r := &routeRule{r: sr, ref: fmt.Sprintf("%s rule %d", sr.Route, sr.Rule)}
		if sr.RuleName != "" {
			r.ref = fmt.Sprintf("%s rule %q", sr.Route, sr.RuleName)
		}
		if sr.PathType == config.PathRegex {
			re, err := regexp.Compile("^(?:" + sr.Path + ")$")
			if err != nil {
				return nil, fmt.Errorf("%s: path %q: %w", r.ref, sr.Path, err)
			}
			r.regex = re
		}
		var err error
		if r.headers, err = matchers(sr.Headers); err != nil {
			return nil, fmt.Errorf("%s: headers: %w", r.ref, err)
		}
		if r.query, err = matchers(sr.Query); err != nil {
			return nil, fmt.Errorf("%s: queryParams: %w", r.ref, err)
		}
		r.faults = sr.Faults
		r.request, r.response = newHeaderEdits(sr.RequestHeaders), newHeaderEdits(sr.ResponseHeaders)
		if len(sr.Mirrors) > 0 && t.mirrorer != nil {
			if r.mirrors, err = t.buildMirrors(parent, sr.Mirrors, backend); err != nil {
				return nil, fmt.Errorf("%s: %w", r.ref, err)
			}
			r.mirrorer = t.mirrorer
		}
		for _, b := range sr.Backends {
			rb := routeBackend{weight: b.Weight}
			rb.c, rb.invalid = backend(b)
			if b.RequestHeaders != nil || b.ResponseHeaders != nil {
				rb.own = true
				rb.request = r.request.then(newHeaderEdits(b.RequestHeaders))
				rb.response = r.response.then(newHeaderEdits(b.ResponseHeaders))
			}
			if rb.c != nil && (sr.Timeouts != nil || sr.Retry != nil) {
				rb.c = withRule(rb.c, sr.Timeouts, sr.Retry)
			}
			r.backends = append(r.backends, rb)
			r.total += b.Weight
		}
		if len(sr.Backends) == 0 && (sr.Timeouts != nil || sr.Retry != nil) {
			// To the parent itself, under the rule's timeouts and retry.
			r.backends = []routeBackend{{c: withRule(clusters[parent], sr.Timeouts, sr.Retry), weight: 1}}
			r.total = 1
		}
		rs.rules = append(rs.rules, r)
	}
	rs.names = strings.Join(names, ", ")
	return rs, nil
}

// withRule is c under a rule's timeouts and retry (Gateway API's), which
// override its TrafficPolicy's for the requests the rule routes.
func withRule(c *Cluster, t *config.RouteTimeouts, r *config.RouteRetry) *Cluster {
	oc := *c
	oc.routes = nil
	if t != nil {
		if t.HasRequest {
			oc.Overall = t.Request
			if !c.PerTry {
				oc.Timeout = t.Request // each try may take all of it, as without perTry
			}
		}
		if t.HasBackend && t.Backend > 0 {
			oc.Timeout, oc.PerTry = t.Backend, true
		}
	}
	if r != nil {
		on := c.RetryOn
		on.ConnectFailure, on.Reset = true, true
		oc.RetryOn = on.WithStatuses(r.Codes)
		if r.Attempts >= 0 {
			oc.MaxAttempts = r.Attempts + 1
		}
		if r.Backoff > 0 {
			oc.RetryBackoff = resilience.Backoff{Base: r.Backoff, Max: max(r.Backoff, 10*r.Backoff)}
		}
	}
	return &oc
}

// matchers compiles header or query matches (a regular expression must
// match the whole value, as Envoy's safe_regex does).
func matchers(ms []config.ValueMatch) ([]valueMatcher, error) {
	out := make([]valueMatcher, 0, len(ms))
	for _, m := range ms {
		vm := valueMatcher{name: m.Name, value: m.Value}
		if m.Regex {
			re, err := regexp.Compile("^(?:" + m.Value + ")$")
			if err != nil {
				return nil, fmt.Errorf("%q: %w", m.Value, err)
			}
			vm.regex = re
		}
		out = append(out, vm)
	}
	return out, nil
}

// subsetOf is the cluster of c's endpoints that carry every label, with
// a balancer of its own (kept on c's guard, so its state lasts as long
// as the policy).
func subsetOf(c *Cluster, name string, labels map[string]string) *Cluster {
	sc := *c
	sc.routes = nil
	sc.subset = c.Service + "/" + name
	sc.Endpoints = nil
	for _, e := range c.Endpoints {
		if hasLabels(e.Labels, labels) {
			sc.Endpoints = append(sc.Endpoints, e)
		}
	}
	if c.guard != nil {
		sc.Balancer = c.guard.subsetBalancer(name)
	} else {
		sc.Balancer = &lb.RoundRobin{}
	}
	return &sc
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// RuleCheck is how one route rule took a request: whether it matched,
// and if not, the first condition that failed.
type RuleCheck struct {
	Rule    string `json:"rule"`  // HTTPRoute/NAME rule N
	Match   string `json:"match"` // what it matches
	Matched bool   `json:"matched"`
	Why     string `json:"why,omitempty"`
}

// RouteDecision is what the route stage does with a request, for weft
// explain: the rules tried in order up to the one that matched, the
// backends it chooses among, its faults, and the error when it refuses.
type RouteDecision struct {
	Rules    []RuleCheck
	Backends []BackendChoice
	Faults   []snapshot.Fault
	Error    *MeshError
}

// BackendChoice is one backend of the matching rule and its share.
type BackendChoice struct {
	Name    string  // service, or service/subset
	Weight  int     // as written
	Share   float64 // of the requests, 0 to 1
	Cluster *Cluster
	Invalid string
}

// ExplainRoute is what Route does with v, and why, without drawing.
// A service without routes decides nothing: its own cluster.
func (c *Cluster) ExplainRoute(v request.View) RouteDecision {
	rs := c.routes
	if rs == nil {
		return RouteDecision{Backends: []BackendChoice{{Name: c.Service, Weight: 1, Share: 1, Cluster: c}}}
	}
	var d RouteDecision
	path := v.Path()
	query := []byte(nil)
	if i := bytes.IndexByte(path, '?'); i >= 0 {
		path, query = path[:i], path[i+1:]
	}
	var rule *routeRule
	for _, r := range rs.rules {
		miss, i := r.mismatch(v, path, query, v.GRPC())
		check := RuleCheck{Rule: r.ref, Match: r.r.Describe(), Matched: miss == matched}
		if miss != matched {
			check.Why = r.why(v, path, query, miss, i)
		}
		d.Rules = append(d.Rules, check)
		if miss == matched {
			rule = r
			break
		}
	}
	if rule == nil {
		_, d.Error = rs.route(c, v)
		return d
	}
	if rule.r.InvalidFault != "" {
		d.Error = &MeshError{Status: http.StatusInternalServerError, Reason: ReasonInvalidFilter, Service: rs.service,
			Message: fmt.Sprintf("%s: %s", rule.ref, rule.r.InvalidFault)}
		return d
	}
	d.Faults = rule.faults
	if len(rule.backends) == 0 {
		d.Backends = []BackendChoice{{Name: c.Service, Weight: 1, Share: 1, Cluster: c}}
		return d
	}
	for i, b := range rule.backends {
		bc := BackendChoice{Weight: b.weight, Cluster: b.c, Invalid: b.invalid}
		if i < len(rule.r.Backends) {
			sb := rule.r.Backends[i]
			bc.Name = sb.Service
			if sb.Subset != "" {
				bc.Name += "/" + sb.Subset
			}
		}
		if rule.total > 0 {
			bc.Share = float64(b.weight) / float64(rule.total)
		}
		d.Backends = append(d.Backends, bc)
	}
	if rule.total == 0 {
		_, d.Error = rule.backend(rs.service)
	}
	return d
}

// why says which condition failed.
func (r *routeRule) why(v request.View, path, query []byte, miss mismatch, i int) string {
	switch miss {
	case missGRPC:
		return "not a gRPC call (the rule is a GRPCRoute's)"
	case missPath:
		return fmt.Sprintf("path %s is not %s %s", path, r.r.PathType, r.r.Path)
	case missMethod:
		return fmt.Sprintf("method %s is not %s", v.Method(), r.r.Method)
	case missHeader:
		h := r.r.Headers[i]
		if val := v.Header(h.Name); val != nil {
			return fmt.Sprintf("header %s is %q, not %s", h.Name, val, h.String())
		}
		return fmt.Sprintf("no header %s (want %s)", h.Name, h.String())
	case missQuery:
		q := r.r.Query[i]
		if val, ok := queryValue(query, q.Name); ok {
			return fmt.Sprintf("query %s is %q, not %s", q.Name, val, q.String())
		}
		return fmt.Sprintf("no query parameter %s (want %s)", q.Name, q.String())
	}
	return ""
}
