// Package lb holds the load balancers: each picks one endpoint of a
// service for one request, behind one method.
//
//	Set (endpoints of a service) + request.View + tried ──Pick──> *Endpoint
//
// One policy a file, each with a compile-time check that it is a
// Balancer: RoundRobin, P2C (the default: power of two choices over a
// peak-EWMA latency estimate × in flight, with failures priced in),
// LeastRequest, Random, Weighted (smooth weighted round robin by label)
// and RingHash (consistent hashing on a header); Locality wraps one to
// prefer the caller's zone. New makes one by name, for configuration.
// Balancers read endpoint state (health, Retry-After deferral, in flight,
// the estimates of package endpoint), rank the untried endpoints (pick.go)
//
//	ready      eligible: ready, not probe-down, not ejected
//	deferred   eligible, but asked to be left alone (Retry-After)
//	unhealthy  not ready, probe-down, or ejected as an outlier
//	ejected    in its connect backoff (a connection failed lately)
//
// and pick from the best tier that has one. Panic mode: when fewer than
// the service's panic threshold (endpoint.OutlierOptions.PanicThreshold,
// default 50%) of the set is eligible, unhealthy endpoints rank as if
// they were healthy, as Envoy's panic mode does, so that a health signal
// gone wrong across the set does not pile all traffic on a few; those in
// connect backoff still rank last. Balancers never block on I/O; none
// allocates in Pick but RingHash when it builds a ring.
package lb

import (
	"github.com/weftmesh/weft/internal/endpoint"
	"github.com/weftmesh/weft/internal/request"
)

// Balancer picks an endpoint for a request from a service's endpoints.
// tried holds the endpoints this request already tried (or is trying):
// they are not picked again. When no untried endpoint is eligible, a
// balancer returns one of the others anyway (better a likely failure
// than a certain one); nil when none is left.
type Balancer interface {
	Pick(set []*endpoint.Endpoint, r request.View, tried []*endpoint.Endpoint) *endpoint.Endpoint
}

// Contains reports whether e is in list.
func Contains(list []*endpoint.Endpoint, e *endpoint.Endpoint) bool {
	for _, x := range list {
		if x == e {
			return true
		}
	}
	return false
}
