package plan

import (
	"sort"
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
}

// Policy is how requests to a service are sent, where no resource says
// otherwise (per-service policy resources come with the resilience work).
type Policy struct {
	// Timeout bounds each attempt's wait for the response head, from when
	// its request has gone in full (0: none): --timeout.
	Timeout time.Duration
	// MaxAttempts bounds the instances one request tries (0: DefaultMaxAttempts).
	MaxAttempts int
}

// NewTable returns an empty table whose clusters follow policy and report
// into m (may be nil).
func NewTable(m *Metrics, policy Policy) *Table {
	t := &Table{metrics: m, policy: policy}
	empty := map[string]*Cluster{}
	t.m.Store(&empty)
	return t
}

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
func (t *Table) Update(snap *snapshot.Snapshot) {
	old := *t.m.Load()
	next := make(map[string]*Cluster, len(snap.Services))
	for name, svc := range snap.Services {
		ready := svc.Ready()
		var prev map[string]*Endpoint
		var m *ServiceMetrics
		var bal lb.Balancer
		if oc := old[name]; oc != nil {
			m, bal = oc.metrics, oc.Balancer
			prev = make(map[string]*Endpoint, len(oc.Endpoints))
			for _, e := range oc.Endpoints {
				prev[e.Address] = e
			}
		} else if t.metrics != nil {
			m = t.metrics.service(name)
		}
		eps := make([]*Endpoint, 0, len(ready))
		for _, s := range ready {
			e := prev[s.Address]
			if e == nil || !e.SameIdentity(s.Instance, s.Address, s.Protocol, s.Labels) {
				e = endpoint.New(name, s.Instance, s.Address, s.Labels)
				e.Protocol = s.Protocol
			}
			eps = append(eps, e)
		}
		c := NewCluster(name, eps, t.policy.Timeout, m)
		if bal != nil {
			c.Balancer = bal // the balancer's own state (turn, ring) carries over
		}
		c.MaxAttempts = t.policy.MaxAttempts
		c.Protocol = snapshot.CommonProtocol(ready) // what the endpoints routed to declare
		next[name] = c
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
