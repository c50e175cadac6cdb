package resilience

import (
	"math"
	"testing"
	"time"
)

func newTracker(t testing.TB) *LatencyTracker {
	t.Helper()
	l, err := NewLatencyTracker(DefaultLatencyOptions())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestHistogramBuckets(t *testing.T) {
	prev := -1
	for v := int64(0); v < 1<<40; v = v*17/16 + 1 {
		i := bucketOf(v)
		if i < prev {
			t.Fatalf("bucketOf(%d) = %d, after %d for a smaller value", v, i, prev)
		}
		prev = i
		if lo := bucketLow(i); v < lo || (i < histBuckets-1 && v >= bucketLow(i+1)) {
			t.Fatalf("bucketOf(%d) = %d: [%d, %d) does not hold it", v, i, lo, bucketLow(i+1))
		}
		if i > 0 && i < histBuckets-1 {
			if w := float64(bucketLow(i+1)-bucketLow(i)) / float64(bucketLow(i)); w > 1.0/histSub+1e-9 {
				t.Fatalf("bucket %d is %.3f of its low bound wide, want at most %.3f", i, w, 1.0/histSub)
			}
		}
	}
	if got := bucketOf(math.MaxInt64); got != histBuckets-1 {
		t.Errorf("bucketOf(max): got %d, want the last, %d", got, histBuckets-1)
	}
}

func TestLatencyQuantiles(t *testing.T) {
	l := newTracker(t)
	// 1, 2, ... 1000 ms, spread over the first second of a window.
	for i := 1; i <= 1000; i++ {
		l.Observe(time.Duration(i)*time.Millisecond, t0+int64(i)*ms)
	}
	now := t0 + 2*sec
	for _, q := range []float64{0.5, 0.9, 0.95, 0.99} {
		got, ok := l.Quantile(q, now)
		want := q * float64(time.Second)
		if !ok || math.Abs(float64(got)-want) > 0.07*want {
			t.Errorf("p%g: got %v, %v; want %v ± 7%%", 100*q, got, ok, time.Duration(want))
		}
	}
	if got, _ := l.Quantile(0, now); got > 1100*time.Microsecond {
		t.Errorf("p0: got %v, want about 1ms", got)
	}
	if got, _ := l.Quantile(1, now); got < time.Second || got > 1070*time.Millisecond {
		t.Errorf("p100: got %v, want about 1s", got)
	}
}

func TestLatencyMinSamples(t *testing.T) {
	l := newTracker(t)
	if _, ok := l.Quantile(0.95, t0); ok {
		t.Error("no samples: got ok, want false")
	}
	for range 19 {
		l.Observe(time.Millisecond, t0)
	}
	if _, ok := l.Quantile(0.95, t0); ok {
		t.Error("19 samples: got ok, want false")
	}
	l.Observe(time.Millisecond, t0)
	if _, ok := l.Quantile(0.95, t0); !ok {
		t.Error("20 samples: got false, want ok")
	}
}

// The previous window fades out over the current one; the one before
// is gone.
func TestLatencyWindowsRotate(t *testing.T) {
	l := newTracker(t)
	w := int64(10 * time.Second)
	e := t0 / w * w // a window boundary
	for range 1000 {
		l.Observe(10*time.Millisecond, e+sec)
	}
	for range 200 {
		l.Observe(100*time.Millisecond, e+w+sec)
	}
	// All samples of one value: the answer is somewhere in its bucket.
	near := func(got, want time.Duration) bool { return math.Abs(float64(got-want)) <= 0.125*float64(want) }
	// Early in the second window the first weighs 0.9: 900 fast against
	// 200 slow.
	if got, _ := l.Quantile(0.5, e+w+sec); !near(got, 10*time.Millisecond) {
		t.Errorf("p50 early in window 2: got %v, want about 10ms", got)
	}
	// Late in it, 0.1: 100 fast against 200 slow.
	if got, _ := l.Quantile(0.5, e+w+9*sec); !near(got, 100*time.Millisecond) {
		t.Errorf("p50 late in window 2: got %v, want about 100ms", got)
	}
	// In the third window only the second's samples are left, fading.
	if got, ok := l.Quantile(0.05, e+2*w+sec); !ok || !near(got, 100*time.Millisecond) {
		t.Errorf("p5 in window 3: got %v, %v; want about 100ms", got, ok)
	}
	// In the fourth, nothing.
	if _, ok := l.Quantile(0.5, e+3*w+sec); ok {
		t.Error("window 4 with no samples: got ok, want false")
	}
	// A new sample in window 3's slot does not mix with window 1's.
	for range 30 {
		l.Observe(time.Second, e+2*w+sec)
	}
	if got, _ := l.Quantile(0.01, e+2*w+sec); !near(got, 100*time.Millisecond) {
		t.Errorf("p1 in window 3: got %v, want about 100ms (window 1's 10ms gone)", got)
	}
}

func TestLatencyConcurrent(t *testing.T) {
	l := newTracker(t)
	hammer(4, func(g int) {
		for i := range 20000 {
			now := t0 + int64(i)*ms // 20 s: two rotations
			l.Observe(time.Duration(g+1)*time.Millisecond, now)
			if i%100 == 0 {
				l.Quantile(0.95, now)
			}
		}
	})
	if got, ok := l.Quantile(0.95, t0+20*sec); !ok || got < 3*time.Millisecond || got > 5*time.Millisecond {
		t.Errorf("p95: got %v, %v; want about 4ms", got, ok)
	}
}

func TestHedgeLimiter(t *testing.T) {
	h, err := NewHedgeLimiter(DefaultHedgeOptions())
	if err != nil {
		t.Fatal(err)
	}
	if h.TryHedge(t0) {
		t.Error("no request yet: hedge granted, want denied (no floor)")
	}
	now := t0
	for range 10000 {
		now += ms
		h.Request(now)
		h.TryHedge(now)
	}
	// The share holds over any window: at most 10 % of the requests.
	if got := h.Granted(); got > 1000 || got < 950 {
		t.Errorf("hedges for 10000 requests: got %d, want at most 1000, at least 950", got)
	}
	if h.Granted()+h.Denied() != 10001 {
		t.Errorf("granted + denied: got %d, want 10001", h.Granted()+h.Denied())
	}
}

func TestHedgeNoAllocs(t *testing.T) {
	l := newTracker(t)
	h, _ := NewHedgeLimiter(DefaultHedgeOptions())
	now := t0
	noAllocs(t, "Observe+Quantile+TryHedge", func() {
		now += ms
		l.Observe(time.Millisecond, now)
		l.Quantile(0.95, now)
		h.Request(now)
		h.TryHedge(now)
	})
}

func BenchmarkLatencyTracker(b *testing.B) {
	l := newTracker(b)
	for i := range 10000 {
		l.Observe(time.Duration(i)*time.Microsecond, t0)
	}
	b.Run("Observe", func(b *testing.B) {
		now := t0
		for b.Loop() {
			now += 1000
			l.Observe(3*time.Millisecond, now)
		}
	})
	b.Run("Observe-parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			now := t0
			for pb.Next() {
				now += 1000
				l.Observe(3*time.Millisecond, now)
			}
		})
	})
	b.Run("Quantile", func(b *testing.B) {
		for b.Loop() {
			l.Quantile(0.95, t0+sec)
		}
	})
}

func BenchmarkHedgeLimiter(b *testing.B) {
	h, _ := NewHedgeLimiter(DefaultHedgeOptions())
	now := t0
	for b.Loop() {
		now += 1000
		h.Request(now)
		h.TryHedge(now)
	}
}
