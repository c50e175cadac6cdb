package proxy

import (
	"fmt"
	"maps"
	"net/http"
	"sort"
	"sync/atomic"
	"time"
)

// Endpoint is one address a service can be reached at: a peer sidecar's
// inbound listener, or an external service's own address. Its counters and
// ejection state are atomic and survive table updates.
type Endpoint struct {
	Service  string
	Instance string // instance id, or "external:<address>"
	Address  string // host:port
	Labels   map[string]string

	ejectedUntil atomic.Int64 // unix nanoseconds; 0 when in rotation
	failures     atomic.Int32 // consecutive connect failures
	pool         pool         // idle connections to Address
	h2           h2Pool       // HTTP/2 connections to Address (the HTTP/2 engine's)
	// onConnectFailed, when set (before use), hears of every connect
	// failure: the inbound's app endpoint tells the health check.
	onConnectFailed func()
}

func newEndpoint(service, instance, address string, labels map[string]string) *Endpoint {
	return &Endpoint{Service: service, Instance: instance, Address: address, Labels: labels, pool: pool{addr: address}}
}

// Ejected reports whether the endpoint is out of rotation at now.
func (e *Endpoint) Ejected(now int64) bool { return e.ejectedUntil.Load() > now }

// ejectBase is the first ejection after a connect failure; each further
// consecutive failure doubles it, up to ejectMax.
const (
	ejectBase = 2 * time.Second
	ejectMax  = 30 * time.Second
)

// connectFailed takes the endpoint out of rotation for a backoff.
func (e *Endpoint) connectFailed() {
	if e.onConnectFailed != nil {
		e.onConnectFailed()
	}
	n := e.failures.Add(1)
	d := ejectBase << min(n-1, 4)
	e.ejectedUntil.Store(time.Now().Add(min(d, ejectMax)).UnixNano())
}

// connected puts the endpoint back in good standing.
func (e *Endpoint) connected() {
	if e.failures.Load() != 0 {
		e.failures.Store(0)
		e.ejectedUntil.Store(0)
	}
}

// Cluster is the set of endpoints of one service.
type Cluster struct {
	Service   string
	Endpoints []*Endpoint
	// Protocol is what the service's endpoints declare they speak, when
	// they all agree ("tcp" skips protocol detection); else empty.
	Protocol string
	next     atomic.Uint32
	metrics  *serviceMetrics
}

// Pick returns the next endpoint in round robin that is not ejected and not
// in tried. When every untried endpoint is ejected it returns one of them
// anyway (better a likely failure than a certain one); nil when none is left.
func (c *Cluster) Pick(tried []*Endpoint) *Endpoint {
	n := len(c.Endpoints)
	if n == 0 {
		return nil
	}
	now := time.Now().UnixNano()
	start := c.next.Add(1) % uint32(n)
	var fallback *Endpoint
	for i := 0; i < n; i++ {
		e := c.Endpoints[(int(start)+i)%n]
		if contains(tried, e) {
			continue
		}
		if !e.Ejected(now) {
			return e
		}
		if fallback == nil {
			fallback = e
		}
	}
	return fallback
}

// tryEndpoints offers a request, or a connection, to one endpoint of c
// after another in Pick order, up to maxAttempts, counting every attempt
// after the first as a retry. try is told the endpoint and the attempt's
// number (1, 2, ...) and returns nil when the exchange is over, or why this
// endpoint failed and whether another may be tried. The result is nil, the
// last failure, or no-ready-instance when there was no endpoint to try.
// HTTP/1.1 (exchange.run), HTTP/2 (Outbound.route) and TCP (TCPProxy.dial)
// all move to another instance through here.
func (c *Cluster) tryEndpoints(try func(ep *Endpoint, attempt int) (err *MeshError, next bool)) *MeshError {
	var triedBuf [maxAttempts]*Endpoint
	tried := triedBuf[:0]
	var last *MeshError
	for len(tried) < maxAttempts {
		ep := c.Pick(tried)
		if ep == nil {
			break
		}
		tried = append(tried, ep)
		if len(tried) > 1 {
			c.metrics.retried()
		}
		err, next := try(ep, len(tried))
		if err == nil {
			return nil
		}
		last = err
		if !next {
			break
		}
	}
	if last == nil {
		last = &MeshError{Status: http.StatusServiceUnavailable, Reason: ReasonNoReadyInstance, Service: c.Service,
			Message: fmt.Sprintf("service %q has no ready instance", c.Service)}
	}
	return last
}

