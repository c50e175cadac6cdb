package lb

import (
	"sync/atomic"

	"github.com/weftmesh/weft/internal/endpoint"
	"github.com/weftmesh/weft/internal/request"
)

// RoundRobin takes the endpoints in turn, skipping those already tried
// and those not in the best tier (ready, then deferred, then not
// eligible, then in connect backoff; panic mode included: see the
// package doc). Its counter is shared by every request to the service;
// use one RoundRobin per service.
type RoundRobin struct {
	next  atomic.Uint32
	clock clock
}

var _ Balancer = (*RoundRobin)(nil)

// Pick returns the next endpoint in turn that is untried and of the best
// tier; nil when every endpoint was tried.
func (rr *RoundRobin) Pick(set []*endpoint.Endpoint, _ request.View, tried []*endpoint.Endpoint) *endpoint.Endpoint {
	n := len(set)
	if n == 0 {
		return nil
	}
	now := rr.clock.now()
	start := int(rr.next.Add(1) % uint32(n))
	if e := set[start]; usable(e, tried, now) {
		return e // the fast path: its turn, and ready
	}
	v, t, k := census(set, tried, now)
	if k == 0 {
		return nil
	}
	for i := 0; i < n; i++ {
		if e := set[(start+i)%n]; v.in(e, tried, t) {
			return e
		}
	}
	return nil // not reached: census counted one
}
