package resilience

import (
	"testing"
	"time"
)

func newBudget(t testing.TB, o RetryBudgetOptions) *RetryBudget {
	t.Helper()
	b, err := NewRetryBudget(o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// With no traffic, the floor alone allows MinPerSecond × Window retries.
func TestBudgetFloor(t *testing.T) {
	b := newBudget(t, DefaultRetryBudgetOptions())
	if got := b.Available(t0); got != 100 {
		t.Errorf("available: got %d, want 100", got)
	}
	for i := range 100 {
		if !b.TryRetry(t0) {
			t.Fatalf("retry %d: denied, want granted (floor of 100)", i+1)
		}
	}
	if b.TryRetry(t0) {
		t.Error("retry 101: granted, want denied")
	}
	if b.Granted() != 100 || b.Denied() != 1 {
		t.Errorf("counters: got granted %d denied %d, want 100 and 1", b.Granted(), b.Denied())
	}
	// The retries leave the window after it has passed: 10 buckets back
	// plus the current one.
	if b.TryRetry(t0 + 10*sec + 999*ms) {
		t.Error("retry at t0+10.999s: granted, want denied (t0's bucket still counts)")
	}
	if !b.TryRetry(t0 + 11*sec) {
		t.Error("retry at t0+11s: denied, want granted")
	}
}

// With traffic, Percent of the requests may be retried.
func TestBudgetPercent(t *testing.T) {
	o := DefaultRetryBudgetOptions()
	o.MinPerSecond = 0
	b := newBudget(t, o)
	for range 10000 {
		b.Request(t0)
	}
	n := 0
	for b.TryRetry(t0) {
		n++
	}
	if n != 2000 {
		t.Errorf("got %d retries for 10000 requests, want 2000", n)
	}
	if got := b.Available(t0); got != 0 {
		t.Errorf("available: got %d, want 0", got)
	}
}

// Zero percent and no floor: no retry at all.
func TestBudgetNone(t *testing.T) {
	b := newBudget(t, RetryBudgetOptions{Window: 10 * time.Second})
	b.Request(t0)
	if b.TryRetry(t0) {
		t.Error("granted, want denied")
	}
}

// Under 100 % failures, with every request retried as long as the budget
// allows (up to 3 retries each), retries stay within 20 % of requests
// plus 10 a second, and the budget is used up to that.
func TestBudgetUnderTotalFailure(t *testing.T) {
	for _, rate := range []int{5, 100, 1000} { // requests a second
		b := newBudget(t, DefaultRetryBudgetOptions())
		const seconds = 120
		gap := sec / int64(rate)
		now := t0
		requests := 0
		for range seconds * rate {
			now += gap
			b.Request(now)
			requests++
			for range 3 {
				if !b.TryRetry(now) {
					break
				}
			}
		}
		retries := float64(b.Granted())
		bound := 0.2*float64(requests) + 10*seconds
		t.Logf("%d req/s: %.0f retries for %d requests (20%% + 10/s: %.0f)", rate, retries, requests, bound)
		// One window's floor (the first window spends it at once) is
		// the most the sum may exceed the rate by.
		if retries > bound+100 {
			t.Errorf("%d req/s: got %.0f retries for %d requests, want at most %.0f", rate, retries, requests, bound+100)
		}
		// Nor should it refuse much that fits: 3 retries a request is
		// more than any budget here allows, except at 5 req/s.
		want := min(bound, 3*float64(requests))
		if retries < 0.9*want {
			t.Errorf("%d req/s: got %.0f retries for %d requests, want at least %.0f", rate, retries, requests, 0.9*want)
		}
	}
}

func TestBudgetConcurrent(t *testing.T) {
	o := DefaultRetryBudgetOptions()
	o.MinPerSecond = 0
	b := newBudget(t, o)
	const n, per = 4, 10000
	hammer(n, func(g int) {
		for i := range per {
			now := t0 + int64(i)*100_000 // 1 s in all
			b.Request(now)
			b.TryRetry(now)
		}
	})
	if got := b.Granted() + b.Denied(); got != n*per {
		t.Errorf("granted + denied: got %d, want %d", got, n*per)
	}
	if got := b.Granted(); got > n*per/5 {
		t.Errorf("granted: got %d, want at most %d", got, n*per/5)
	}
	if got := b.Granted(); got < n*per/10 {
		t.Errorf("granted: got %d, want at least %d (half the budget)", got, n*per/10)
	}
}

func TestBudgetNoAllocs(t *testing.T) {
	b := newBudget(t, DefaultRetryBudgetOptions())
	now := t0
	noAllocs(t, "Request+TryRetry", func() {
		now += ms
		b.Request(now)
		b.TryRetry(now)
	})
}

func BenchmarkRetryBudget(b *testing.B) {
	bu := newBudget(b, DefaultRetryBudgetOptions())
	b.Run("Request", func(b *testing.B) {
		now := t0
		for b.Loop() {
			now += 1000
			bu.Request(now)
		}
	})
	b.Run("TryRetry", func(b *testing.B) {
		now := t0
		for b.Loop() {
			now += 1000
			bu.TryRetry(now)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			now := t0
			for pb.Next() {
				now += 1000
				bu.Request(now)
				bu.TryRetry(now)
			}
		})
	})
}
