package resilience

import (
	"math"
	"sync/atomic"
	"testing"
	"time"
)

func newLimiter(t testing.TB, rate float64, burst int) *Limiter {
	t.Helper()
	l, err := NewLimiter(rate, burst)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLimiterBurstThenRate(t *testing.T) {
	l := newLimiter(t, 10, 5) // a token every 100 ms
	if got := l.Tokens(t0); got != 5 {
		t.Errorf("tokens of a new limiter: got %d, want 5", got)
	}
	for i := range 5 {
		if ok, _ := l.Allow(t0); !ok {
			t.Fatalf("request %d of the burst: denied, want allowed", i+1)
		}
	}
	ok, after := l.Allow(t0)
	if ok || after != 100*time.Millisecond {
		t.Errorf("past the burst: got %v, retry after %v; want false, 100ms", ok, after)
	}
	if ok, after := l.Allow(t0 + 40*ms); ok || after != 60*time.Millisecond {
		t.Errorf("40 ms later: got %v, retry after %v; want false, 60ms", ok, after)
	}
	// Waiting what it said is enough, and one token is all there is.
	if ok, _ := l.Allow(t0 + 100*ms); !ok {
		t.Error("after retryAfter: denied, want allowed")
	}
	if ok, _ := l.Allow(t0 + 100*ms); ok {
		t.Error("second request after one refill: allowed, want denied")
	}
	// A long quiet spell refills no more than the burst.
	if got := l.Tokens(t0 + time.Hour.Nanoseconds()); got != 5 {
		t.Errorf("tokens after an hour: got %d, want 5", got)
	}
}

// Over 10 s of steady overload, the admitted rate is within 10 % of the
// configured one, whatever the offered rate and burst.
func TestLimiterAccuracyUnderOverload(t *testing.T) {
	tests := []struct {
		rate    float64
		burst   int
		offered int // requests a second
	}{
		{100, 10, 1000},
		{100, 100, 150},
		{3.3, 1, 100},
		{1000, 50, 7919},
		{50000, 1000, 200000},
		{7, 7, 1000},
	}
	for _, tt := range tests {
		l := newLimiter(t, tt.rate, tt.burst)
		gap := sec / int64(tt.offered)
		admitted := 0
		for now := t0; now < t0+10*sec; now += gap {
			if ok, _ := l.Allow(now); ok {
				admitted++
			}
		}
		got := float64(admitted) / 10
		if math.Abs(got-tt.rate) > 0.1*tt.rate {
			t.Errorf("rate %g burst %d offered %d/s: admitted %.1f/s, want %g ± 10%%", tt.rate, tt.burst, tt.offered, got, tt.rate)
		}
		// And never more than the bucket allows.
		if max := float64(tt.burst) + 10*tt.rate; float64(admitted) > max+1 {
			t.Errorf("rate %g burst %d: admitted %d, want at most %.0f", tt.rate, tt.burst, admitted, max)
		}
	}
}

// Clients that wait what they are told get through at the rate.
func TestLimiterRetryAfterIsHonest(t *testing.T) {
	l := newLimiter(t, 20, 1)
	now := t0
	for range 100 {
		ok, after := l.Allow(now)
		if !ok {
			now += int64(after)
			if ok, after2 := l.Allow(now); !ok {
				t.Fatalf("after waiting %v: denied again, retry after %v", after, after2)
			}
		}
		now += ms
	}
}

// Concurrent callers at one instant share exactly the burst.
func TestLimiterConcurrent(t *testing.T) {
	l := newLimiter(t, 1, 1000)
	var admitted atomic.Int64
	hammer(4, func(int) {
		for range 1000 {
			if ok, _ := l.Allow(t0); ok {
				admitted.Add(1)
			}
		}
	})
	if got := admitted.Load(); got != 1000 {
		t.Errorf("admitted: got %d, want 1000", got)
	}
}

func TestLimiterNoAllocs(t *testing.T) {
	l := newLimiter(t, 1000, 10)
	now := t0
	noAllocs(t, "Allow", func() {
		now += 100_000
		l.Allow(now)
	})
}

func BenchmarkLimiterAllow(b *testing.B) {
	l := newLimiter(b, 1e6, 1000)
	b.Run("serial", func(b *testing.B) {
		now := t0
		for b.Loop() {
			now += 500
			l.Allow(now)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			now := t0
			for pb.Next() {
				now += 500
				l.Allow(now)
			}
		})
	})
}
