package resilience

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func TestBackoffCeiling(t *testing.T) {
	b := DefaultBackoff()
	tests := []struct {
		attempt int
		want    time.Duration
	}{
		{-1, 25 * time.Millisecond},
		{0, 25 * time.Millisecond},
		{1, 25 * time.Millisecond},
		{2, 50 * time.Millisecond},
		{3, 100 * time.Millisecond},
		{4, 200 * time.Millisecond},
		{5, 250 * time.Millisecond},
		{64, 250 * time.Millisecond},
		{math.MaxInt, 250 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := b.Ceiling(tt.attempt); got != tt.want {
			t.Errorf("Ceiling(%d): got %v, want %v", tt.attempt, got, tt.want)
		}
	}
	huge := Backoff{Base: time.Duration(math.MaxInt64 / 2), Max: time.Duration(math.MaxInt64)}
	if got := huge.Ceiling(3); got != huge.Max {
		t.Errorf("Ceiling that would overflow: got %v, want Max %v", got, huge.Max)
	}
}

func TestBackoffDelayRange(t *testing.T) {
	b := DefaultBackoff()
	for attempt := 1; attempt <= 6; attempt++ {
		c := b.Ceiling(attempt)
		if got := b.Delay(attempt, 0); got != 0 {
			t.Errorf("Delay(%d, 0): got %v, want 0", attempt, got)
		}
		if got := b.Delay(attempt, math.MaxUint64); got >= c || got < c-time.Nanosecond {
			t.Errorf("Delay(%d, max): got %v, want just under %v", attempt, got, c)
		}
		if got := b.Delay(attempt, 1<<63); got != c/2 {
			t.Errorf("Delay(%d, 2^63): got %v, want %v", attempt, got, c/2)
		}
	}
}

// Full jitter: uniform over [0, ceiling), so the mean is half the ceiling
// and a quarter of the draws fall in each quarter.
func TestBackoffJitterIsUniform(t *testing.T) {
	b := DefaultBackoff()
	rnd := rand.New(rand.NewPCG(1, 2))
	const n = 40000
	for _, attempt := range []int{1, 3, 9} {
		c := b.Ceiling(attempt)
		var sum float64
		var quarters [4]int
		for range n {
			d := b.Delay(attempt, rnd.Uint64())
			if d < 0 || d >= c {
				t.Fatalf("Delay(%d): got %v, want within [0, %v)", attempt, d, c)
			}
			sum += float64(d)
			quarters[int(4*d/c)]++
		}
		if mean := sum / n; math.Abs(mean-float64(c)/2) > 0.01*float64(c) {
			t.Errorf("attempt %d: got mean %v, want %v ± 1%%", attempt, time.Duration(mean), c/2)
		}
		for i, q := range quarters {
			if math.Abs(float64(q)-n/4) > 0.05*n/4 {
				t.Errorf("attempt %d: quarter %d got %d draws, want %d ± 5%%", attempt, i, q, n/4)
			}
		}
	}
}

func TestBackoffNoAllocs(t *testing.T) {
	b := DefaultBackoff()
	var d time.Duration
	noAllocs(t, "Delay", func() { d += b.Delay(3, rand.Uint64()) })
}

func BenchmarkBackoffDelay(b *testing.B) {
	bo := DefaultBackoff()
	var d time.Duration
	for b.Loop() {
		d += bo.Delay(3, rand.Uint64())
	}
	_ = d
}
