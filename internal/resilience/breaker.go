package resilience

import (
	"sync/atomic"
	"time"
)

// BreakerOptions configure a Breaker. Zero values are taken literally:
// start from DefaultBreakerOptions.
type BreakerOptions struct {
	// FailureRatio opens the breaker when at least this share of the
	// outcomes in the window are failures (more than 0, at most 1;
	// default 0.5).
	FailureRatio float64
	// MinRequests is how many outcomes the window needs before the ratio
	// counts (at least 1; default 20).
	MinRequests int
	// Window is how far back outcomes count (default 10 s; from 1 s to
	// 1 h).
	Window time.Duration
	// OpenFor is how long the breaker stays open before it lets probes
	// through (more than 0; default 30 s).
	OpenFor time.Duration
	// HalfOpenRequests is how many probes a half-open breaker lets
	// through; all must succeed to close it (at least 1, at most 10000;
	// default 5).
	HalfOpenRequests int
}

// DefaultBreakerOptions open at 50 % failures of at least 20 outcomes in
// 10 s, stay open 30 s, then probe with 5 requests.
func DefaultBreakerOptions() BreakerOptions {
	return BreakerOptions{FailureRatio: 0.5, MinRequests: 20, Window: 10 * time.Second,
		OpenFor: 30 * time.Second, HalfOpenRequests: 5}
}

// Validate names the first field that is out of range.
func (o BreakerOptions) Validate() error {
	if !(o.FailureRatio > 0 && o.FailureRatio <= 1) {
		return optErr("circuitBreaker.failureRatio", "%g must be more than 0 and at most 1", o.FailureRatio)
	}
	if o.MinRequests < 1 {
		return optErr("circuitBreaker.minRequests", "%d must be at least 1", o.MinRequests)
	}
	if err := checkWindow("circuitBreaker.window", o.Window); err != nil {
		return err
	}
	if o.OpenFor <= 0 {
		return optErr("circuitBreaker.openFor", "%v must be positive", o.OpenFor)
	}
	if o.HalfOpenRequests < 1 || o.HalfOpenRequests > 10000 {
		return optErr("circuitBreaker.halfOpenRequests", "%d must be between 1 and 10000", o.HalfOpenRequests)
	}
	return nil
}

// State is where a breaker stands.
type State uint8

const (
	// Closed: requests pass; outcomes are counted.
	Closed State = iota
	// Open: requests fail fast until OpenFor has passed.
	Open
	// HalfOpen: up to HalfOpenRequests probes pass; their success closes
	// the breaker, a failure opens it again.
	HalfOpen
)

var stateNames = [...]string{"closed", "open", "half-open"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "unknown"
}

// Breaker is a circuit breaker over an error rate:
//
//	closed ──failures ≥ FailureRatio of ≥ MinRequests in Window──> open
//	open ──OpenFor later, at the next Allow──> half-open
//	half-open ──HalfOpenRequests successes──> closed (a fresh window)
//	half-open ──one failure──> open (for OpenFor again)
//
// Each state is a phase, an immutable record (plus its counters) swapped
// in by compare-and-swap: Allow in the closed state is one atomic load,
// Done one atomic add (and, for a failure, a sum over the window); only a
// change of state allocates (its new phase). A Permit remembers its phase,
// so the outcome of a request let through before a change of state
// changes nothing after it. Safe for concurrent use.
type Breaker struct {
	ratio    float64
	minReq   uint64
	win      window
	openFor  int64
	probes   int32
	cur      atomic.Pointer[phase]
	opens    atomic.Uint64
	rejected atomic.Uint64
}

// phase is one stay in a state.
type phase struct {
	state State
	since int64 // when the state began (nanoseconds)
	// closed: outcomes in the window
	ok, bad counts
	// half-open: probes let through (and not cancelled), probes succeeded
	admitted, succeeded atomic.Int32
}

