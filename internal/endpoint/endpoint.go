// Package endpoint is what the data path knows of one place a service can
// be reached: its identity (service, instance, address, labels) and its
// state, shared by every engine and kept across routing-table swaps.
//
//	balancer (lb) --Pick--> *Endpoint
//	engine:   a := ep.Begin()   ... dial, send, await the response head ...
//	          a.Done(Outcome{Class, Latency})
//	                 |
//	                 v
//	state:    in flight, latency estimates (EWMA, peak EWMA), failure
//	          rate, consecutive failures, connect backoff, outlier
//	          ejection (outlier.go, with its Group), deferred until,
//	          probe-down and ready flags (all atomic; read by balancers
//	          and /config)
//
// Health comes from three signals, each independent: the registry (an
// instance's own sidecar checks its app; SetReady), active probes from
// this sidecar (package health; SetProbeDown) and passive outlier
// detection (Done and Group). Balancers (package lb) combine them.
//
// HTTP/1.1, both HTTP/2 engines and TCP report every attempt through
// Begin and Done, so ejection and latency estimates are written once.
// Engines keep their own per-endpoint state (connection pools) in slots
// (Local), so this package knows no protocol.
package endpoint

import (
	"crypto/tls"
	"maps"
	"sync/atomic"
	"time"
)

// Endpoint is one address of a service: a peer sidecar's inbound
// listener, an external service's address, or the local app. Identity
// fields are set once, before the endpoint is shared; state is atomic.
type Endpoint struct {
	Service  string
	Instance string // instance id, "external:<address>" or "egress:<host:port>"
	Address  string // host:port
	Labels   map[string]string
	Protocol string // what it declares it speaks: http, h2c, tcp, or ""

	// OnConnectFailed, when set before the endpoint is shared, hears of
	// every connect failure (the inbound's app endpoint tells the health
	// check).
	OnConnectFailed func()

	// Decay, when set before the endpoint is shared, is the decay time of
	// its peak-EWMA latency estimate and failure rate (0: DefaultDecay).
	Decay time.Duration

	// tls, when set, is how a connection to it is secured: mutual TLS
	// with the peer sidecar (nil: plain TCP). Read at each dial.
	tls atomic.Pointer[tls.Config]

	// Read by every Pick, written rarely.
	ejectedUntil  atomic.Int64 // unix nanoseconds; connect backoff; 0 when in rotation
	outlierUntil  atomic.Int64 // unix nanoseconds; outlier ejection (outlier.go)
	deferredUntil atomic.Int64 // unix nanoseconds; Retry-After
	flags         atomic.Uint32

	// Written per attempt: on their own cache line, away from what every
	// Pick reads, so that a busy endpoint's counters do not slow its
	// readers (latency-aware balancers read in flight and the estimates).
	_        [48]byte
	inflight atomic.Int32  // attempts begun and not done
	failures atomic.Int32  // consecutive connect failures
	ewma     atomic.Int64  // smoothed latency in nanoseconds; 0: none yet
	peak     atomic.Uint64 // peak-EWMA latency, a stamped word (estimate.go)
	fail     atomic.Uint64 // failure rate, a stamped word
	attempts atomic.Uint64
	failed   atomic.Uint64
	consec   atomic.Uint64 // consecutive 5xx, gateway errors, connect failures (outlier.go)
	errors   atomic.Uint64 // failures as the success rate counts them
	// starts is the sum of the start times (unix ns) of the attempts in
	// flight, for their mean age (PendingAge).
	starts atomic.Int64
	_      [8]byte

	locals [maxSlots]Local
	conns  conns // connections engines hold open (conns.go)

	// Outlier detection, written on ejection, under the group's lock.
	group      atomic.Pointer[Group]
	multiplier atomic.Int32  // ejection multiplier
	reason     atomic.Uint32 // Reason of the last ejection
	ejections  [NumReasons]atomic.Uint64
}

// Bits of flags.
const (
	flagProbeDown = 1 << iota // active probes say it is down
	flagNotReady              // taken out by its owner (SetReady(false))
)

// New returns an endpoint in rotation with no history.
func New(service, instance, address string, labels map[string]string) *Endpoint {
	e := &Endpoint{Service: service, Instance: instance, Address: address, Labels: labels}
	e.peak.Store(pack(false, tick(time.Now().UnixNano()), float64(DefaultLatency)))
	e.makeLocals()
	return e
}

// SetTLS makes new connections to e use mutual TLS with cfg (nil:
// plain TCP); open connections stay as they are.
func (e *Endpoint) SetTLS(cfg *tls.Config) { e.tls.Store(cfg) }

// TLS is how new connections to e are secured (nil: plain TCP).
func (e *Endpoint) TLS() *tls.Config { return e.tls.Load() }

