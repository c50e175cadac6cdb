package lb

import (
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/internal/endpoint"
)

// What the policies share: how an endpoint ranks for a request, counting
// and indexing the untried endpoints of the best rank, a random source and
// a clock that tests can set.

// tier ranks an untried endpoint: a balancer picks from the best tier
// that has one.
type tier uint8

const (
	ready     tier = iota // eligible, and not deferred
	deferred              // eligible, but the instance asked to be left alone (Retry-After)
	unhealthy             // not eligible: not ready, probe-down or ejected as an outlier
	ejected               // in its connect backoff: a connection failed lately
	numTiers
)

// healthy is the eligibility test every balancer uses, the one place
// that combines the health signals of package endpoint: an endpoint is
// eligible when it is ready (registry), not probe-down (active probes)
// and not ejected (outlier detection, connect backoff).
func healthy(e *endpoint.Endpoint, now int64) bool {
	return e.Ready() && !e.ProbeDown() && !e.Ejected(now)
}

// tierOf ranks e at now. In panic mode an endpoint that is not eligible
// ranks as if it were, unless it is in its connect backoff: a refused
// connection is a certain failure, a failed health signal only a likely
// one.
func tierOf(e *endpoint.Endpoint, now int64, panic bool) tier {
	switch {
	case e.BackedOff(now):
		return ejected
	case !panic && !healthy(e, now):
		return unhealthy
	case e.Deferred(now):
		return deferred
	}
	return ready
}

// usable reports whether e is untried, eligible and not deferred: the
// fast paths take it without looking at the rest of the set (in panic
// mode too, where it ranks ready as well).
func usable(e *endpoint.Endpoint, tried []*endpoint.Endpoint, now int64) bool {
	return tierOf(e, now, false) == ready && !Contains(tried, e)
}

// panicThreshold is the panic threshold of set's service, in percent:
// its group's (endpoint.Group), or the default.
func panicThreshold(set []*endpoint.Endpoint) int {
	if g := set[0].Group(); g != nil {
		return g.PanicThreshold()
	}
	return endpoint.DefaultPanicThreshold
}

// view is how a census ranks endpoints: at a time, in panic mode or not.
type view struct {
	now   int64
	panic bool
}

// tier ranks e in the view.
func (v view) tier(e *endpoint.Endpoint) tier { return tierOf(e, v.now, v.panic) }

// census finds, at now, whether set is in panic mode (fewer than its
// panic threshold eligible), the best tier among its untried endpoints
// and how many that tier holds (0: every endpoint was tried).
func census(set, tried []*endpoint.Endpoint, now int64) (v view, best tier, n int) {
	var counts [numTiers]int
	unhealthyDeferred, eligible := 0, 0
	for _, e := range set {
		t := tierOf(e, now, false)
		if t <= deferred {
			eligible++
		}
		if Contains(tried, e) {
			continue
		}
		counts[t]++
		if t == unhealthy && e.Deferred(now) {
			unhealthyDeferred++
		}
	}
	v = view{now: now}
	if len(set) > 0 && eligible*100 < panicThreshold(set)*len(set) {
		v.panic = true
		counts[ready] += counts[unhealthy] - unhealthyDeferred
		counts[deferred] += unhealthyDeferred
		counts[unhealthy] = 0
	}
	for t, c := range counts {
		if c > 0 {
			return v, tier(t), c
		}
	}
	return v, ready, 0
}

// in reports whether e is untried and of tier t in view v.
func (v view) in(e *endpoint.Endpoint, tried []*endpoint.Endpoint, t tier) bool {
	return v.tier(e) == t && !Contains(tried, e)
}

// nth is the k-th (from 0) untried endpoint of set in tier t of view v;
// k is below the count census gave.
func (v view) nth(set, tried []*endpoint.Endpoint, t tier, k int) *endpoint.Endpoint {
	for _, e := range set {
		if v.in(e, tried, t) {
			if k == 0 {
				return e
			}
			k--
		}
	}
	return nil
}

// source is a rand.Source safe for concurrent use without a lock:
// SplitMix64 over an atomic counter. Each balancer has its own, so a fixed
// seed repeats a test's picks, and Picks of different services do not
// share a cache line.
type source struct{ state atomic.Uint64 }

func (s *source) Uint64() uint64 {
	z := s.state.Add(0x9e3779b97f4a7c15)
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// newRand is a balancer's random source, seeded with seed (0: a random
// seed).
func newRand(seed uint64) *rand.Rand {
	if seed == 0 {
		seed = rand.Uint64()
	}
	s := &source{}
	s.state.Store(seed)
	return rand.New(s)
}

// intn is uniform in [0, n); a balancer made without its constructor (r
// nil) uses math/rand/v2's per-thread source.
func intn(r *rand.Rand, n int) int {
	if r == nil {
		return rand.IntN(n)
	}
	return r.IntN(n)
}

// two is two distinct indexes in [0, n), n >= 2, uniform over pairs.
func two(r *rand.Rand, n int) (int, int) {
	i := intn(r, n)
	j := intn(r, n-1)
	if j >= i {
		j++
	}
	return i, j
}

// clock is the time policies read (unix nanoseconds): the wall clock, or
// a test's.
type clock func() int64

func (c clock) now() int64 {
	if c == nil {
		return time.Now().UnixNano()
	}
	return c()
}
