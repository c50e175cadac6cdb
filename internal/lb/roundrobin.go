package lb

import (
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/internal/endpoint"
	"github.com/weftmesh/weft/internal/request"
)

// RoundRobin takes the endpoints in turn, skipping ejected ones and those
// already tried. Its counter is shared by every request to the service;
// use one RoundRobin per service.
type RoundRobin struct {
	next atomic.Uint32
}

var _ Balancer = (*RoundRobin)(nil)

// Pick returns the next endpoint in turn that is in rotation and untried.
func (rr *RoundRobin) Pick(set []*endpoint.Endpoint, _ request.View, tried []*endpoint.Endpoint) *endpoint.Endpoint {
	n := len(set)
	if n == 0 {
		return nil
	}
	now := time.Now().UnixNano()
	start := rr.next.Add(1) % uint32(n)
	var fallback *endpoint.Endpoint
	for i := 0; i < n; i++ {
		e := set[(int(start)+i)%n]
		if Contains(tried, e) {
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
