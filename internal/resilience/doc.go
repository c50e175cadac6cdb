// Package resilience holds the data path's protection primitives: how
// many retries and hedges a service may add (RetryBudget, HedgeLimiter),
// how long to wait before a retry (Backoff), how many requests a caller
// may send (Limiter, KeyedLimiter), when to stop sending to a failing
// service (Breaker), how many requests may be in flight or waiting (Gate,
// Thresholds), and how slow a service is lately (LatencyTracker).
//
// A request plan drives them per request:
//
//	Limiter.Allow ──> Gate.Acquire ──> Breaker.Allow ──> RetryBudget.Request
//	                                                       │ attempt
//	        Permit.Done(success) <── outcome <─────────────┘
//	        failed and retryable? RetryBudget.TryRetry ──> Backoff.Delay ──> attempt
//	        slow? LatencyTracker.Quantile + HedgeLimiter.TryHedge ──> hedge
//
// Every primitive takes the time as an argument (now: nanoseconds on any
// clock that does not go back, e.g. time.Now().UnixNano()), reads no clock
// itself, and so runs in simulated time in tests. The per-request calls
// are lock-free (atomics, compare-and-swap) and allocate nothing; the
// rare ones (a breaker changing state, a new key in a KeyedLimiter, a
// latency window rotating) may lock or allocate, as their doc says.
//
// Each primitive is configured by a plain struct of options with a
// DefaultXxx function giving the documented defaults, and a Validate
// method whose error (an *OptionError) names the field, so that the
// fields of a traffic policy resource map onto them one to one. A
// configuration change builds a new value and state is not carried over,
// but for Thresholds.Set and Gate.SetMax, which keep the places taken.
package resilience

import "fmt"

// OptionError is a bad value in an options struct: Field is its name as
// a traffic policy spells it, dotted (e.g. "retryBudget.percent").
type OptionError struct {
	Field string
	Msg   string
}

func (e *OptionError) Error() string { return e.Field + ": " + e.Msg }

// optErr builds an *OptionError with a formatted message.
func optErr(field, format string, args ...any) error {
	return &OptionError{Field: field, Msg: fmt.Sprintf(format, args...)}
}