func contains(list []*Endpoint, e *Endpoint) bool {
	for _, x := range list {
		if x == e {
			return true
		}
	}
	return false
}

// EndpointSpec is what the sidecar knows of an endpoint from the control plane.
type EndpointSpec struct {
	Instance string
	Address  string
	Labels   map[string]string
	Protocol string // what the endpoint declares it speaks: http, h2c, tcp
}

// Table maps service names to clusters. Reads are one atomic load; Update
// builds a whole new map and swaps it in.
type Table struct {
	m       atomic.Pointer[map[string]*Cluster]
	metrics *Metrics
}

// NewTable returns an empty table reporting into m (may be nil).
func NewTable(m *Metrics) *Table {
	t := &Table{metrics: m}
	empty := map[string]*Cluster{}
	t.m.Store(&empty)
	return t
}

// Lookup returns the cluster of a service, or nil if the mesh has no such service.
func (t *Table) Lookup(service string) *Cluster { return (*t.m.Load())[service] }

func (t *Table) lookupBytes(service []byte) *Cluster { return (*t.m.Load())[string(service)] }

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

// Update replaces the table. Endpoints that keep their service and address
// keep their state; a service present with no endpoints stays known (its
// callers get no-ready-instance, not unknown-service).
func (t *Table) Update(services map[string][]EndpointSpec) {
	old := *t.m.Load()
	next := make(map[string]*Cluster, len(services))
	for name, specs := range services {
		c := &Cluster{Service: name, Endpoints: make([]*Endpoint, 0, len(specs))}
		var prev map[string]*Endpoint
		if oc := old[name]; oc != nil {
			c.metrics = oc.metrics
			prev = make(map[string]*Endpoint, len(oc.Endpoints))
			for _, e := range oc.Endpoints {
				prev[e.Address] = e
			}
		} else if t.metrics != nil {
			c.metrics = t.metrics.service(name)
		}
		sort.Slice(specs, func(i, j int) bool { return specs[i].Address < specs[j].Address })
		c.Protocol = commonProtocol(specs)
		for _, s := range specs {
			e := prev[s.Address]
			if e == nil || e.Instance != s.Instance || !maps.Equal(e.Labels, s.Labels) {
				e = newEndpoint(name, s.Instance, s.Address, s.Labels)
			}
			c.Endpoints = append(c.Endpoints, e)
		}
		next[name] = c
	}
	t.m.Store(&next)
	// Endpoints that left the table keep no connections open.
	for name, oc := range old {
		for _, e := range oc.Endpoints {
			if !contains(next[name].endpointsOrNil(), e) {
				e.closeIdle()
			}
		}
	}
}

// CloseIdle closes the connections of every endpoint that carry no
// request, and lets the others close when their last request ends.
func (t *Table) CloseIdle() {
	for _, c := range *t.m.Load() {
		for _, e := range c.Endpoints {
			e.closeIdle()
		}
	}
}

// closeIdle closes the endpoint's idle HTTP/1.1 connections, and its
// HTTP/2 connections once their streams have ended.
func (e *Endpoint) closeIdle() {
	e.pool.closeIdle()
	e.h2.closeIdle()
}

// commonProtocol is the protocol every spec declares, or "".
func commonProtocol(specs []EndpointSpec) string {
	if len(specs) == 0 {
		return ""
	}
	p := specs[0].Protocol
	for _, s := range specs[1:] {
		if s.Protocol != p {
			return ""
		}
	}
	return p
}

func (c *Cluster) endpointsOrNil() []*Endpoint {
	if c == nil {
		return nil
	}
	return c.Endpoints
}
