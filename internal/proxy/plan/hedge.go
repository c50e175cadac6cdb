package plan

import (
	"fmt"
	"time"

	"github.com/weftmesh/weft/internal/endpoint"
	"github.com/weftmesh/weft/internal/request"
	"github.com/weftmesh/weft/internal/resilience"
	"github.com/weftmesh/weft/internal/snapshot"
)

// Hedging (a service's hedging policy): a request whose first try has
// not answered after a delay is sent once more, to another instance, and
// the first answer wins. Every engine drives it the same way:
//
//	HedgeAfter -> how long the first try may wait unanswered (false: no hedge)
//	engine     -> waits that long for the first try's answer
//	Hedge      -> another instance, within hedging.maxPercent and the
//	              retry budget (nil: none; the first try goes on alone)
//	engine     -> sends the request to it too, and waits for both
//	HedgeWon   -> the hedge answered first: it is the current attempt
//	HedgeLost  -> the first try answered first, or the hedge failed
//
// The attempt that loses is dropped unanswered and recorded Outrun (its
// time so far raises its instance's latency estimate, nothing else).
// Only idempotent requests are hedged: HTTP's GET, HEAD, OPTIONS, PUT,
// DELETE and TRACE, and every gRPC call of a service whose policy asks
// for hedging (the policy says its methods may run twice, as gRPC's
// hedging policy does); and only those the engine can send again
// whole (without a body, or with all of it kept).

// maxHedgeBody is the request body an engine keeps to send to a hedge.
const maxHedgeBody = 64 << 10

// hedger is a service's hedging policy made into state.
type hedger struct {
	delay   time.Duration              // fixed; 0: the quantile q of tracker
	q       float64                    // 0.90, 0.95, 0.99
	tracker *resilience.LatencyTracker // recent answer latencies (nil with a fixed delay)
	limiter *resilience.HedgeLimiter
}

func newHedger(h snapshot.Hedging) (*hedger, error) {
	lim, err := resilience.NewHedgeLimiter(resilience.HedgeOptions{MaxPercent: h.MaxPercent, Window: 10 * time.Second})
	if err != nil {
		return nil, err
	}
	hg := &hedger{delay: h.Delay, limiter: lim}
	if h.Delay <= 0 {
		if h.Percentile <= 0 || h.Percentile >= 100 {
			return nil, fmt.Errorf("percentile %d: want 90, 95 or 99", h.Percentile)
		}
		hg.q = float64(h.Percentile) / 100
		if hg.tracker, err = resilience.NewLatencyTracker(resilience.DefaultLatencyOptions()); err != nil {
			return nil, err
		}
	}
	return hg, nil
}

// observe feeds an answer's latency to the hedging delay's quantile
// (nil-safe; nothing without a percentile delay).
func (g *guard) observe(d time.Duration) {
	if g != nil && g.hedge != nil && g.hedge.tracker != nil {
		g.hedge.tracker.Observe(d, time.Now().UnixNano())
	}
}

// hedgeState is a call's hedge: the second attempt while it races the
// first.
type hedgeState struct {
	att    endpoint.Attempt
	tried  bool          // HedgeAfter said yes once: no second hedge
	racing bool          // a hedge is in flight beside the first try
	try    time.Duration // the hedge's TryTimeout: what the first try had left
}

// idempotent reports the HTTP methods RFC 9110 calls idempotent: a
// request with one of them may run twice with the effect of once.
func idempotent(method []byte) bool {
	switch string(method) {
	case "GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE":
		return true
	}
	return false
}

func hedgeable(v request.View) bool { return v.GRPC() || idempotent(v.Method()) }

// Hedges reports whether the request may be hedged, if the engine can
// send it again: its service hedges and it is idempotent. An engine that
// keeps a body to send again asks before keeping one.
func (k *Call) Hedges() bool {
	g := k.c.guard
	return g != nil && g.hedge != nil && len(k.c.Endpoints) > 1 && hedgeable(k.view)
}