// SameIdentity reports whether e is the endpoint another spec describes:
// same instance, address, labels and protocol. State carries over only then.
func (e *Endpoint) SameIdentity(instance, address, protocol string, labels map[string]string) bool {
	return e.Instance == instance && e.Address == address && e.Protocol == protocol && maps.Equal(e.Labels, labels)
}

// Class is what an attempt came to.
type Class uint8

const (
	// Success: the instance answered (any status it chose).
	Success Class = iota
	// ConnectFailed: no connection could be made, or the peer sidecar
	// could not reach its app; the app never saw the request.
	ConnectFailed
	// Reset: the connection broke, or the stream was reset, before a
	// response.
	Reset
	// Refused: the instance said it did not process the request (HTTP/2
	// REFUSED_STREAM, or a GOAWAY that left it out).
	Refused
	// Timeout: no response head within the deadline, on a connection
	// that was made.
	Timeout
	// Cancelled: the client went away first; says nothing of the instance.
	Cancelled
	// Outrun: another attempt of the same request (a hedge, or the try
	// it hedged) answered first, and this one was dropped unanswered.
	// Its time so far is a lower bound of its latency: it raises the
	// peak estimate when above it, and counts as nothing else.
	Outrun
)

var classNames = [...]string{"success", "connect-failed", "reset", "refused", "timeout", "cancelled", "outrun"}

func (c Class) String() string {
	if int(c) < len(classNames) {
		return classNames[c]
	}
	return "unknown"
}

// Outcome is the result of one attempt.
type Outcome struct {
	Class   Class
	Latency time.Duration // from Begin to the response head, or to the failure
	// Status is what the instance answered, when the engine knows it. A
	// Success whose status says the instance could not serve
	// (Status.Failed: 502, 503, 504, 429, gRPC UNAVAILABLE,
	// RESOURCE_EXHAUSTED) counts as a failure of the instance, though
	// not as one of reachability (no ejection).
	Status Status
	// RetryAfter is how long the instance asked not to be sent requests
	// (Retry-After, or gRPC's pushback); zero for none. The endpoint is
	// deferred until then (up to RetryAfterMax): balancers pick it only
	// when nothing else is left. It is not ejected.
	RetryAfter time.Duration
}

// Attempt is one try of a request (or connection) on an endpoint. It is
// a small value: keep it on the stack.
type Attempt struct {
	ep    *Endpoint
	start int64 // unix nanoseconds
}

// Begin starts an attempt on e: it counts in flight until Done.
func (e *Endpoint) Begin() Attempt { return e.BeginAt(time.Now()) }

// BeginAt is Begin for an engine that has read the clock already.
func (e *Endpoint) BeginAt(now time.Time) Attempt {
	t := now.UnixNano()
	e.starts.Add(t)
	e.inflight.Add(1)
	e.attempts.Add(1)
	return Attempt{ep: e, start: t}
}

// Endpoint is the endpoint the attempt is on.
func (a Attempt) Endpoint() *Endpoint { return a.ep }

// Started reports whether Begin made a, and Done has not cleared it.
func (a Attempt) Started() bool { return a.ep != nil }

// Elapsed is the time since Begin.
func (a Attempt) Elapsed() time.Duration { return a.Since(time.Now()) }

// Since is the time from Begin to now, for an engine that has read the
// clock already.
func (a Attempt) Since(now time.Time) time.Duration { return time.Duration(now.UnixNano() - a.start) }

// Done ends the attempt: a connect failure ejects the endpoint for a
// backoff that doubles while failures follow each other; anything else
// that reached the instance puts it back in good standing; a success
// feeds the latency estimates; every failure (connect failure, reset,
// timeout, overload status) and success feeds the failure rate; a
// RetryAfter defers the endpoint. Connect failures, resets, timeouts and
// server errors (Status.ServerError) feed outlier detection, which may
// eject the endpoint (outlier.go); any other answer resets its counts. Done must be called once per Begin
// (*a is cleared, so a second call is a no-op).
//
// Done reads no clock: the attempt ended at its start plus o.Latency,
// which is the time its samples are stamped with (BeginAt with a chosen
// time makes them repeatable in tests).
func (a *Attempt) Done(o Outcome) {
	e := a.ep
	if e == nil {
		return
	}
	a.ep = nil
	e.inflight.Add(-1)
	e.starts.Add(-a.start)
	end := a.start + int64(max(o.Latency, 0))
	switch o.Class {
	case ConnectFailed:
		e.failed.Add(1)
		e.ConnectFailed()
		e.observeFailure(end, true)
		e.outlierFailure(end, bAll, 0)
	case Success:
		e.connected()
		if o.Status.Failed() {
			e.failed.Add(1)
			e.observeFailure(end, true)
			e.observePeak(end, o.Latency, true)
		} else {
			e.observe(o.Latency)
			e.observeFailure(end, false)
			e.observePeak(end, o.Latency, false)
		}
		e.answered(end, o.Status)
	case Reset:
		e.failed.Add(1)
		e.connected() // a connection was made
		e.observeFailure(end, true)
		e.observePeak(end, o.Latency, true)
		e.outlierFailure(end, b5xx|bGateway, bConnect)
	case Timeout:
		e.failed.Add(1) // says nothing of whether it can be reached: ejection stands
		e.observeFailure(end, true)
		e.observePeak(end, o.Latency, true)
		e.outlierFailure(end, b5xx|bGateway, 0)
	case Refused:
		e.connected()
		if field(e.consec.Load(), fConnect) != 0 {
			e.tally(0, bConnect)
		}
	case Outrun:
		e.observePeak(end, o.Latency, true) // a lower bound: it only raises the estimate
		return
	case Cancelled:
		return // says nothing of the instance, Retry-After included
	}
	if o.RetryAfter > 0 {
		e.deferFor(end, o.RetryAfter)
	}
}

