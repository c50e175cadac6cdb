package resilience

import (
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
)

// Latency histogram buckets: log-scale, histSub per power of two (each
// bucket 1/8 of its octave wide, at most 12.5 % of its low bound: a
// quantile is off by less than that, and by much less for a spread of
// latencies, as it is interpolated within its bucket), from 2^histMinExp ns (8 µs; below that, one
// bucket) to 2^histMaxExp ns (137 s; above that, the last bucket).
const (
	histSubBits = 3
	histSub     = 1 << histSubBits
	histMinExp  = 13
	histMaxExp  = 37
	histBuckets = 1 + (histMaxExp-histMinExp)*histSub
)

// bucketOf is the histogram bucket of a latency of ns nanoseconds.
func bucketOf(ns int64) int {
	if ns < 1<<histMinExp {
		return 0
	}
	e := bits.Len64(uint64(ns)) - 1
	if e >= histMaxExp {
		return histBuckets - 1
	}
	m := int(ns>>(e-histSubBits)) & (histSub - 1)
	return 1 + (e-histMinExp)*histSub + m
}

// bucketLow is the least latency of bucket i (nanoseconds); bucketLow(i+1)
// bounds it above.
func bucketLow(i int) int64 {
	if i <= 0 {
		return 0
	}
	if i >= histBuckets {
		return 1 << histMaxExp
	}
	e, m := histMinExp+(i-1)/histSub, int64((i-1)%histSub)
	return 1<<e + m<<(e-histSubBits)
}

// LatencyOptions configure a LatencyTracker. Zero values are taken
// literally: start from DefaultLatencyOptions.
type LatencyOptions struct {
	// Window is the length of each of the two windows the tracker
	// rotates (default 10 s; from 1 s to 1 h): a quantile covers the
	// current window and the one before it, fading as the current fills.
	Window time.Duration
	// MinSamples is how many samples a quantile needs (at least 1;
	// default 20): with fewer, Quantile reports false.
	MinSamples int
}

// DefaultLatencyOptions are 10 s windows and 20 samples.
func DefaultLatencyOptions() LatencyOptions {
	return LatencyOptions{Window: 10 * time.Second, MinSamples: 20}
}

// Validate names the first field that is out of range.
func (o LatencyOptions) Validate() error {
	if err := checkWindow("hedging.latencyWindow", o.Window); err != nil {
		return err
	}
	if o.MinSamples < 1 {
		return optErr("hedging.minSamples", "%d must be at least 1", o.MinSamples)
	}
	return nil
}

// LatencyTracker gives a recent latency quantile of a service (its p95,
// say, after which a hedge is sent) from a fixed log-scale histogram in
// two rotating windows. A quantile at now weighs the current window's
// samples fully and the previous window's by the share of the current
// window still to come, so old samples fade out linearly over one window
// instead of vanishing at a boundary:
//
//	count(bucket) = current(bucket) + (1 − elapsed/Window) × previous(bucket)
//
// Observe is two atomic adds (a lock, once a window, to clear the window
// it reuses); Quantile reads the buckets and locks nothing. Neither
// allocates. Safe for concurrent use.
type LatencyTracker struct {
	width      int64
	minSamples float64
	mu         sync.Mutex // held to clear a window for reuse
	slots      [2]histWindow
}

// histWindow is one window of the histogram.
type histWindow struct {
	epoch atomic.Int64 // now / width of the samples it holds
	total atomic.Uint64
	c     [histBuckets]atomic.Uint64
}

// NewLatencyTracker returns a tracker with no sample, or the options'
// error.
func NewLatencyTracker(o LatencyOptions) (*LatencyTracker, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	t := &LatencyTracker{width: int64(o.Window), minSamples: float64(o.MinSamples)}
	t.slots[0].epoch.Store(-1)
	t.slots[1].epoch.Store(-1)
	return t, nil
}

// Observe records a latency d seen at now (nanoseconds).
func (t *LatencyTracker) Observe(d time.Duration, now int64) {
	e := now / t.width
	w := &t.slots[e&1]
	if w.epoch.Load() < e {
		t.rotate(w, e)
	}
	w.c[bucketOf(int64(d))].Add(1)
	w.total.Add(1)
}

