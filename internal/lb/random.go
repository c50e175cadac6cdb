package lb

import (
	"math/rand/v2"

	"github.com/weftmesh/weft/internal/endpoint"
	"github.com/weftmesh/weft/internal/request"
)

// Random picks an untried endpoint uniformly at random from the best
// tier: ready, then deferred (Retry-After), then ejected.
//
// Concurrent Picks are safe; make one with NewRandom per service (the
// zero value works, with a random source shared by the process).
type Random struct {
	rnd   *rand.Rand
	clock clock
}

var _ Balancer = (*Random)(nil)

// NewRandom returns a Random whose choices follow seed (0: a random seed).
func NewRandom(seed uint64) *Random { return &Random{rnd: newRand(seed)} }

// Pick returns an untried endpoint at random; nil when every endpoint
// was tried.
func (r *Random) Pick(set []*endpoint.Endpoint, _ request.View, tried []*endpoint.Endpoint) *endpoint.Endpoint {
	return pickRandom(set, tried, r.clock.now(), r.rnd)
}

// pickRandom draws one endpoint of the whole set and keeps it when it is
// ready and untried; else it draws among the best tier. Either way each
// endpoint of that tier is as likely.
func pickRandom(set, tried []*endpoint.Endpoint, now int64, r *rand.Rand) *endpoint.Endpoint {
	if len(set) == 0 {
		return nil
	}
	e := set[intn(r, len(set))]
	if usable(e, tried, now) {
		return e
	}
	v, t, n := census(set, tried, now)
	switch {
	case n == 0:
		return nil
	case v.in(e, tried, t):
		return e // of the best tier (in panic mode, an ejected one may be)
	}
	return v.nth(set, tried, t, intn(r, n))
}
