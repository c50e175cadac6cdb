package lb

import (
	"math/rand/v2"
	"time"

	"github.com/weftmesh/weft/internal/endpoint"
	"github.com/weftmesh/weft/internal/request"
)

// FailurePenalty scales how much a failure rate costs in P2C: a rate f
// multiplies an endpoint's cost by 1 + FailurePenalty·f/(1−f). At 10, one
// failure in eight (f = 1/8) costs 2.4×, half failing 11×, nine in ten
// 91×: an instance ten times faster than the rest that fails half its
// requests already loses to them.
const FailurePenalty = 10

// maxFailureRate caps f in the penalty, which grows without bound as f
// nears 1.
const maxFailureRate = 0.999

// P2C is the power of two choices over a peak-EWMA latency estimate, as
// Finagle's and Linkerd's, with failures priced in: it draws two untried
// endpoints at random and takes the one of lower cost,
//
//	cost = peak-EWMA latency × (in flight + 1) × (1 + FailurePenalty·f/(1−f))
//
// where f is the endpoint's failure rate (resets, timeouts, connect
// failures, 502/503/504/429 and gRPC UNAVAILABLE/RESOURCE_EXHAUSTED; see
// package endpoint). The plain form takes an instance that answers a fast
// 503 for a fast instance; with the penalty an instance failing fast gets
// little traffic, and is tried again as its estimates decay. Endpoints
// deferred by a Retry-After are drawn only when no ready one is left,
// ejected ones only when nothing else is (as RoundRobin).
//
// Concurrent Picks are safe; make one with NewP2C per service (the zero
// value works, with a random source shared by the process).
type P2C struct {
	rnd   *rand.Rand
	clock clock
}

var _ Balancer = (*P2C)(nil)

// NewP2C returns a P2C whose random choices follow seed (0: a random seed).
func NewP2C(seed uint64) *P2C { return &P2C{rnd: newRand(seed)} }

// Pick returns the cheaper of two untried endpoints drawn at random from
// the best tier (ready, then deferred, then ejected); nil when every
// endpoint was tried.
func (p *P2C) Pick(set []*endpoint.Endpoint, _ request.View, tried []*endpoint.Endpoint) *endpoint.Endpoint {
	return pickTwo(set, tried, p.clock.now(), p.rnd, nil)
}

// cheaperPeak is P2C's choice between a and b: the lower peakCost, where
// an endpoint whose estimate is stale (endpoint.PeakStale) is priced at
// the other's latency, so only in flight and failures tell them apart.
func cheaperPeak(a, b *endpoint.Endpoint, now int64) *endpoint.Endpoint {
	la, lb := a.PeakLatency(now), b.PeakLatency(now)
	switch sa, sb := a.PeakStale(now), b.PeakStale(now); {
	case sa && !sb:
		la = lb
	case sb && !sa:
		lb = la
	}
	if costAt(b, lb, now) < costAt(a, la, now) {
		return b
	}
	return a
}

// peakCost is P2C's cost of e at now.
func peakCost(e *endpoint.Endpoint, now int64) float64 { return costAt(e, e.PeakLatency(now), now) }

// costAt is P2C's cost of e at now with latency lat, or the mean age of
// its attempts in flight if that is more: an instance that has stopped
// answering is priced by how long its requests have waited, before the
// first of them ends and raises its estimate.
func costAt(e *endpoint.Endpoint, lat time.Duration, now int64) float64 {
	if e.InFlight() > 0 {
		lat = max(lat, e.PendingAge(now))
	}
	f := min(e.FailureRate(now), maxFailureRate)
	return float64(lat) * float64(e.InFlight()+1) * (1 + FailurePenalty*f/(1-f))
}

// pickTwo is the power of two choices over cost, shared by P2C and
// LeastRequest. The fast path draws two endpoints of the whole set and
// keeps them when both are ready and untried; else it counts the best
// tier (census: panic mode included) and draws two of it, so every pair
// of that tier is as likely.
func pickTwo(set, tried []*endpoint.Endpoint, now int64, r *rand.Rand, cost func(*endpoint.Endpoint, int64) float64) *endpoint.Endpoint {
	switch len(set) {
	case 0:
		return nil
	case 1:
		if Contains(tried, set[0]) {
			return nil
		}
		return set[0]
	}
	i, j := two(r, len(set))
	a, b := set[i], set[j]
	if !usable(a, tried, now) || !usable(b, tried, now) {
		v, t, n := census(set, tried, now)
		switch n {
		case 0:
			return nil
		case 1:
			return v.nth(set, tried, t, 0)
		}
		// The pair drawn stands if both are of the best tier (in panic
		// mode, ejected ones may be): every pair of the tier stays as likely.
		if !v.in(a, tried, t) || !v.in(b, tried, t) {
			i, j = two(r, n)
			a, b = v.nth(set, tried, t, i), v.nth(set, tried, t, j)
		}
	}
	if cost == nil {
		return cheaperPeak(a, b, now)
	}
	if cost(b, now) < cost(a, now) {
		return b
	}
	return a
}
