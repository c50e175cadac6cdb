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
	ready    tier = iota // in rotation
	deferred             // the instance asked to be left alone (Retry-After)
	ejected              // out of rotation after connect failures
)

func tierOf(e *endpoint.Endpoint, now int64) tier {
	if e.Ejected(now) {
		return ejected
	}
	if e.Deferred(now) {
		return deferred
	}
	return ready
}

// usable reports whether e is untried and ready: the fast paths take it
// without looking at the rest of the set.
func usable(e *endpoint.Endpoint, tried []*endpoint.Endpoint, now int64) bool {
	return tierOf(e, now) == ready && !Contains(tried, e)
}

// census finds the best tier among the untried endpoints of set and how
// many it holds (0: every endpoint was tried).
func census(set, tried []*endpoint.Endpoint, now int64) (best tier, n int) {
	var counts [ejected + 1]int
	for _, e := range set {
		if !Contains(tried, e) {
			counts[tierOf(e, now)]++
		}
	}
	for t, c := range counts {
		if c > 0 {
			return tier(t), c
		}
	}
	return ready, 0
}

// nth is the k-th (from 0) untried endpoint of set in tier t; k is below
// the count census gave.
func nth(set, tried []*endpoint.Endpoint, now int64, t tier, k int) *endpoint.Endpoint {
	for _, e := range set {
		if tierOf(e, now) == t && !Contains(tried, e) {
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