// Ejection backoff after connect failures: the first lasts EjectBase,
// each further consecutive failure doubles it, up to EjectMax.
const (
	EjectBase = 2 * time.Second
	EjectMax  = 30 * time.Second
)

// ConnectFailed takes the endpoint out of rotation for a backoff. Done
// calls it; engines call it directly only outside an attempt.
func (e *Endpoint) ConnectFailed() {
	if e.OnConnectFailed != nil {
		e.OnConnectFailed()
	}
	n := e.failures.Add(1)
	d := EjectBase << min(n-1, 4)
	e.ejectedUntil.Store(time.Now().Add(min(d, EjectMax)).UnixNano())
}

// connected puts the endpoint back in good standing.
func (e *Endpoint) connected() {
	if e.failures.Load() != 0 {
		e.failures.Store(0)
		e.ejectedUntil.Store(0)
	}
}

// ewmaWeight is the share of a new sample in the latency estimate (1/8,
// as TCP's smoothed RTT).
const ewmaShift = 3

// observe folds a latency sample into the estimate. A lost race between
// two samples loses one of them, which an estimate can afford.
func (e *Endpoint) observe(d time.Duration) {
	if d <= 0 {
		d = 1
	}
	old := e.ewma.Load()
	if old == 0 {
		e.ewma.Store(int64(d))
		return
	}
	e.ewma.Store(old + (int64(d)-old)>>ewmaShift)
}

// Ejected reports whether the endpoint is out of rotation at now (unix
// nanoseconds): in its connect backoff or ejected as an outlier.
func (e *Endpoint) Ejected(now int64) bool { return e.BackedOff(now) || e.OutlierEjected(now) }

// BackedOff reports whether the endpoint is in its connect backoff at now
// (unix nanoseconds): a connection to it failed lately.
func (e *Endpoint) BackedOff(now int64) bool { return e.ejectedUntil.Load() > now }

