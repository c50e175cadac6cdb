package resilience

import (
	"sync/atomic"
	"time"
)

// Sliding windows: a window of length W is cut into windowBuckets
// buckets of W/windowBuckets each. A count lives in the bucket of the
// time it was made; a sum covers the bucket of now and the windowBuckets
// full buckets before it, so it always spans at least W (and at most W
// plus one bucket). Buckets are reused in a ring: each is one word, its
// epoch (the bucket's number since the clock's zero, modulo 2^32) in the
// high 32 bits and its count in the low 32, so a stale bucket is
// recognised and restarted in one compare-and-swap, with no lock.
//
// Windows are bounded (MinWindow, MaxWindow) so that a bucket is at least
// 100 ms (epochs wrap after 13 years) and holds fewer than 2^32 counts
// (at most 6 minutes, about 12 million a second).
const (
	windowBuckets = 10
	ringSize      = windowBuckets + 1

	// MinWindow is the shortest sliding window.
	MinWindow = time.Second
	// MaxWindow is the longest sliding window.
	MaxWindow = time.Hour
)

// checkWindow validates a window option.
func checkWindow(field string, d time.Duration) error {
	if d < MinWindow || d > MaxWindow {
		return optErr(field, "%v must be between %v and %v", d, MinWindow, MaxWindow)
	}
	return nil
}

// window maps times to bucket epochs.
type window struct {
	width int64 // nanoseconds per bucket
}

func newWindow(d time.Duration) window { return window{width: int64(d) / windowBuckets} }

// epoch is the bucket number of now.
func (w window) epoch(now int64) uint32 { return uint32(now / w.width) }

// counts is one count over a sliding window.
type counts struct {
	b [ringSize]atomic.Uint64
}

// add counts one event in bucket e.
func (c *counts) add(e uint32) {
	w := &c.b[e%ringSize]
	for {
		old := w.Load()
		if oe := uint32(old >> 32); oe == e || (old != 0 && int32(oe-e) > 0) {
			// The current bucket (or, for a caller whose clock lags, a
			// newer one: the event counts there). A zero word is a
			// bucket never used.
			w.Add(1)
			return
		}
		if w.CompareAndSwap(old, uint64(e)<<32|1) {
			return
		}
	}
}

// sub takes back one event counted in bucket e by add, if the bucket has
// not been restarted since.
func (c *counts) sub(e uint32) {
	w := &c.b[e%ringSize]
	for {
		old := w.Load()
		if uint32(old>>32) != e || uint32(old) == 0 {
			return
		}
		if w.CompareAndSwap(old, old-1) {
			return
		}
	}
}

// sum is the count of the window ending in bucket e.
func (c *counts) sum(e uint32) uint64 {
	var n uint64
	for i := range c.b {
		w := c.b[i].Load()
		if e-uint32(w>>32) < ringSize {
			n += uint64(uint32(w))
		}
	}
	return n
}

// share bounds extra events (retries, hedges) to a share of base events
// (requests) over a sliding window, plus a fixed reserve:
//
//	extra in window ≤ ratio × base in window + reserve
//
// A withdrawal counts itself first and takes itself back if that went
// over, so concurrent withdrawals never exceed the bound together (at
// worst one is refused that would have fit).
type share struct {
	win     window
	ratio   float64
	reserve float64
	base    counts
	extra   counts
	granted atomic.Uint64
	denied  atomic.Uint64
}

func (s *share) init(d time.Duration, ratio, reserve float64) {
	s.win, s.ratio, s.reserve = newWindow(d), ratio, reserve
}

// request counts one base event at now.
func (s *share) request(now int64) { s.base.add(s.win.epoch(now)) }

// try withdraws one extra event at now if the bound allows it.
func (s *share) try(now int64) bool {
	e := s.win.epoch(now)
	s.extra.add(e)
	if float64(s.extra.sum(e)) > s.ratio*float64(s.base.sum(e))+s.reserve {
		s.extra.sub(e)
		s.denied.Add(1)
		return false
	}
	s.granted.Add(1)
	return true
}

// available is how many extra events the window allows at now.
func (s *share) available(now int64) int {
	e := s.win.epoch(now)
	n := s.ratio*float64(s.base.sum(e)) + s.reserve - float64(s.extra.sum(e))
	return max(int(n), 0)
}
