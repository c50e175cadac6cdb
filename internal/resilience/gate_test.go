package resilience

import (
	"sync/atomic"
	"testing"
)

func TestGate(t *testing.T) {
	g, err := NewGate(3)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if !g.Acquire() {
			t.Fatalf("acquire %d: refused, want taken", i+1)
		}
	}
	if g.Acquire() {
		t.Error("acquire 4 of 3: taken, want refused")
	}
	if g.InUse() != 3 || g.Rejected() != 1 {
		t.Errorf("got in use %d, rejected %d; want 3 and 1", g.InUse(), g.Rejected())
	}
	g.Release()
	if !g.Acquire() {
		t.Error("acquire after a release: refused, want taken")
	}
	// Fewer places than holders: refused until enough are released.
	g.SetMax(1)
	g.Release()
	if g.Acquire() {
		t.Error("2 held of 1: taken, want refused")
	}
	g.Release()
	g.Release()
	if !g.Acquire() {
		t.Error("0 held of 1: refused, want taken")
	}
	if g.Max() != 1 {
		t.Errorf("max: got %d, want 1", g.Max())
	}
}

func TestThresholds(t *testing.T) {
	th, err := NewThresholds(ThresholdsOptions{MaxRequests: 2, MaxPending: 1})
	if err != nil {
		t.Fatal(err)
	}
	if th.Requests().Max() != 2 || th.Pending().Max() != 1 {
		t.Errorf("got %d and %d, want 2 and 1", th.Requests().Max(), th.Pending().Max())
	}
	th.Requests().Acquire()
	if err := th.Set(ThresholdsOptions{MaxRequests: 5, MaxPending: 5}); err != nil {
		t.Fatal(err)
	}
	if th.Requests().InUse() != 1 || th.Requests().Max() != 5 {
		t.Errorf("after Set: got %d of %d, want 1 of 5 (places taken survive)", th.Requests().InUse(), th.Requests().Max())
	}
	if err := th.Set(ThresholdsOptions{}); err == nil {
		t.Error("Set of zero options: got nil, want an error")
	}
}

// Never more holders than places, however many goroutines try.
func TestGateConcurrent(t *testing.T) {
	g, _ := NewGate(3)
	var holders, most atomic.Int32
	hammer(8, func(int) {
		for range 5000 {
			if !g.Acquire() {
				continue
			}
			n := holders.Add(1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			holders.Add(-1)
			g.Release()
		}
	})
	if got := most.Load(); got > 3 {
		t.Errorf("holders at once: got %d, want at most 3", got)
	}
	if got := g.InUse(); got != 0 {
		t.Errorf("in use after all released: got %d, want 0", got)
	}
}

func TestGateNoAllocs(t *testing.T) {
	g, _ := NewGate(10)
	noAllocs(t, "Acquire+Release", func() {
		if g.Acquire() {
			g.Release()
		}
	})
}

func BenchmarkGate(b *testing.B) {
	g, _ := NewGate(1 << 20)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if g.Acquire() {
				g.Release()
			}
		}
	})
}
