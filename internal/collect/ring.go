package collect

import (
	"math"
	"time"
)

// Resolution and Slots shape every series' ring: an hour in ten-second
// slots. Retention is how far back a window can reach.
const (
	Resolution = 10 * time.Second
	Slots      = 360
	Retention  = Slots * Resolution
)

// slot is one ten-second slot of one series. Bucket counts are 32-bit
// (they only feed quantiles, and saturate); requests and failures are
// exact.
type slot struct {
	at                 int64 // slot number (Unix time / Resolution); 0: empty
	requests, failures uint64
	buckets            [NumBuckets]uint32
}

// ring is one series' last hour, about 30 KB.
type ring struct {
	slots [Slots]slot
	last  int64 // the newest slot number written
}

// slotOf is the slot number of a time.
func slotOf(t time.Time) int64 { return t.UnixNano() / int64(Resolution) }

// add files s under slot number at.
func (r *ring) add(at int64, s *Series) {
	sl := &r.slots[at%Slots]
	if sl.at != at {
		*sl = slot{at: at}
	}
	sl.requests += s.Requests
	sl.failures += s.Failures
	for i, n := range s.Buckets {
		sl.buckets[i] = uint32(min(uint64(sl.buckets[i])+n, math.MaxUint32))
	}
	r.last = max(r.last, at)
}

// sum adds the slots from..to (slot numbers, both included) into a.
func (r *ring) sum(from, to int64, a *agg) {
	if r.last < from {
		return
	}
	for at := max(from, to-Slots+1); at <= to; at++ {
		sl := &r.slots[at%Slots]
		if sl.at != at {
			continue
		}
		a.requests += sl.requests
		a.failures += sl.failures
		for i, n := range sl.buckets {
			a.buckets[i] += uint64(n)
		}
	}
}

// agg is merged slots: counts add, and so do histograms, their bounds
// being fixed.
type agg struct {
	requests, failures uint64
	buckets            [NumBuckets]uint64
}

// golden is a's figures over a window of the given length.
func (a *agg) golden(window time.Duration) Golden {
	g := Golden{Requests: a.requests, Failures: a.failures, SuccessRate: 1}
	if a.requests > 0 {
		g.SuccessRate = 1 - float64(a.failures)/float64(a.requests)
		g.RPS = float64(a.requests) / window.Seconds()
	}
	g.P50 = quantile(0.50, &a.buckets)
	g.P95 = quantile(0.95, &a.buckets)
	g.P99 = quantile(0.99, &a.buckets)
	return g
}

// quantile estimates the q-quantile of a histogram as Prometheus's
// histogram_quantile does: find the bucket the rank falls in, and
// interpolate linearly between its bounds (the first bucket starts at
// 0). A rank in the last bucket, past every bound, gives the highest
// bound. No observations give 0.
func quantile(q float64, b *[NumBuckets]uint64) time.Duration {
	var total uint64
	for _, n := range b {
		total += n
	}
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	var below uint64
	for i, n := range b {
		if n == 0 || float64(below+n) < rank {
			below += n
			continue
		}
		if i == len(Bounds) {
			break
		}
		lo := 0.0
		if i > 0 {
			lo = Bounds[i-1]
		}
		hi := Bounds[i]
		return seconds(lo + (hi-lo)*(rank-float64(below))/float64(n))
	}
	return seconds(Bounds[len(Bounds)-1])
}

func seconds(s float64) time.Duration { return time.Duration(math.Round(s * float64(time.Second))) }
