package plan

import (
	"crypto/tls"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/internal/endpoint"
	"github.com/weftmesh/weft/internal/lb"
	"github.com/weftmesh/weft/internal/snapshot"
)

// Table maps service names to clusters. Reads are one atomic load; Update
// builds a whole new map from a snapshot and swaps it in.
type Table struct {
	m       atomic.Pointer[map[string]*Cluster]
	metrics *Metrics
	policy  Policy
	recent  *Recent    // the requests its clusters served
	log     *AccessLog // and their access log (nil: off)
	tracer  *Tracer    // and their spans (nil: off)
	peerTLS PeerTLS    // mutual TLS to peer sidecars that take it (nil: plain TCP)

	// mirrorer sends route rules' mirrored copies (nil: none sent).
	mirrorer Mirrorer

	tickMu sync.Mutex
	ticked map[*endpoint.Group]time.Time // when each group's success rate was last checked
}

// Policy is what the sidecar itself says of how requests are sent; each
// service's TrafficPolicy (snapshot.Policy) says the rest.
type Policy struct {
	// Timeout is the request timeout of services without a TrafficPolicy
	// (0: none): --timeout. It bounds each attempt's wait for the
	// response head, from when its request has gone in full.
	Timeout time.Duration
	// MaxAttempts, when set, overrides every service's retries.attempts
	// (tests use it).
	MaxAttempts int
	// Zone is this sidecar's zone, for locality-aware balancing (the
	// value of its own locality label; "": none).
	Zone string
	// Source is this sidecar's service, sent to mesh services in
	// SourceHeader ("": none sent).
	Source string
}

// NewTable returns an empty table whose clusters follow policy and report
// into m (may be nil).
func NewTable(m *Metrics, policy Policy) *Table {
	t := &Table{metrics: m, policy: policy, recent: &Recent{}}
	empty := map[string]*Cluster{}
	t.m.Store(&empty)
	return t
}

// SetAccessLog makes the table's clusters log each request to l, from
// the next Update on (nil: off). Call it before the first Update.
func (t *Table) SetAccessLog(l *AccessLog) { t.log = l }

// PeerTLS gives the TLS config of connections to a peer sidecar of a
// service: mutual TLS, the peer's identity checked against the service
// (security.Credentials.ClientConfig).
type PeerTLS interface {
	ClientConfig(service string) *tls.Config
}

// SetPeerTLS makes connections to peer sidecars that take mutual TLS
// (snapshot.Endpoint.MTLS) use it, from the next Update on (nil: plain
// TCP to every peer). Call it before the first Update.
func (t *Table) SetPeerTLS(p PeerTLS) { t.peerTLS = p }

// SetTracer makes the table's clusters trace their requests with t, from
// the next Update on (nil: off). Call it before the first Update.
func (t *Table) SetTracer(tr *Tracer) { t.tracer = tr }

// SetMirrorer makes m the sender of mirrored requests (RequestMirror
// filters), from the next Update on; without one nothing is mirrored.
// Call it before the first Update.
func (t *Table) SetMirrorer(m Mirrorer) { t.mirrorer = m }

// Lookup returns the cluster of a service, or nil if the mesh has no such service.
func (t *Table) Lookup(service string) *Cluster { return (*t.m.Load())[service] }

// LookupBytes is Lookup for a name in bytes (no allocation).
func (t *Table) LookupBytes(service []byte) *Cluster { return (*t.m.Load())[string(service)] }

// Policy is the policy the table's clusters follow.
func (t *Table) Policy() Policy { return t.policy }

