package resilience

import (
	"math"
	"sync/atomic"
	"time"
)

// LimiterOptions configure a token bucket: it holds at most Burst
// tokens, refills at Rate a second, and each request takes one. There
// are no defaults: a rate limit is always given.
type LimiterOptions struct {
	// Rate is the sustained requests per second (more than 0, at most
	// 10^9).
	Rate float64
	// Burst is how many requests may come at once after a quiet spell
	// (at least 1; a second's worth, Rate, is a common choice).
	Burst int
}

// Validate names the first field that is out of range.
func (o LimiterOptions) Validate() error {
	if !(o.Rate > 0 && o.Rate <= 1e9) {
		return optErr("rateLimit.requestsPerSecond", "%g must be more than 0 and at most 1000000000", o.Rate)
	}
	if o.Burst < 1 {
		return optErr("rateLimit.burst", "%d must be at least 1", o.Burst)
	}
	if float64(o.Burst)*(1e9/o.Rate) > 1<<62 {
		return optErr("rateLimit.burst", "%d at %g per second takes more than a century to refill", o.Burst, o.Rate)
	}
	return nil
}

// Limiter is a token bucket, kept as the generic cell rate algorithm
// (GCRA): one word, the theoretical arrival time of the next request,
// moved forward one emission interval (1/Rate) per request admitted. A
// request at now is admitted when that leaves the word at most Burst
// intervals ahead of now. It is the same as a bucket of Burst tokens
// refilled at Rate, in one compare-and-swap: lock-free, allocation-free,
// safe for concurrent use. Over any span T it admits at most
// Burst + Rate × T requests.
type Limiter struct {
	interval  int64 // nanoseconds per token
	tolerance int64 // Burst × interval
	tat       atomic.Int64
}

// NewLimiter returns a full bucket of burst tokens refilled at
// ratePerSecond, or the error of LimiterOptions{ratePerSecond, burst}.
func NewLimiter(ratePerSecond float64, burst int) (*Limiter, error) {
	o := LimiterOptions{Rate: ratePerSecond, Burst: burst}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	l := &Limiter{}
	l.init(o)
	return l, nil
}

func (l *Limiter) init(o LimiterOptions) {
	l.interval = max(int64(math.Round(1e9/o.Rate)), 1)
	l.tolerance = int64(o.Burst) * l.interval
}

// Allow takes a token at now (nanoseconds) if there is one. When there is
// not, retryAfter is how long until there will be (for a Retry-After
// header); it is 0 when ok.
func (l *Limiter) Allow(now int64) (ok bool, retryAfter time.Duration) {
	for {
		tat := l.tat.Load()
		next := max(tat, now) + l.interval
		if over := next - now - l.tolerance; over > 0 {
			return false, time.Duration(over)
		}
		if l.tat.CompareAndSwap(tat, next) {
			return true, 0
		}
	}
}

// Tokens is how many requests the bucket would admit at now, at once.
func (l *Limiter) Tokens(now int64) int {
	ahead := max(l.tat.Load()-now, 0)
	return int((l.tolerance - ahead) / l.interval)
}
