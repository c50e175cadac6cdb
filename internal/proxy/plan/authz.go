package plan

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/internal/request"
	"github.com/weftmesh/weft/internal/security/authz"
)

// Authorization on the inbound: the first step of the route stage of
// the inbound's cluster (Cluster.Route) asks the service's compiled
// AuthorizationPolicies (package security/authz) whether the calling
// service may make the request; a denied request is answered 403
// denied (gRPC: PERMISSION_DENIED) before any plan begins, counted in
// weft_authz_decisions_total, and recorded with the rule that decided.

// ReasonDenied is the reason of a request authorization refused: 403.
const ReasonDenied = "denied"

// Authorization is the authorization of one inbound: its service's
// matcher, swapped atomically when the policies change, and the
// counters of its decisions. Its methods are safe for concurrent use.
type Authorization struct {
	service string
	metrics *ServiceMetrics
	m       atomic.Pointer[authz.Matcher]

	once        sync.Once // resolves the counters on the first matcher set
	allow, deny prometheus.Counter
}

// NewAuthorization is the authorization of service's inbound, counted
// in m (nil: not counted); it lets every request through until Set.
func NewAuthorization(service string, m *ServiceMetrics) *Authorization {
	return &Authorization{service: service, metrics: m}
}

// Set puts m in force from the next request on (nil: every request is
// let through, and none is counted).
func (a *Authorization) Set(m *authz.Matcher) {
	if m != nil {
		a.once.Do(func() { a.allow, a.deny = a.metrics.authzCounters() })
	}
	a.m.Store(m)
}

// Matcher is the matcher in force (nil: none).
func (a *Authorization) Matcher() *authz.Matcher { return a.m.Load() }

// Authorize makes a guard c's route stage (the inbound's cluster). Call
// it before c serves; copies of c (ServerLimited) share a.
func (c *Cluster) Authorize(a *Authorization) { c.authz = a }

// authorized is true when c's route stage has an authorization in force.
func (c *Cluster) authorized() bool { return c.authz != nil && c.authz.m.Load() != nil }

// check decides on v: the decision's words for the record, and the
// mesh error of a denial (nil: allowed).
func (a *Authorization) check(v request.View) (string, *MeshError) {
	m := a.m.Load()
	if m == nil {
		return "", nil
	}
	source := authzSource(v)
	d := m.Decide(source, v)
	if d.Allow {
		if a.allow != nil {
			a.allow.Inc()
		}
		return d.Text, nil
	}
	if a.deny != nil {
		a.deny.Inc()
	}
	who := "a caller that names no service (no sidecar)"
	if source != "" {
		who = fmt.Sprintf("service %q", source)
	}
	return d.Text, &MeshError{Status: http.StatusForbidden, Reason: ReasonDenied, Service: a.service,
		Message: fmt.Sprintf("%s calling %q is %s", who, a.service, d.Text), authz: d.Text, source: strings.Clone(source)}
}

// authorizeConn decides on a TCP connection to c (view request.None),
// which has no method, path or header, and names no calling service
// until mutual TLS vouches for its peer: a caller "unknown". Requests
// are decided by Route, not here (nil).
func (c *Cluster) authorizeConn(v request.View) *MeshError {
	if c.authz == nil || v != request.None {
		return nil
	}
	_, merr := c.authz.check(v)
	if merr != nil {
		merr.Message = fmt.Sprintf("a TCP connection (it names no calling service) to %q is %s", c.authz.service, merr.authz)
	}
	return merr
}

// recorded is the decision on the request v, in words, for the record
// of a request Route let through: the engines carry Routed only as far
// as their plan, so the call repeats the decision (allocation-free, not
// counted again) rather than every engine carrying its words. "" for a
// TCP connection (authorizeConn records its own) or with none in force.
func (a *Authorization) recorded(v request.View) string {
	m := a.m.Load()
	if m == nil || v == request.None {
		return ""
	}
	return m.Decide(authzSource(v), v).Text
}

// authzSource is the calling service as authorization takes it ("":
// none). This is the one place it is read, from SourceHeader: over
// mutual TLS the engines' views give the peer's proven service there
// (its certificate), whatever the header said; from a plain connection
// it is what the caller wrote, a claim that a client reaching the
// inbound without a sidecar can make as it likes. A TCP connection
// names none yet (authorizeConn). The matcher takes the source as an
// argument and does not change with where it comes from.
func authzSource(v request.View) string {
	s := StringOf(v.Header(SourceHeader))
	if !serviceName(s) {
		return ""
	}
	return s
}

// Authorization is the authorization decision on the request, for the
// record ("allowed by AuthorizationPolicy/NAME rule N"; "": none made).
func (r *Routed) Authorization() string { return r.authz }