// Services lists the service names known, sorted.
func (t *Table) Services() []string {
	m := *t.m.Load()
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Update replaces the table with the services of snap, routing to their
// ready endpoints. An endpoint that keeps its service, instance, address
// and labels keeps its state (ejection, latency, pools). A service with
// no ready endpoint, or known only by its record, stays in the table
// empty: its callers get no-ready-instance, not unknown-service or egress.
//
// Each service's traffic policy becomes its cluster's balancer, timeouts,
// retries, budget, breaker, rate limit and fallback; their state carries
// over while the policy stays the same. A policy that cannot be built
// (which validation on apply prevents) is reported, and the service runs
// with the defaults.
func (t *Table) Update(snap *snapshot.Snapshot) []error {
	old := *t.m.Load()
	next := make(map[string]*Cluster, len(snap.Services))
	var problems []error
	for name, svc := range snap.Services {
		ready := svc.Ready()
		var prev map[string]*Endpoint
		var m *ServiceMetrics
		var g *guard
		var grp *endpoint.Group
		if oc := old[name]; oc != nil {
			m, g, grp = oc.metrics, oc.guard, oc.group
			prev = make(map[string]*Endpoint, len(oc.Endpoints))
			for _, e := range oc.Endpoints {
				prev[e.Address] = e
			}
		} else if t.metrics != nil {
			m = t.metrics.service(name)
		}
		eps := make([]*Endpoint, 0, len(ready))
		var peerTLS *tls.Config // the service's, made once
		for _, s := range ready {
			e := prev[s.Address]
			if e == nil || !e.SameIdentity(s.Instance, s.Address, s.Protocol, s.Labels) {
				e = endpoint.New(name, s.Instance, s.Address, s.Labels)
				e.Protocol = s.Protocol
			}
			if s.MTLS && !s.External && t.peerTLS != nil {
				if peerTLS == nil {
					peerTLS = t.peerTLS.ClientConfig(name)
				}
				e.SetTLS(peerTLS)
			} else {
				e.SetTLS(nil)
			}
			eps = append(eps, e)
		}
		p := &svc.Policy
		if p.LoadBalancer.Policy == "" { // a snapshot built without policies
			d := snapshot.DefaultPolicy()
			p = &d
		}
		if g == nil || !g.same(p) {
			ng, err := newGuard(*p, t.policy.Zone)
			if err != nil {
				problems = append(problems, fmt.Errorf("service %q: %s: %w (running with the defaults)", name, p.Resource, err))
				ng, _ = newGuard(snapshot.DefaultPolicy(), t.policy.Zone)
			}
			g = ng // the balancer's, budget's and breaker's state carries over while the policy stays
		}
		grp, err := outlierGroup(grp, p.OutlierDetection)
		if err != nil {
			problems = append(problems, fmt.Errorf("service %q: %s: outlierDetection: %w (running with the defaults)", name, p.Resource, err))
			grp, _ = outlierGroup(nil, snapshot.DefaultPolicy().OutlierDetection)
		}
		grp.SetMembers(eps)
		c := t.cluster(name, eps, g, m)
		c.group = grp
		c.Protocol = snapshot.CommonProtocol(ready) // what the endpoints routed to declare
		c.PassTimeout = !svc.External               // mesh instances are sidecars: tell them the timeout
		if !svc.External && t.policy.Source != "" {
			c.Source = t.policy.Source // and who calls
		}
		next[name] = c
	}
	// The route stage, once every service's cluster exists: a route's
	// backends are other services' clusters, or subsets of them.
	for name, svc := range snap.Services {
		if len(svc.Routes) == 0 {
			continue
		}
		rs, err := t.buildRoutes(name, svc.Routes, next)
		if err != nil {
			problems = append(problems, fmt.Errorf("service %q: routes: %w (routed as if it had none)", name, err))
			continue
		}
		next[name].routes = rs
	}
	t.m.Store(&next)
	// Endpoints that left the table keep no connections open.
	for name, oc := range old {
		nc := next[name]
		for _, e := range oc.Endpoints {
			if nc == nil || !lb.Contains(nc.Endpoints, e) {
				e.CloseIdle()
			}
		}
	}
	return problems
}

// outlierGroup is the service's outlier detection under o: grp with o
// in force, or a new group.
func outlierGroup(grp *endpoint.Group, o snapshot.OutlierDetection) (*endpoint.Group, error) {
	opts := endpoint.OutlierOptions{Consecutive5xx: o.Consecutive5xx, ConsecutiveGatewayErrors: o.ConsecutiveGatewayErrors,
		ConsecutiveConnectFailures: o.ConsecutiveConnectFailures, Interval: o.Interval,
		BaseEjectionTime: o.BaseEjectionTime, MaxEjectionTime: o.MaxEjectionTime,
		MaxEjectionPercent: int(o.MaxEjectionPercent), SuccessRateMinHosts: o.SuccessRateMinHosts,
		SuccessRateRequestVolume: o.SuccessRateRequestVolume, SuccessRateStdevFactor: o.SuccessRateStdevFactor,
		PanicThreshold: int(o.PanicThreshold)}
	if grp == nil {
		return endpoint.NewGroup(opts)
	}
	return grp, grp.SetOptions(opts)
}

// Tick runs the success-rate outlier check of every service whose
// interval has passed since its last one; the sidecar calls it about
// once a second.
func (t *Table) Tick(now time.Time) {
	t.tickMu.Lock()
	defer t.tickMu.Unlock()
	if t.ticked == nil {
		t.ticked = map[*endpoint.Group]time.Time{}
	}
	seen := map[*endpoint.Group]bool{}
	for _, c := range *t.m.Load() {
		g := c.group
		if g == nil {
			continue
		}
		seen[g] = true
		last, ok := t.ticked[g]
		if !ok {
			t.ticked[g] = now
		} else if now.Sub(last) >= g.Options().Interval {
			g.Tick(now)
			t.ticked[g] = now
		}
	}
	for g := range t.ticked {
		if !seen[g] {
			delete(t.ticked, g)
		}
	}
}

// cluster builds the cluster of a service under the policy of g.
func (t *Table) cluster(name string, eps []*Endpoint, g *guard, m *ServiceMetrics) *Cluster {
	p := &g.policy
	c := &Cluster{Service: name, Endpoints: eps, Balancer: g.balancer, guard: g, metrics: m, recent: t.recent, log: t.log, tracer: t.tracer,
		MaxAttempts: p.Retries.Attempts, RetryOn: p.Retries.On, MaxRequests: p.CircuitBreaker.MaxRequests,
		MaxConnections: p.CircuitBreaker.MaxConnections, MaxPending: p.CircuitBreaker.MaxPendingRequests, Overall: p.Timeouts.Request, Timeout: p.Timeouts.Request,
		MaxBufferedBody: p.Retries.MaxBufferedBody}
	if p.Resource == "" {
		// --timeout, for services without a TrafficPolicy: each try's
		// wait for its response head, as before policies.
		c.Overall, c.Timeout = 0, t.policy.Timeout
	}
	if p.Timeouts.PerTry > 0 {
		c.Timeout, c.PerTry = p.Timeouts.PerTry, true
	}
	if t.policy.MaxAttempts > 0 {
		c.MaxAttempts = t.policy.MaxAttempts
	}
	return c
}

// CloseIdle closes the connections of every endpoint that carry no
// request, and lets the others close when their last request ends.
func (t *Table) CloseIdle() {
	for _, c := range *t.m.Load() {
		for _, e := range c.Endpoints {
			e.CloseIdle()
		}
	}
}
