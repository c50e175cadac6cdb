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
// A TCP connection is decided once, by its proven peer, before its
// plan's first attempt dials the app (authorizeConn); a denied one is
// closed, counted and recorded the same way, with no answer to send.

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

// ConnFrom is the view of a TCP connection for its plan (Call.Init)
// from peer, the calling service its mutual TLS proved ("": none, a
// plain connection, whose view is request.None). It carries no request:
// the plan reads the peer from it where it reads SourceHeader of a
// request (authorizeConn, perSource limits). One small allocation per
// connection over mutual TLS.
func ConnFrom(peer string) request.View {
	if !serviceName(peer) {
		return request.None
	}
	v := &connView{View: request.None, peer: peer}
	v.n = uint8(copy(v.b[:], peer))
	return v
}

// connView is a TCP connection from a proven peer: request.None, but
// SourceHeader names the peer.
type connView struct {
	request.View // request.None
	peer         string
	b            [63]byte // peer (a service's name is at most 63 bytes)
	n            uint8
}

func (v *connView) Header(name string) []byte {
	if len(name) == len(SourceHeader) && strings.EqualFold(name, SourceHeader) {
		return v.b[:v.n]
	}
	return nil
}

// connPeer reports whether v is the view of a TCP connection
// (request.None or ConnFrom's) and, if so, its proven peer ("": none).
func connPeer(v request.View) (peer string, conn bool) {
	if cv, ok := v.(*connView); ok {
		return cv.peer, true
	}
	return "", v == request.None
}

// authorizeConn decides on a TCP connection to c (a view ConnFrom
// made), once, before the plan's first attempt dials the app: by its
// peer alone, as authz.Matcher.DecideConn reads the policies for bytes.
// Requests are decided by Route, not here (nil).
func (c *Cluster) authorizeConn(v request.View) *MeshError {
	peer, conn := connPeer(v)
	if c.authz == nil || !conn {
		return nil
	}
	return c.authz.checkConn(peer)
}

// checkConn decides on a TCP connection from peer ("": a plain one):
// counted as a request's decision is; the mesh error of a denial (nil:
// allowed). No answer goes back: the engine closes the connection.
func (a *Authorization) checkConn(peer string) *MeshError {
	m := a.m.Load()
	if m == nil {
		return nil
	}
	d := m.DecideConn(peer)
	if d.Allow {
		if a.allow != nil {
			a.allow.Inc()
		}
		return nil
	}
	if a.deny != nil {
		a.deny.Inc()
	}
	who := "a TCP connection that names no calling service (not mutual TLS)"
	if peer != "" {
		who = fmt.Sprintf("a TCP connection from service %q", peer)
	}
	return &MeshError{Status: http.StatusForbidden, Reason: ReasonDenied, Service: a.service,
		Message: fmt.Sprintf("%s to %q is %s", who, a.service, d.Text), authz: d.Text, source: peer}
}

// Authorization is the authorization decision that made e ("denied by
// AuthorizationPolicy/NAME rule N"; "": e is no denial).
func (e *MeshError) Authorization() string { return e.authz }

// recorded is the decision on the request v, in words, for the record
// of a request Route let through: the engines carry Routed only as far
// as their plan, so the call repeats the decision (allocation-free, not
// counted again) rather than every engine carrying its words. "" for a
// TCP connection (authorizeConn decides its own) or with none in force.
func (a *Authorization) recorded(v request.View) string {
	m := a.m.Load()
	if _, conn := connPeer(v); m == nil || conn {
		return ""
	}
	return m.Decide(authzSource(v), v).Text
}

// authzSource is the calling service as authorization takes it ("":
// none). This is the one place it is read, from SourceHeader: over
// mutual TLS the engines' views give the peer's proven service there
// (its certificate), whatever the header said; from a plain connection
// it is what the caller wrote, a claim that a client reaching the
// inbound without a sidecar can make as it likes. A TCP connection's is
// its proven peer (ConnFrom, authorizeConn). The matcher takes the
// source as an argument and does not change with where it comes from.
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
