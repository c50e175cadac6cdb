package lb

import (
	"math/rand/v2"

	"github.com/weftmesh/weft/internal/endpoint"
	"github.com/weftmesh/weft/internal/request"
)

// LeastRequest is the power of two choices on requests in flight alone:
// it draws two untried endpoints at random and takes the one with fewer
// attempts in flight (the first drawn on a tie). It suits instances of
// equal speed where latency says little (long streams, WebSockets).
// Tiers and fallbacks are P2C's: deferred endpoints only when no ready one
// is left, ejected ones only when nothing else is.
//
// Concurrent Picks are safe; make one with NewLeastRequest per service
// (the zero value works, with a random source shared by the process).
type LeastRequest struct {
	rnd   *rand.Rand
	clock clock
}

var _ Balancer = (*LeastRequest)(nil)

// NewLeastRequest returns a LeastRequest whose random choices follow seed
// (0: a random seed).
func NewLeastRequest(seed uint64) *LeastRequest { return &LeastRequest{rnd: newRand(seed)} }

// Pick returns the less busy of two untried endpoints drawn at random
// from the best tier; nil when every endpoint was tried.
func (l *LeastRequest) Pick(set []*endpoint.Endpoint, _ request.View, tried []*endpoint.Endpoint) *endpoint.Endpoint {
	return pickTwo(set, tried, l.clock.now(), l.rnd, inFlight)
}

func inFlight(e *endpoint.Endpoint, _ int64) float64 { return float64(e.InFlight()) }
