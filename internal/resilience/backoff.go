package resilience

import (
	"math/bits"
	"time"
)

// Backoff is exponential backoff with full jitter, as Envoy's retry
// back-off: the wait before retry n (n = 1 for the first retry) is drawn
// uniformly from
//
//	[0, min(Max, Base × 2^(n−1)))
//
// so with the defaults (25 ms, 250 ms) the ceilings are 25, 50, 100, 200,
// 250, 250 ms... and the mean wait is half the ceiling. Full jitter
// spreads the retries of many callers that failed together evenly over
// the interval, and needs no state between attempts (decorrelated jitter
// would need the previous wait). Zero values are taken literally: start
// from DefaultBackoff.
type Backoff struct {
	// Base is the ceiling of the first retry's wait (default 25 ms).
	Base time.Duration
	// Max caps every ceiling (default 250 ms, ten times Base).
	Max time.Duration
}

// DefaultBackoff is Envoy's: 25 ms base, 250 ms max.
func DefaultBackoff() Backoff {
	return Backoff{Base: 25 * time.Millisecond, Max: 250 * time.Millisecond}
}

// Validate names the first field that is out of range.
func (b Backoff) Validate() error {
	if b.Base <= 0 {
		return optErr("backoff.baseInterval", "%v must be positive", b.Base)
	}
	if b.Max < b.Base {
		return optErr("backoff.maxInterval", "%v must be at least backoff.baseInterval (%v)", b.Max, b.Base)
	}
	return nil
}

// Ceiling is the longest wait before retry attempt (1 for the first
// retry; less counts as 1): min(Max, Base × 2^(attempt−1)).
func (b Backoff) Ceiling(attempt int) time.Duration {
	k := max(attempt-1, 0)
	if k >= 62 || b.Base > b.Max>>k {
		return b.Max
	}
	return b.Base << k
}

// Delay is the wait before retry attempt, drawn from [0, Ceiling(attempt))
// by rnd, a uniformly random 64-bit number (math/rand/v2's Uint64, say).
// It allocates nothing and reads no clock.
func (b Backoff) Delay(attempt int, rnd uint64) time.Duration {
	c := b.Ceiling(attempt)
	if c <= 0 {
		return 0
	}
	hi, _ := bits.Mul64(rnd, uint64(c))
	return time.Duration(hi)
}