// HedgeAfter is how long the first try may wait for its response head
// before a hedge is sent; false when the request is not hedged: the
// service has no hedging policy, the request is not idempotent, resend
// is false (the engine cannot send it again whole), no other instance
// or attempt is left, the percentile delay has too few samples yet, or
// the try times out first. It says yes once per request.
func (k *Call) HedgeAfter(resend bool) (time.Duration, bool) {
	g := k.c.guard
	if g == nil || g.hedge == nil || k.hedge.tried || k.attempts != 1 || !resend {
		return 0, false
	}
	if k.attempts >= k.c.maxAttempts() || k.n >= len(k.c.Endpoints) || !hedgeable(k.view) {
		return 0, false
	}
	h := g.hedge
	d := h.delay
	if d <= 0 {
		q, ok := h.tracker.Quantile(h.q, time.Now().UnixNano())
		if !ok {
			return 0, false
		}
		d = max(q, time.Millisecond)
	}
	if k.try > 0 && d >= k.try {
		return 0, false
	}
	return d, true
}

// Hedge begins the hedge of a request whose first try has waited
// waited without an answer: another instance, picked as for a retry,
// when hedging.maxPercent and the retry budget allow it (a refusal is
// counted); nil otherwise, and the first try goes on alone. The hedge
// waits no longer than the first try has left (HedgeHopTimeout).
func (k *Call) Hedge(waited time.Duration) *Endpoint {
	c := k.c
	h := c.guard.hedge
	k.hedge.tried = true
	if !h.limiter.TryHedge(time.Now().UnixNano()) {
		c.metrics.hedge("denied")
		return nil
	}
	ep := c.Pick(k.view, k.tried[:k.n])
	if ep == nil || c.MaxRequests > 0 && ep.InFlight() >= c.MaxRequests {
		return nil
	}
	if !c.guard.retryAllowed(c.metrics) {
		c.metrics.hedge("denied")
		return nil
	}
	k.tried[k.n] = ep
	k.n++
	k.attempts++
	k.hedge.att = ep.Begin()
	k.hedge.racing = true
	k.hedge.try = 0
	if k.try > 0 {
		k.hedge.try = max(k.try-waited, time.Millisecond)
	}
	return ep
}

// HedgeTimeout bounds the hedge's wait for its response head: what the
// first try had left when the hedge began (0: none).
func (k *Call) HedgeTimeout() time.Duration { return k.hedge.try }

// HedgeHopTimeout is what the hedge tells the next hop in TimeoutHeader
// (as NextHopTimeout for the first try).
func (k *Call) HedgeHopTimeout() (time.Duration, bool) {
	if !k.c.PassTimeout {
		return 0, false
	}
	return k.hedge.try, k.hedge.try > 0
}

// HedgeWon ends the race for the hedge: it answered first, or the first
// try failed (recorded with Failed) while it waited. The first try, if
// still open, is dropped (Outrun); the hedge becomes the current
// attempt, to be ended with OK, Failed, RetryStatus and the rest.
func (k *Call) HedgeWon() {
	if !k.hedge.racing {
		return
	}
	k.att.Done(endpoint.Outcome{Class: endpoint.Outrun, Latency: k.att.Elapsed()})
	k.att, k.hedge.att = k.hedge.att, endpoint.Attempt{}
	k.try, k.hedge.racing = k.hedge.try, false
	k.c.metrics.hedge("won")
}

// HedgeLost ends the race for the first try: it answered first (class
// Outrun: the hedge is dropped), the hedge failed with class (a connect
// failure, a reset, ...: recorded against its instance), or it was
// never sent or the request ended (Cancelled). The first try is the
// current attempt again.
func (k *Call) HedgeLost(class endpoint.Class) {
	if !k.hedge.racing {
		return
	}
	k.hedge.att.Done(endpoint.Outcome{Class: class, Latency: k.hedge.att.Elapsed()})
	k.hedge.racing = false
	k.tried[k.n-1], k.tried[k.n-2] = k.tried[k.n-2], k.tried[k.n-1] // Endpoint is the first try's again
	switch class {
	case endpoint.Outrun:
		k.c.metrics.hedge("lost")
	case endpoint.Cancelled: // never sent, or the request ended first
	default:
		k.c.metrics.hedge("failed")
	}
}

// Racing reports whether a hedge is in flight beside the first try.
func (k *Call) Racing() bool { return k.hedge.racing }
