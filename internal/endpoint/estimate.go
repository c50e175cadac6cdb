package endpoint

import (
	"math"
	"time"
)

// The estimates a latency-aware balancer reads, updated by Done:
//
//   - a peak-EWMA latency estimate, as Finagle's and Linkerd's: a sample
//     above the estimate replaces it at once; a lower sample s pulls it
//     down as est·w + s·(1−w), w = exp(−Δt/Decay), where Δt is the wall
//     time since the estimate's last update (so a burst of fast samples
//     moves it no faster than a slow trickle). A new endpoint starts at
//     DefaultLatency; its first sample replaces the default.
//     A success after the estimate went stale (no update for Decay)
//     replaces it, as the first sample does: an instance that lost its
//     traffic to a slow spell and is fast again is known to be at once.
//   - a failure rate: an EWMA over attempts (each moves it 1/8 of the way
//     to 1 for a failure, 0 for a success), where a failure is a connect
//     failure, a reset, a timeout or an overload status (Status.Failed).
//   - a deferral: the instance asked (Retry-After) to be left alone until
//     a time. Balancers pick a deferred endpoint only when nothing else is
//     left; it is not ejected.
//
// Both estimates decay toward zero between updates when read
// (PeakLatency, FailureRate): est·exp(−Δt/Decay). So an endpoint that
// lost its traffic to a slow or failing spell is tried again after a
// while, as Finagle and tower decay on read; the read writes nothing.
//
// A failure's latency may raise the latency estimate (a timeout after 2 s
// says the instance is at least that slow) but never lowers it (a fast 503
// says nothing of how fast it serves), and it renews the estimate's stamp:
// an endpoint that is being tried and failing does not decay toward zero.
//
// Each estimate is one word, updated by compare-and-swap, so a sample
// and its time change together and concurrent samples are all kept.

const (
	// DefaultDecay is the decay time of the estimates (Linkerd's).
	DefaultDecay = 10 * time.Second
	// DefaultLatency is the latency estimate of an endpoint with no sample
	// yet (Linkerd's).
	DefaultLatency = 30 * time.Millisecond
	// RetryAfterMax bounds how long one Retry-After defers an endpoint.
	RetryAfterMax = time.Minute
	// failureWeight is the share of one attempt in the failure rate.
	failureWeight = 1.0 / 8
)

// A stamped word packs an estimate with the time of its last update:
//
//	bit 63      sampled: the value comes from a sample, not the default
//	bits 62-32  when: unix time in ticks of 2^21 ns (about 2 ms), modulo 2^31
//	bits 31-0   the value, a float32 (nanoseconds, or a rate in [0, 1])
//
// The ticks wrap every 52 days and compare within 26 days: a word left
// alone for longer decays as if less time had passed (it stays stale
// instead of fading, as it would with no decay on read). Every endpoint
// has the same tick grid, so equal histories give equal estimates.
const (
	tickShift  = 21
	tickMask   = 1<<31 - 1
	sampledBit = 1 << 63
)

func pack(sampled bool, tick uint32, v float64) uint64 {
	w := uint64(tick&tickMask)<<32 | uint64(math.Float32bits(float32(v)))
	if sampled {
		w |= sampledBit
	}
	return w
}

func unpack(w uint64) (sampled bool, tick uint32, v float64) {
	return w&sampledBit != 0, uint32(w>>32) & tickMask, float64(math.Float32frombits(uint32(w)))
}

// tick is the tick of t (unix nanoseconds).
func tick(t int64) uint32 { return uint32(t>>tickShift) & tickMask }

// since is the time in nanoseconds from tick from to tick to; 0 when to
// is before from (an update stamped later has landed first).
func since(from, to uint32) float64 {
	d := (to - from) & tickMask
	if d >= 1<<30 {
		return 0
	}
	return float64(uint64(d) << tickShift)
}

// later is the later of two ticks.
func later(a, b uint32) uint32 {
	if since(a, b) > 0 {
		return b
	}
	return a
}

// decayNS is the decay time in nanoseconds.
func (e *Endpoint) decayNS() float64 {
	if e.Decay > 0 {
		return float64(e.Decay)
	}
	return float64(DefaultDecay)
}

// decayed is v decayed toward zero over dt nanoseconds.
func (e *Endpoint) decayed(v, dt float64) float64 {
	if dt == 0 || v == 0 {
		return v
	}
	return v * math.Exp(-dt/e.decayNS())
}

