package resilience

import "time"

// RetryBudgetOptions configure a RetryBudget (Linkerd's retry budget, and
// Gateway API's retry budget with a floor): over any sliding Window,
//
//	retries ≤ Percent/100 × requests + MinPerSecond × Window/1s
//
// where requests are first attempts. Zero values are taken literally:
// start from DefaultRetryBudgetOptions.
type RetryBudgetOptions struct {
	// Percent is the share of requests that may be retried, from 0 to
	// 100 (default 20).
	Percent float64
	// MinPerSecond is the retries allowed per second whatever the
	// traffic, so that a quiet service can still retry (default 10).
	MinPerSecond float64
	// Window is how far back requests and retries count (default 10 s;
	// from 1 s to 1 h).
	Window time.Duration
}

// DefaultRetryBudgetOptions are 20 %, 10 a second, over 10 s.
func DefaultRetryBudgetOptions() RetryBudgetOptions {
	return RetryBudgetOptions{Percent: 20, MinPerSecond: 10, Window: 10 * time.Second}
}

// Validate names the first field that is out of range.
func (o RetryBudgetOptions) Validate() error {
	if !(o.Percent >= 0 && o.Percent <= 100) {
		return optErr("retryBudget.percent", "%g must be between 0 and 100", o.Percent)
	}
	if !(o.MinPerSecond >= 0 && o.MinPerSecond <= 1e6) {
		return optErr("retryBudget.minRetriesPerSecond", "%g must be between 0 and 1000000", o.MinPerSecond)
	}
	return checkWindow("retryBudget.window", o.Window)
}

// RetryBudget bounds the retries of one destination to a share of its
// requests, so that retries cannot multiply the load on a service that is
// failing: under 100 % failures a caller adds at most Percent more
// requests (plus the floor), where a fixed number of attempts would add
// (attempts − 1) × 100 %.
//
// Count every first attempt with Request; ask TryRetry before every
// retry. Both are lock-free and allocate nothing; a RetryBudget is safe
// for concurrent use. Make one per destination service with
// NewRetryBudget.
type RetryBudget struct {
	s share
}

// NewRetryBudget returns a budget with nothing spent, or the options'
// error.
func NewRetryBudget(o RetryBudgetOptions) (*RetryBudget, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	b := &RetryBudget{}
	b.s.init(o.Window, o.Percent/100, o.MinPerSecond*o.Window.Seconds())
	return b, nil
}

// Request counts one first attempt at now (nanoseconds).
func (b *RetryBudget) Request(now int64) { b.s.request(now) }

// TryRetry withdraws one retry at now if the budget allows it, and
// reports whether it did; a refusal is counted in Denied.
func (b *RetryBudget) TryRetry(now int64) bool { return b.s.try(now) }

// Available is how many retries the budget allows at now (for /config
// and describe).
func (b *RetryBudget) Available(now int64) int { return b.s.available(now) }

// Granted is the number of retries TryRetry allowed, ever.
func (b *RetryBudget) Granted() uint64 { return b.s.granted.Load() }

// Denied is the number of retries TryRetry refused, ever.
func (b *RetryBudget) Denied() uint64 { return b.s.denied.Load() }
