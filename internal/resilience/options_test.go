package resilience

import (
	"errors"
	"math"
	"testing"
	"time"
)

func TestDefaultsValidate(t *testing.T) {
	for name, err := range map[string]error{
		"retry budget": DefaultRetryBudgetOptions().Validate(),
		"backoff":      DefaultBackoff().Validate(),
		"breaker":      DefaultBreakerOptions().Validate(),
		"thresholds":   DefaultThresholdsOptions().Validate(),
		"latency":      DefaultLatencyOptions().Validate(),
		"hedge":        DefaultHedgeOptions().Validate(),
	} {
		if err != nil {
			t.Errorf("%s defaults: got %v, want nil", name, err)
		}
	}
}

func TestValidateNamesTheField(t *testing.T) {
	budget := func(f func(*RetryBudgetOptions)) error {
		o := DefaultRetryBudgetOptions()
		f(&o)
		return o.Validate()
	}
	breaker := func(f func(*BreakerOptions)) error {
		o := DefaultBreakerOptions()
		f(&o)
		return o.Validate()
	}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"percent", budget(func(o *RetryBudgetOptions) { o.Percent = 150 }),
			"retryBudget.percent: 150 must be between 0 and 100"},
		{"percent NaN", budget(func(o *RetryBudgetOptions) { o.Percent = math.NaN() }),
			"retryBudget.percent: NaN must be between 0 and 100"},
		{"min per second", budget(func(o *RetryBudgetOptions) { o.MinPerSecond = -1 }),
			"retryBudget.minRetriesPerSecond: -1 must be between 0 and 1000000"},
		{"budget window", budget(func(o *RetryBudgetOptions) { o.Window = 0 }),
			"retryBudget.window: 0s must be between 1s and 1h0m0s"},
		{"backoff base", Backoff{Max: time.Second}.Validate(),
			"backoff.baseInterval: 0s must be positive"},
		{"backoff max", Backoff{Base: time.Second, Max: time.Millisecond}.Validate(),
			"backoff.maxInterval: 1ms must be at least backoff.baseInterval (1s)"},
		{"rate", LimiterOptions{Rate: 0, Burst: 1}.Validate(),
			"rateLimit.requestsPerSecond: 0 must be more than 0 and at most 1000000000"},
		{"burst", LimiterOptions{Rate: 10}.Validate(),
			"rateLimit.burst: 0 must be at least 1"},
		{"burst too long", LimiterOptions{Rate: 1e-9, Burst: 1000}.Validate(),
			"rateLimit.burst: 1000 at 1e-09 per second takes more than a century to refill"},
		{"max keys", KeyedLimiterOptions{Rate: 10, Burst: 10}.Validate(),
			"rateLimit.maxKeys: 0 must be at least 1"},
		{"failure ratio", breaker(func(o *BreakerOptions) { o.FailureRatio = 0 }),
			"circuitBreaker.failureRatio: 0 must be more than 0 and at most 1"},
		{"min requests", breaker(func(o *BreakerOptions) { o.MinRequests = 0 }),
			"circuitBreaker.minRequests: 0 must be at least 1"},
		{"breaker window", breaker(func(o *BreakerOptions) { o.Window = 2 * time.Hour }),
			"circuitBreaker.window: 2h0m0s must be between 1s and 1h0m0s"},
		{"open for", breaker(func(o *BreakerOptions) { o.OpenFor = 0 }),
			"circuitBreaker.openFor: 0s must be positive"},
		{"half-open requests", breaker(func(o *BreakerOptions) { o.HalfOpenRequests = 0 }),
			"circuitBreaker.halfOpenRequests: 0 must be between 1 and 10000"},
		{"max requests", ThresholdsOptions{MaxPending: 1}.Validate(),
			"connectionPool.maxRequests: 0 must be at least 1"},
		{"max pending", ThresholdsOptions{MaxRequests: 1}.Validate(),
			"connectionPool.maxPendingRequests: 0 must be at least 1"},
		{"latency window", LatencyOptions{MinSamples: 1}.Validate(),
			"hedging.latencyWindow: 0s must be between 1s and 1h0m0s"},
		{"min samples", LatencyOptions{Window: time.Second}.Validate(),
			"hedging.minSamples: 0 must be at least 1"},
		{"hedge percent", HedgeOptions{MaxPercent: 101, Window: time.Second}.Validate(),
			"hedging.maxPercent: 101 must be between 0 and 100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err == nil {
				t.Fatalf("got nil, want %q", tt.want)
			}
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			var oe *OptionError
			if !errors.As(tt.err, &oe) {
				t.Errorf("got %T, want *OptionError", tt.err)
			}
		})
	}
}

func TestConstructorsRefuseBadOptions(t *testing.T) {
	if _, err := NewRetryBudget(RetryBudgetOptions{Percent: -1, Window: time.Second}); err == nil {
		t.Error("NewRetryBudget: got nil error, want one")
	}
	if _, err := NewLimiter(-1, 1); err == nil {
		t.Error("NewLimiter: got nil error, want one")
	}
	if _, err := NewKeyedLimiter(KeyedLimiterOptions{Rate: 1, Burst: 1}); err == nil {
		t.Error("NewKeyedLimiter: got nil error, want one")
	}
	if _, err := NewBreaker(BreakerOptions{}, t0); err == nil {
		t.Error("NewBreaker: got nil error, want one")
	}
	if _, err := NewThresholds(ThresholdsOptions{}); err == nil {
		t.Error("NewThresholds: got nil error, want one")
	}
	if _, err := NewGate(0); err == nil {
		t.Error("NewGate: got nil error, want one")
	}
	if _, err := NewLatencyTracker(LatencyOptions{}); err == nil {
		t.Error("NewLatencyTracker: got nil error, want one")
	}
	if _, err := NewHedgeLimiter(HedgeOptions{}); err == nil {
		t.Error("NewHedgeLimiter: got nil error, want one")
	}
}
