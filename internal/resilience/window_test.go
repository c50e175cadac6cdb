package resilience

import (
	"testing"
	"time"
)

func TestCountsSlide(t *testing.T) {
	w := newWindow(10 * time.Second)
	var c counts
	for range 5 {
		c.add(w.epoch(t0))
	}
	c.add(w.epoch(t0 + 3*sec))
	tests := []struct {
		at   int64
		want uint64
	}{
		{t0, 5},
		{t0 + 3*sec, 6},
		{t0 + 10*sec + 999*ms, 6}, // t0's bucket is 10 full buckets back: still in
		{t0 + 11*sec, 1},          // t0's bucket left the window
		{t0 + 14*sec, 0},
	}
	for _, tt := range tests {
		if got := c.sum(w.epoch(tt.at)); got != tt.want {
			t.Errorf("sum at t0+%v: got %d, want %d", time.Duration(tt.at-t0), got, tt.want)
		}
	}
	// A reused bucket starts again from zero.
	c.add(w.epoch(t0 + 11*sec))
	if got := c.sum(w.epoch(t0 + 11*sec)); got != 2 {
		t.Errorf("sum after reuse: got %d, want 2", got)
	}
}

// An epoch of 2^31 or more must not take a fresh (zero) bucket for a
// newer one.
func TestCountsHighEpoch(t *testing.T) {
	w := newWindow(10 * time.Second)
	now := int64(1<<31+5) * sec
	var c counts
	c.add(w.epoch(now))
	c.add(w.epoch(now))
	if got := c.sum(w.epoch(now)); got != 2 {
		t.Errorf("got %d, want 2", got)
	}
}

func TestCountsSub(t *testing.T) {
	w := newWindow(10 * time.Second)
	var c counts
	e := w.epoch(t0)
	c.add(e)
	c.sub(e)
	c.sub(e) // nothing left to take back
	if got := c.sum(e); got != 0 {
		t.Errorf("after add, sub, sub: got %d, want 0", got)
	}
	c.add(e)
	c.sub(w.epoch(t0 + 11*sec)) // another epoch of the same bucket: no effect
	if got := c.sum(e); got != 1 {
		t.Errorf("after sub of another epoch: got %d, want 1", got)
	}
}

func TestCountsConcurrent(t *testing.T) {
	w := newWindow(10 * time.Second)
	var c counts
	const n, per = 4, 5000
	hammer(n, func(g int) {
		for i := range per {
			c.add(w.epoch(t0 + int64(i)*ms)) // 5 s: five buckets
		}
	})
	if got := c.sum(w.epoch(t0 + 5*sec)); got != n*per {
		t.Errorf("got %d, want %d", got, n*per)
	}
}