// EjectedUntil is when the endpoint returns to rotation, the later of
// its connect backoff and its outlier ejection (zero: it is in).
func (e *Endpoint) EjectedUntil() time.Time {
	if n := max(e.ejectedUntil.Load(), e.outlierUntil.Load()); n > time.Now().UnixNano() {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// SetProbeDown sets whether active probes find the endpoint down; it
// reports whether that changed.
func (e *Endpoint) SetProbeDown(down bool) bool { return e.setFlag(flagProbeDown, down) }

// ProbeDown reports whether active probes find the endpoint down.
func (e *Endpoint) ProbeDown() bool { return e.flags.Load()&flagProbeDown != 0 }

// SetReady sets whether the endpoint is ready as far as its registry
// record (its own sidecar's check of its app) goes; an endpoint is ready
// from New. It reports whether that changed.
func (e *Endpoint) SetReady(ready bool) bool { return e.setFlag(flagNotReady, !ready) }

// Ready reports whether the endpoint is ready (SetReady).
func (e *Endpoint) Ready() bool { return e.flags.Load()&flagNotReady == 0 }

// setFlag sets or clears bit; it reports whether that changed it.
func (e *Endpoint) setFlag(bit uint32, on bool) bool {
	for {
		old := e.flags.Load()
		next := old &^ bit
		if on {
			next |= bit
		}
		if old == next {
			return false
		}
		if e.flags.CompareAndSwap(old, next) {
			return true
		}
	}
}

// Attempts is the number of attempts begun on the endpoint, ever: a
// reader that compares it between two looks learns whether the endpoint
// was used in between, at no cost to the data path.
func (e *Endpoint) Attempts() uint64 { return e.attempts.Load() }

// maxPendingAge bounds what PendingAge believes: a mean age beyond it
// comes from reading the two counters between a Begin's (or Done's) two
// updates, which is off by about a timestamp divided by the count.
const maxPendingAge = 10 * time.Minute

// PendingAge is the mean age at now (unix ns) of the attempts in flight
// (0: none). An endpoint that stopped answering has in-flight attempts
// growing older long before any of them ends and moves its latency
// estimate, so P2C prices it by this age when it exceeds the estimate.
func (e *Endpoint) PendingAge(now int64) time.Duration {
	n := int64(e.inflight.Load())
	if n <= 0 {
		return 0
	}
	age := time.Duration(now - e.starts.Load()/n)
	if age < 0 || age > maxPendingAge {
		return 0 // a torn read of the two counters
	}
	return age
}

// InFlight is the number of attempts begun and not done.
func (e *Endpoint) InFlight() int { return int(e.inflight.Load()) }

// Latency is the smoothed latency of successes, an EWMA moving 1/8 of
// the way per sample, for display (0: no successful attempt yet).
// Balancers read PeakLatency.
func (e *Endpoint) Latency() time.Duration { return time.Duration(e.ewma.Load()) }

// Stats is a copy of an endpoint's state, for views such as /config.
type Stats struct {
	InFlight int
	// OpenConns is the HTTP/1.1 and TCP connections open to it, and
	// WaitingForConn the requests waiting for one (circuitBreaker.maxConnections).
	OpenConns, WaitingForConn int
	Latency                   time.Duration // smoothed latency of successes (Latency)
	// PeakLatency is the peak-EWMA estimate balancers read, decayed to now.
	PeakLatency time.Duration
	// FailureRate is the failure rate balancers read, decayed to now.
	FailureRate float64
	// Failures counts failed attempts: connect failures, resets,
	// timeouts and overload statuses.
	Attempts, Failures  uint64
	ConsecutiveFailures int       // connect failures in a row
	EjectedUntil        time.Time // the later of the connect backoff and the outlier ejection
	DeferredUntil       time.Time // Retry-After
	// Health is the endpoint's health by signal.
	Health Health
	// OutlierEjectedUntil is when an outlier ejection ends (zero: none).
	OutlierEjectedUntil time.Time
	// EjectionReason is the reason of the last outlier ejection
	// (ReasonNone: never ejected).
	EjectionReason Reason
	// Ejections counts outlier ejections, all reasons; EjectionsBy by
	// reason.
	Ejections   uint64
	EjectionsBy [NumReasons]uint64
}

// Health is an endpoint's health by signal.
type Health struct {
	Ready     bool // registry: its own sidecar finds its app healthy (SetReady)
	ProbeDown bool // active probes from this sidecar fail (SetProbeDown)
	Outlier   bool // ejected by outlier detection
	BackedOff bool // in its connect backoff
}

// Eligible reports whether balancers pick the endpoint outside panic
// mode: ready, not probe-down, not ejected.
func (h Health) Eligible() bool { return h.Ready && !h.ProbeDown && !h.Outlier && !h.BackedOff }

// String names the first signal that keeps the endpoint out: not-ready,
// probe-down, ejected (outlier), backoff; or healthy.
func (h Health) String() string {
	switch {
	case !h.Ready:
		return "not-ready"
	case h.ProbeDown:
		return "probe-down"
	case h.Outlier:
		return "ejected"
	case h.BackedOff:
		return "backoff"
	}
	return "healthy"
}

// Stats reads the endpoint's state.
func (e *Endpoint) Stats() Stats {
	now := time.Now().UnixNano()
	st := Stats{InFlight: e.InFlight(), OpenConns: e.OpenConns(), WaitingForConn: e.WaitingForConn(), Latency: e.Latency(), PeakLatency: e.PeakLatency(now),
		FailureRate: e.FailureRate(now), Attempts: e.attempts.Load(), Failures: e.failed.Load(),
		ConsecutiveFailures: int(e.failures.Load()), EjectedUntil: e.EjectedUntil(), DeferredUntil: e.DeferredUntil(),
		Health:         Health{Ready: e.Ready(), ProbeDown: e.ProbeDown(), Outlier: e.OutlierEjected(now), BackedOff: e.BackedOff(now)},
		EjectionReason: Reason(e.reason.Load())}
	if n := e.outlierUntil.Load(); n > now {
		st.OutlierEjectedUntil = time.Unix(0, n)
	}
	for i := range st.EjectionsBy {
		st.EjectionsBy[i] = e.ejections[i].Load()
		st.Ejections += st.EjectionsBy[i]
	}
	return st
}