// NewBreaker returns a closed breaker, or the options' error; since is
// the time it reports being closed since (nanoseconds).
func NewBreaker(o BreakerOptions, since int64) (*Breaker, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	b := &Breaker{ratio: o.FailureRatio, minReq: uint64(o.MinRequests), win: newWindow(o.Window),
		openFor: int64(o.OpenFor), probes: int32(o.HalfOpenRequests)}
	b.cur.Store(&phase{state: Closed, since: since})
	return b, nil
}

// Permit is a request the breaker let through. End it with Done, or with
// Cancel when the outcome says nothing of the service (the client went
// away). It is a small value: keep it on the stack; the zero Permit does
// nothing.
type Permit struct {
	b     *Breaker
	p     *phase
	probe bool
}

// Allow lets a request through at now (nanoseconds), or reports false
// when the breaker is open (or half-open with its probes out): fail fast.
// A refusal is counted in Rejected.
func (b *Breaker) Allow(now int64) (Permit, bool) {
	for {
		p := b.cur.Load()
		switch p.state {
		case Closed:
			return Permit{b: b, p: p}, true
		case Open:
			if now-p.since < b.openFor {
				b.rejected.Add(1)
				return Permit{}, false
			}
			b.cur.CompareAndSwap(p, &phase{state: HalfOpen, since: p.since + b.openFor})
		case HalfOpen:
			n := p.admitted.Load()
			if n >= b.probes {
				b.rejected.Add(1)
				return Permit{}, false
			}
			if p.admitted.CompareAndSwap(n, n+1) {
				return Permit{b: b, p: p, probe: true}, true
			}
		}
	}
}

// Done records the request's outcome at now (nanoseconds); success is
// whether the service served it (a failure is what the breaker should
// count: a connect failure, reset, timeout, or 5xx, as the caller
// decides). A second Done or Cancel does nothing.
func (p *Permit) Done(success bool, now int64) {
	b, ph := p.b, p.p
	if b == nil {
		return
	}
	*p = Permit{}
	switch ph.state {
	case Closed:
		e := b.win.epoch(now)
		if success {
			ph.ok.add(e)
			return
		}
		ph.bad.add(e)
		bad := ph.bad.sum(e)
		if total := bad + ph.ok.sum(e); total >= b.minReq && float64(bad) >= b.ratio*float64(total) {
			b.trip(ph, now)
		}
	case HalfOpen:
		if !success {
			b.trip(ph, now)
			return
		}
		if ph.succeeded.Add(1) >= b.probes {
			b.cur.CompareAndSwap(ph, &phase{state: Closed, since: now})
		}
	}
}

// Cancel ends the request without an outcome: a probe's place is given
// back to the next request.
func (p *Permit) Cancel() {
	if p.b != nil && p.probe {
		p.p.admitted.Add(-1)
	}
	*p = Permit{}
}

// trip opens the breaker from phase ph at now, unless it left ph already.
func (b *Breaker) trip(ph *phase, now int64) {
	if b.cur.CompareAndSwap(ph, &phase{state: Open, since: now}) {
		b.opens.Add(1)
	}
}

// State is where the breaker stands at now and since when (nanoseconds):
// an open breaker whose OpenFor has passed is half-open from then, though
// it changes only at the next Allow.
func (b *Breaker) State(now int64) (s State, since int64) {
	p := b.cur.Load()
	if p.state == Open && now-p.since >= b.openFor {
		return HalfOpen, p.since + b.openFor
	}
	return p.state, p.since
}

// Outcomes are the failures and all outcomes in the window at now, while
// closed (zero otherwise).
func (b *Breaker) Outcomes(now int64) (failures, total uint64) {
	p := b.cur.Load()
	if p.state != Closed {
		return 0, 0
	}
	e := b.win.epoch(now)
	failures = p.bad.sum(e)
	return failures, failures + p.ok.sum(e)
}

// Opens is how many times the breaker opened, ever.
func (b *Breaker) Opens() uint64 { return b.opens.Load() }

// Rejected is how many requests Allow refused, ever.
func (b *Breaker) Rejected() uint64 { return b.rejected.Load() }