// observePeak folds a latency sample taken at t (unix nanoseconds) into
// the peak-EWMA estimate; failed: the sample is a failure's.
func (e *Endpoint) observePeak(t int64, d time.Duration, failed bool) {
	now, s := tick(t), float64(max(d, 1))
	for {
		old := e.peak.Load()
		sampled, at, est := unpackPeak(old, now)
		next := est
		switch {
		case s > est, !sampled && !failed:
			next, sampled = s, true
		case !failed && since(at, now) >= e.decayNS():
			// Stale (PeakStale): the estimate is older than the decay
			// time and says less than this sample does.
			next = s
		case !failed:
			if dt := since(at, now); dt > 0 { // within a tick a lower sample moves it nothing
				w := math.Exp(-dt / e.decayNS())
				next = est*w + s*(1-w)
			}
		}
		w := pack(sampled, later(at, now), next)
		if w == old || e.peak.CompareAndSwap(old, w) {
			return // unchanged (a busy endpoint within a tick): no write
		}
	}
}

// unpackPeak reads the latency word at tick now: a zero word (an
// Endpoint not made by New) is the default, undecayed.
func unpackPeak(w uint64, now uint32) (sampled bool, at uint32, est float64) {
	if w == 0 {
		return false, now, float64(DefaultLatency)
	}
	return unpack(w)
}

// observeFailure folds one attempt at t into the failure rate.
func (e *Endpoint) observeFailure(t int64, failed bool) {
	x := 0.0
	if failed {
		x = 1
	}
	now := tick(t)
	for {
		old := e.fail.Load()
		if old == 0 && !failed {
			return // a healthy endpoint's rate stays zero: no write
		}
		_, at, f := unpack(old)
		f = e.decayed(f, since(at, now))
		f += failureWeight * (x - f)
		if f < 1e-6 {
			f = 0 // let the word return to zero, and the no-write path above
		}
		next := pack(false, later(at, now), f)
		if f == 0 {
			next = 0
		}
		if e.fail.CompareAndSwap(old, next) {
			return
		}
	}
}

// deferFor defers the endpoint for d from t (unix nanoseconds), unless it
// is deferred for longer already.
func (e *Endpoint) deferFor(t int64, d time.Duration) {
	until := t + int64(min(d, RetryAfterMax))
	for {
		old := e.deferredUntil.Load()
		if old >= until || e.deferredUntil.CompareAndSwap(old, until) {
			return
		}
	}
}

// PeakLatency is the peak-EWMA latency estimate at now (unix
// nanoseconds): DefaultLatency before the first sample, decayed toward
// zero since the last update.
func (e *Endpoint) PeakLatency(now int64) time.Duration {
	n := tick(now)
	_, at, est := unpackPeak(e.peak.Load(), n)
	return time.Duration(e.decayed(est, since(at, n)))
}

// PeakStale reports whether the latency estimate says little at now: no
// sample yet, or none for the decay time. P2C prices such an endpoint at
// the latency of the one it is compared with, so a new endpoint, or one
// that lost its traffic to a slow spell, is tried again soon instead of
// waiting for its estimate to decay below the others' (a failure renews
// the stamp: an endpoint that keeps failing is not stale).
func (e *Endpoint) PeakStale(now int64) bool {
	n := tick(now)
	sampled, at, _ := unpackPeak(e.peak.Load(), n)
	return !sampled || since(at, n) >= e.decayNS()
}

// FailureRate is the failure rate at now (unix nanoseconds), in [0, 1):
// the EWMA over attempts, decayed toward zero since the last attempt.
func (e *Endpoint) FailureRate(now int64) float64 {
	_, at, f := unpack(e.fail.Load())
	return e.decayed(f, since(at, tick(now)))
}

// Deferred reports whether the instance asked (Retry-After) to be left
// alone at now (unix nanoseconds).
func (e *Endpoint) Deferred(now int64) bool { return e.deferredUntil.Load() > now }

// DeferredUntil is when a Retry-After ends (zero: none in force).
func (e *Endpoint) DeferredUntil() time.Time {
	if n := e.deferredUntil.Load(); n > time.Now().UnixNano() {
		return time.Unix(0, n)
	}
	return time.Time{}
}