// rotate clears window w for epoch e, unless another caller did.
func (t *LatencyTracker) rotate(w *histWindow, e int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if w.epoch.Load() >= e {
		return
	}
	for i := range w.c {
		w.c[i].Store(0)
	}
	w.total.Store(0)
	w.epoch.Store(e)
}

// Quantile is the latency below which a share q (0 to 1) of the recent
// samples fall, at now (nanoseconds), interpolated within its bucket;
// false when there are fewer than MinSamples recent samples.
func (t *LatencyTracker) Quantile(q float64, now int64) (time.Duration, bool) {
	e := now / t.width
	var cur, prev *histWindow
	if w := &t.slots[e&1]; w.epoch.Load() == e {
		cur = w
	}
	if w := &t.slots[(e-1)&1]; w.epoch.Load() == e-1 {
		prev = w
	}
	fade := 1 - float64(now-e*t.width)/float64(t.width)
	var total float64
	if cur != nil {
		total += float64(cur.total.Load())
	}
	if prev != nil {
		total += fade * float64(prev.total.Load())
	}
	if total < t.minSamples || total == 0 {
		return 0, false
	}
	target := min(max(q, 0), 1) * total
	var acc float64
	for i := range histBuckets {
		var n float64
		if cur != nil {
			n += float64(cur.c[i].Load())
		}
		if prev != nil {
			n += fade * float64(prev.c[i].Load())
		}
		if n == 0 {
			continue
		}
		if acc+n >= target {
			lo, hi := bucketLow(i), bucketLow(i+1)
			frac := (target - acc) / n
			return time.Duration(float64(lo) + frac*float64(hi-lo)), true
		}
		acc += n
	}
	// Rounding left target a hair above the sum: the highest sample's bucket.
	for i := histBuckets - 1; i >= 0; i-- {
		if (cur != nil && cur.c[i].Load() > 0) || (prev != nil && prev.c[i].Load() > 0) {
			return time.Duration(bucketLow(i + 1)), true
		}
	}
	return 0, false
}

// HedgeOptions configure a HedgeLimiter: over any sliding Window,
//
//	hedges ≤ MaxPercent/100 × requests
//
// Zero values are taken literally: start from DefaultHedgeOptions.
type HedgeOptions struct {
	// MaxPercent is the share of requests that may send a hedge, from 0
	// to 100 (default 10).
	MaxPercent float64
	// Window is how far back requests and hedges count (default 10 s;
	// from 1 s to 1 h).
	Window time.Duration
}

// DefaultHedgeOptions are 10 % over 10 s.
func DefaultHedgeOptions() HedgeOptions {
	return HedgeOptions{MaxPercent: 10, Window: 10 * time.Second}
}

// Validate names the first field that is out of range.
func (o HedgeOptions) Validate() error {
	if !(o.MaxPercent >= 0 && o.MaxPercent <= 100) {
		return optErr("hedging.maxPercent", "%g must be between 0 and 100", o.MaxPercent)
	}
	return checkWindow("hedging.window", o.Window)
}

// HedgeLimiter bounds hedged requests (a second attempt sent while the
// first is still waiting, after the service's recent p95, say) to a
// share of requests. It is a retry budget without a floor: a quiet
// service hedges too, but only once it has had 100/MaxPercent requests in
// the window. Lock-free, allocation-free, safe for concurrent use.
type HedgeLimiter struct {
	s share
}

// NewHedgeLimiter returns a limiter with nothing spent, or the options'
// error.
func NewHedgeLimiter(o HedgeOptions) (*HedgeLimiter, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	h := &HedgeLimiter{}
	h.s.init(o.Window, o.MaxPercent/100, 0)
	return h, nil
}

// Request counts one request at now (nanoseconds).
func (h *HedgeLimiter) Request(now int64) { h.s.request(now) }

// TryHedge withdraws one hedge at now if the share allows it, and reports
// whether it did; a refusal is counted in Denied.
func (h *HedgeLimiter) TryHedge(now int64) bool { return h.s.try(now) }

// Granted is the number of hedges TryHedge allowed, ever.
func (h *HedgeLimiter) Granted() uint64 { return h.s.granted.Load() }

// Denied is the number of hedges TryHedge refused, ever.
func (h *HedgeLimiter) Denied() uint64 { return h.s.denied.Load() }
