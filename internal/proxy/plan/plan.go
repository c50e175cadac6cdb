package plan

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/weftmesh/weft/internal/endpoint"
	"github.com/weftmesh/weft/internal/lb"
	"github.com/weftmesh/weft/internal/request"
	"github.com/weftmesh/weft/internal/resilience"
	"github.com/weftmesh/weft/internal/snapshot"
)

// Endpoint is the data path's name for an endpoint (package endpoint).
type Endpoint = endpoint.Endpoint

// DefaultMaxAttempts bounds how many instances one request may try.
const DefaultMaxAttempts = 3

// maxAttempts sizes the per-request list of endpoints tried.
const maxAttempts = 8

// Cluster is the plan for one destination (a mesh service, an external
// service, the local app, or an egress host): its endpoints, the
// balancer that picks among them, the deadline of an attempt, how many
// attempts a request gets, and where outcomes are recorded. Every engine
// drives requests through it with a call; a Cluster is immutable once
// built (its endpoints' state is atomic), and a new routing table builds
// new ones.
type Cluster struct {
	Service   string
	Endpoints []*Endpoint
	// Protocol is what the service's endpoints declare they speak, when
	// they all agree ("tcp" skips protocol detection); else empty.
	Protocol string
	Balancer lb.Balancer
	// Timeout bounds each attempt's wait for the response head, counted
	// from when the attempt's request has gone in full (0: none). A
	// request still streaming its body (a gRPC client stream) is not
	// bounded by it.
	Timeout time.Duration
	// MaxAttempts bounds the instances one request tries (0: DefaultMaxAttempts).
	MaxAttempts int
	// Overall bounds the whole request, every try included, until its
	// response head (0: none): no retry begins after it has passed, and
	// a try that begins late gets only what is left (TryTimeout).
	Overall time.Duration
	// PerTry: Timeout is a per-try timeout, so a try that times out may
	// be retried like a reset.
	PerTry bool
	// MaxRequests bounds the requests in flight to one endpoint (0: no
	// bound): an endpoint at it is passed over, and a request that finds
	// every endpoint at it gets 503 circuit-open (circuitBreaker.maxRequests).
	MaxRequests int
	// MaxConnections bounds the HTTP/1.1 and TCP connections open to one
	// endpoint (0: no bound), and MaxPending the requests that may wait
	// at once for one of them (0: any number): a request that cannot
	// wait, or waits its try's whole timeout, passes to another instance
	// (circuitBreaker.maxConnections and maxPendingRequests; ConnLimit).
	MaxConnections, MaxPending int
	// RetryOn is what a failed try is retried on (retries.on): connect
	// failures, resets (replayable requests only), refused streams, and
	// the statuses it names.
	RetryOn snapshot.RetryOn
	// PassTimeout: each try tells the next hop how long it will wait
	// (TimeoutHeader), because the next hop is a Weft sidecar or the
	// local app; external services are not told.
	PassTimeout bool
	// Source is the service this sidecar calls for, sent to the next hop
	// in SourceHeader in place of what the request carried ("": the
	// request's own is passed on, as to the local app).
	Source string
	// MaxBufferedBody is the largest request body an engine keeps to send
	// it again (retries.maxBufferedBody; 0: none kept): a request whose
	// body is kept whole may be retried as one without a body (KeepBody).
	MaxBufferedBody int64
	// RetryBackoff, when its Base is set, is the backoff of retries in
	// place of the policy's (a route rule's retry.backoff).
	RetryBackoff resilience.Backoff
	// Server: the inbound's cluster, whose attempts are server spans.
	Server  bool
	tracer  *Tracer         // makes its requests' spans; nil: none
	guard   *guard          // the service's policy state; nil: plain retries, no limits
	recent  *Recent         // where its requests are recorded (Record); nil: not recorded
	log     *AccessLog      // where they are logged too; nil: not logged
	subset  string          // "service/subset" for a ServiceSubset's cluster
	routes  *routes         // the service's HTTPRoutes and GRPCRoutes (Route); nil: none
	authz   *Authorization  // the inbound's authorization (authz.go); nil: none
	group   *endpoint.Group // the service's outlier detection; nil: none
	metrics *ServiceMetrics
}

// name is the cluster's service, or "service/subset" for a subset's.
func (c *Cluster) name() string {
	if c.subset != "" {
		return c.subset
	}
	return c.Service
}

// Group is the cluster's outlier detection (nil: none).
func (c *Cluster) Group() *endpoint.Group { return c.group }

// NewCluster builds a cluster with round robin over eps, retrying what
// the default traffic policy retries.
func NewCluster(service string, eps []*Endpoint, timeout time.Duration, m *ServiceMetrics) *Cluster {
	return &Cluster{Service: service, Endpoints: eps, Balancer: &lb.RoundRobin{}, Timeout: timeout, metrics: m,
		RetryOn: defaultRetryOn}
}

// defaultRetryOn is what the default traffic policy retries.
var defaultRetryOn = snapshot.DefaultPolicy().Retries.On

// Metrics are the cluster's label handles (nil-safe methods; nil in
// tests that pass none).
func (c *Cluster) Metrics() *ServiceMetrics { return c.metrics }

func (c *Cluster) maxAttempts() int {
	if c.MaxAttempts > 0 {
		return min(c.MaxAttempts, maxAttempts)
	}
	return DefaultMaxAttempts
}

// Pick is the balancer's choice for a request that has tried tried.
func (c *Cluster) Pick(r request.View, tried []*Endpoint) *Endpoint {
	return c.Balancer.Pick(c.Endpoints, r, tried)
}

// Call is one request's (or TCP connection's) trip through a cluster's
// plan, the same for every engine:
//
//	Next     -> the balancer picks an untried endpoint; the attempt begins
//	engine   -> dial, send, await the response head within c.Timeout
//	OK       -> the attempt succeeded (the engine relays the response)
//	Failed   -> the attempt is recorded; Again says whether the request
//	            may go to another instance; Next again, or give up with
//	            Result()
//
// It lives inside the engine's per-request state (no allocation); it
// must not be copied once begun.
type Call struct {
	c          *Cluster
	view       request.View
	tried      [maxAttempts]*Endpoint
	n          int // len of tried
	attempts   int
	att        endpoint.Attempt
	last       *MeshError
	class      endpoint.Class // of the last failure
	pending    bool           // a success finish records (okLater)
	start      time.Time      // when the request began, if the engine has read the clock
	status     endpoint.Status
	retryAfter time.Duration
	// statusRetry: the last attempt's answer is retried (RetryStatus).
	statusRetry bool
	// granted: the budget has granted the retry about to begin.
	granted bool
	permit  resilience.Permit
	// admitted: the breaker issued permit, to be settled once.
	admitted bool
	// try is the current try's TryTimeout.
	try time.Duration
	// caller is how long the caller waits for the response head, from
	// start, when its request said so (TimeoutHeader); 0: it did not.
	caller time.Duration
	hedge  hedgeState
	// kept: the engine holds the whole request body and can send it
	// again (Kept).
	kept bool
	// overflowed: the last try found its endpoint at MaxConnections, so
	// the next goes elsewhere without spending the retry budget.
	overflowed bool
	trace      callTrace // the spans (trace.go)
	// authz is the inbound's authorization decision, for the record
	// ("": none in force).
	authz string
}

// Init starts a call through c for the request view; start is when the
// request began, if the engine has read the clock (else zero).
func (k *Call) Init(c *Cluster, view request.View, start time.Time) {
	*k = Call{c: c, view: view, start: start}
	if c.tracer != nil && view.Method() != nil { // (a TCP connection has no span)
		k.trace.begin(c.tracer, view)
	}
	if c.authz != nil {
		k.authz = c.authz.recorded(view)
	}
	if v := view.Header(TimeoutHeader); v != nil {
		if d, ok := ParseTimeoutHeader(v); ok {
			k.caller = d
			if k.start.IsZero() {
				k.start = time.Now()
			}
		}
	}
}

// Clear drops what the call holds (endpoints, the last error), for a call
// kept between requests.
func (k *Call) Clear() { *k = Call{} }

// Next picks the endpoint for the next attempt and begins it; nil when
// the request has had its attempts or no untried endpoint is left.
func (k *Call) Next() *Endpoint {
	k.statusRetry = false
	if k.attempts == 0 {
		if e := k.c.authorizeConn(k.view); e != nil { // (a TCP connection; requests were authorized by Route)
			k.last = e
			return nil
		}
		if e := k.admit(); e != nil {
			k.last = e
			return nil
		}
	} else if k.attempts >= k.c.maxAttempts() || k.late() {
		return nil
	}
	ep := k.c.Pick(k.view, k.tried[:k.n])
	if ep != nil && k.c.MaxRequests > 0 {
		ep = k.underLimit(ep)
	}
	if ep == nil {
		return nil
	}
	if k.overflowed {
		k.overflowed = false
	} else if k.attempts > 0 {
		if !k.granted && !k.c.guard.retryAllowed(k.c.metrics) {
			return nil
		}
		k.granted = false
		k.c.metrics.retried()
	}
	k.tried[k.n] = ep
	k.n++
	k.attempts++
	if k.attempts == 1 && !k.start.IsZero() {
		k.att = ep.BeginAt(k.start)
	} else {
		k.att = ep.Begin()
	}
	k.try = k.tryTimeout()
	k.startSpan(ep)
	return ep
}

// underLimit is ep, or the first pick after it with fewer than
// MaxRequests in flight; those at the limit count as tried. Nil, with the
// overflow as the last error, when none is left.
func (k *Call) underLimit(ep *Endpoint) *Endpoint {
	for ep != nil && ep.InFlight() >= k.c.MaxRequests {
		if k.n == len(k.tried) {
			ep = nil
			break
		}
		k.tried[k.n] = ep
		k.n++
		ep = k.c.Pick(k.view, k.tried[:k.n])
	}
	if ep == nil {
		k.last = &MeshError{Status: http.StatusServiceUnavailable, Reason: ReasonCircuitOpen, Service: k.c.Service,
			Message: fmt.Sprintf("every instance of %q tried has circuitBreaker.maxRequests (%d) requests in flight", k.c.Service, k.c.MaxRequests)}
	}
	return ep
}

// ConnLimit is how many connections the current try may find open to
// its endpoint before it waits for one, and for how long: as long as the
// try's timeout, or DialTimeout when it has none.
func (k *Call) ConnLimit() endpoint.ConnLimit {
	c := k.c
	if c.MaxConnections <= 0 {
		return endpoint.ConnLimit{}
	}
	wait := k.try
	if wait <= 0 {
		wait = DialTimeout
	}
	return endpoint.ConnLimit{Max: c.MaxConnections, Pending: c.MaxPending, Wait: wait}
}

// DialTimeout bounds the wait for a connection of a try that has no
// timeout.
const DialTimeout = 2 * time.Second

// Overflowed ends the current try before it was sent: its endpoint had
// MaxConnections open and no connection freed in time (err, from
// endpoint.AwaitConn). It says nothing of the instance's health, and the
// next try, on another instance, spends no retry budget: as an instance
// at MaxRequests, this one is passed over. Next then picks; when none is
// left, Result is 503 circuit-open.
func (k *Call) Overflowed(err error) *MeshError {
	ep := k.Endpoint()
	k.att.Done(endpoint.Outcome{Class: endpoint.Cancelled})
	k.endSpan(0, "", ReasonCircuitOpen, time.Time{})
	k.overflowed = true
	k.class = endpoint.Cancelled
	k.last = &MeshError{Status: http.StatusServiceUnavailable, Reason: ReasonCircuitOpen, Service: k.c.Service, Instance: ep.Instance,
		Message: fmt.Sprintf("%s at %s has circuitBreaker.maxConnections (%d): %v", ep.Instance, ep.Address, k.c.MaxConnections, err)}
	k.c.metrics.overflowed()
	return k.last
}

// Attempts is how many attempts the call has begun.
func (k *Call) Attempts() int { return k.attempts }

// Endpoint is the endpoint of the current (or last) attempt.
func (k *Call) Endpoint() *Endpoint {
	if k.n == 0 {
		return nil
	}
	return k.tried[k.n-1]
}

// Answered records what the instance answered the current attempt with
// (its HTTP status, or a trailers-only gRPC status), for OK or OKLater
// to report: the balancer and outlier detection count failing answers.
func (k *Call) Answered(st endpoint.Status, retryAfter time.Duration) {
	k.status, k.retryAfter = st, retryAfter
}

// OK ends the current attempt with a response from the instance.
func (k *Call) OK() {
	lat := k.att.Elapsed()
	k.att.Done(endpoint.Outcome{Class: endpoint.Success, Latency: lat, Status: k.status, RetryAfter: k.retryAfter})
	k.c.guard.observe(lat)
	k.settle(!failedAnswer(k.status))
}

// OKLater marks the current attempt a success to be recorded by Finish:
// for an engine that reads the clock when the exchange ends anyway (the
// HTTP/1.1 fast path), so the attempt costs no clock read of its own. Its
// latency then runs to the end of the response.
func (k *Call) OKLater() { k.pending = true }

// Finish records an attempt marked OKLater, at now.
func (k *Call) Finish(now time.Time) {
	if k.pending {
		k.pending = false
		lat := k.att.Since(now)
		k.att.Done(endpoint.Outcome{Class: endpoint.Success, Latency: lat, Status: k.status, RetryAfter: k.retryAfter})
		k.c.guard.observe(lat)
		k.settle(!failedAnswer(k.status))
	}
}

// Failed ends the current attempt with a failure of class and returns the
// mesh error it stands for (remembered as the last).
func (k *Call) Failed(class endpoint.Class, err error) *MeshError {
	ep := k.Endpoint()
	k.att.Done(endpoint.Outcome{Class: class, Latency: k.att.Elapsed()})
	k.failSpan(class)
	k.last = UpstreamError(k.c.Service, ep, class, err)
	k.class = class
	return k.last
}

// Again is the retry decision (Retry) for the last failure, or for an
// answer RetryStatus took.
func (k *Call) Again(bodySent bool) bool {
	if k.statusRetry {
		k.statusRetry = false
		return true
	}
	if k.overflowed {
		return true // nothing was sent: another instance may take it
	}
	return k.last != nil && k.Retry(k.class, bodySent)
}

// Cancelled ends the current attempt because the client went away (or
// the mesh answered already): it says nothing of the instance.
func (k *Call) Cancelled() {
	k.att.Done(endpoint.Outcome{Class: endpoint.Cancelled})
	k.failSpan(endpoint.Cancelled)
	k.hedge.att.Done(endpoint.Outcome{Class: endpoint.Cancelled})
	k.hedge.racing = false
	if k.admitted && k.last != nil {
		k.settle(false) // the mesh answered a failure (an engine that skips Result)
	} else if k.admitted {
		k.admitted = false
		k.permit.Cancel()
	}
}

// RetryStatus is the retry decision for an answer: the instance answered
// st, which the service's policy retries (retries.on), and the request
// may go to another instance (replayable, no body sent, attempts and
// time left, an untried instance, and the retry budget allows it). When
// it says yes the attempt has ended (recorded with st) and the engine
// discards the answer and asks Again and Next as after a failure.
func (k *Call) RetryStatus(st endpoint.Status, bodySent bool) bool {
	c := k.c
	code, isHTTP := st.HTTP()
	g, isGRPC := st.GRPC()
	if !(isHTTP && c.RetryOn.Status(code) || isGRPC && c.RetryOn.GRPC(g)) {
		return false
	}
	if !k.resendable(bodySent) || k.attempts >= c.maxAttempts() || k.n >= len(c.Endpoints) || k.late() {
		return false
	}
	if !c.guard.retryAllowed(c.metrics) {
		return false
	}
	k.granted, k.statusRetry = true, true
	ep := k.Endpoint()
	k.att.Done(endpoint.Outcome{Class: endpoint.Success, Latency: k.att.Elapsed(), Status: st})
	if k.spanOpen() {
		code, _ := st.HTTP()
		grpc := ""
		if g, ok := st.GRPC(); ok {
			grpc = strconv.Itoa(g)
		}
		k.endSpan(code, grpc, "retried", time.Time{})
	}
	k.last = &MeshError{Status: http.StatusBadGateway, Reason: ReasonUpstreamReset, Service: c.Service, Instance: ep.Instance,
		Message: fmt.Sprintf("%s at %s answered %s, and no other instance could take the request", ep.Instance, ep.Address, st)}
	return true
}

// Backoff is how long to wait before the retry about to begin: none
// after a connect failure or refusal (another instance, at once), the
// policy's jittered backoff after an answer or a broken connection.
func (k *Call) Backoff() time.Duration {
	g := k.c.guard
	if g == nil || k.attempts == 0 || k.class == endpoint.ConnectFailed || k.class == endpoint.Refused {
		return 0
	}
	if k.c.RetryBackoff.Base > 0 {
		return k.c.RetryBackoff.Delay(k.attempts, rand.Uint64())
	}
	return g.backoff.Delay(k.attempts, rand.Uint64())
}

// TryTimeout bounds the current try's wait for its response head: the
// cluster's Timeout, or what is left of Overall or of the caller's own
// timeout (TimeoutHeader) if that is sooner (0: none). It is fixed when
// the try begins (Next), so an engine may add it to when the try's
// request went out, however often it asks.
func (k *Call) TryTimeout() time.Duration {
	if k.attempts == 0 {
		return k.tryTimeout()
	}
	return k.try
}

func (k *Call) tryTimeout() time.Duration {
	c := k.c
	t := c.Timeout
	if (c.Overall <= 0 && k.caller <= 0) || k.start.IsZero() {
		return t
	}
	var left time.Duration
	if k.attempts <= 1 && k.caller <= 0 { // the first try: all of Overall is left (no clock read)
		left = c.Overall
	} else {
		left = k.deadline() - time.Since(k.start)
		if left <= 0 {
			left = time.Millisecond
		}
	}
	if t > 0 && t < left {
		return t
	}
	return left
}

// deadline is the sooner of Overall and the caller's timeout, from the
// request's start (one of them is set).
func (k *Call) deadline() time.Duration {
	o := k.c.Overall
	if k.caller > 0 && (o <= 0 || k.caller < o) {
		return k.caller
	}
	return o
}

// NextHopTimeout is what the current try tells the next hop in
// TimeoutHeader: its TryTimeout, when the cluster passes it on and has
// one (false: send no header).
func (k *Call) NextHopTimeout() (time.Duration, bool) {
	if !k.c.PassTimeout {
		return 0, false
	}
	t := k.TryTimeout()
	return t, t > 0
}

// late reports whether the request has used up its overall timeout or
// the caller's.
func (k *Call) late() bool {
	return (k.c.Overall > 0 || k.caller > 0) && !k.start.IsZero() && time.Since(k.start) >= k.deadline()
}

// admit lets the request in, or says why not: over the client-side rate
// limit (429 rate-limited), or the circuit is open (503 circuit-open).
func (k *Call) admit() *MeshError {
	g := k.c.guard
	if g == nil {
		return nil
	}
	now := k.start
	if now.IsZero() {
		now = time.Now()
	}
	ns := now.UnixNano()
	if g.perSource != nil {
		src := StringOf(k.view.Header(SourceHeader))
		if src == "" {
			src = unknownSource
		}
		if ok, after := g.perSource.Allow(src, ns); !ok {
			return sourceLimited(k.c.Service, src, after)
		}
	}
	if g.limiter != nil {
		if ok, after := g.limiter.Allow(ns); !ok {
			return rateLimited(k.c.Service, after)
		}
	}
	if g.breaker != nil {
		p, ok := g.breaker.Allow(ns)
		if !ok {
			return circuitOpen(k.c.Service)
		}
		k.permit, k.admitted = p, true
	}
	if g.budget != nil {
		g.budget.Request(ns)
	}
	if g.hedge != nil {
		g.hedge.limiter.Request(ns)
	}
	return nil
}

// settle reports the request's end to the breaker, once.
func (k *Call) settle(ok bool) {
	if k.admitted {
		k.admitted = false
		k.permit.Done(ok, time.Now().UnixNano())
	}
}

// failedAnswer: an answer the breaker counts as a failure (any 5xx, and
// gRPC statuses that say the service could not serve the call).
func failedAnswer(st endpoint.Status) bool {
	if code, ok := st.HTTP(); ok {
		return code >= 500
	}
	return st.Failed()
}

// Retry is the retry decision, the same for every engine: may a request
// whose attempt failed with class go to another instance? bodySent: some
// of its body has left (it cannot be replayed). A connect failure or a
// refusal means the app never saw the request; a broken connection only
// allows it for a replayable request (a safe method without a body). A
// timeout is never retried here (the per-try timeouts of the resilience
// policy will).
func (k *Call) Retry(class endpoint.Class, bodySent bool) bool {
	if k.attempts >= k.c.maxAttempts() {
		return false
	}
	on := &k.c.RetryOn
	switch class {
	case endpoint.ConnectFailed:
		return on.ConnectFailure && (!bodySent || k.kept)
	case endpoint.Refused:
		return on.RefusedStream && (!bodySent || k.kept)
	case endpoint.Reset:
		return on.Reset && k.resendable(bodySent)
	case endpoint.Timeout:
		return k.c.PerTry && k.resendable(bodySent) && !k.late()
	}
	return false
}

// resendable reports whether a request that may have reached an
// instance can go to another: a safe method without a body
// (View.Replayable), or an idempotent request or gRPC call whose body
// the engine kept whole (Kept). bodySent: some of its body has left,
// and it was not kept.
func (k *Call) resendable(bodySent bool) bool {
	if k.kept {
		return true
	}
	return !bodySent && k.view.Replayable()
}

// KeepBody is how many bytes of request body the engine should keep, at
// most, to send the request again (0: keep none): the cluster's
// MaxBufferedBody for an idempotent request or a gRPC call (idempotent),
// or the hedging's 64 KiB when the request may be hedged.
func (k *Call) KeepBody() int64 {
	if !hedgeable(k.view) || len(k.c.Endpoints) < 2 {
		return 0
	}
	n := k.c.MaxBufferedBody
	if k.Hedges() {
		n = max(n, maxHedgeBody)
	}
	return n
}

// Kept tells the plan the engine holds the whole request body (at most
// KeepBody bytes) and will send it again to another instance: retries
// then treat the request as one without a body.
func (k *Call) Kept() { k.kept = true }

// SameAgain lets the endpoint of the last attempt be picked again: it
// refused the request without processing it (HTTP/2 REFUSED_STREAM), so
// another connection to it may take it.
func (k *Call) SameAgain() {
	if k.n > 0 {
		k.n--
	}
}

// PastPeer is the retry decision for a peer sidecar's own `502
// upstream-connect-failed` (its app refused the connection, so the app
// never saw the request): another instance may take it if one is left
// untried and no body has left. Otherwise the peer's answer is relayed
// as it is.
func (k *Call) PastPeer(bodySent bool) bool {
	return k.n < len(k.c.Endpoints) && k.Retry(endpoint.ConnectFailed, bodySent)
}

// Result is the error to answer with when no attempt succeeded: the last
// failure, or no-ready-instance when there was none.
func (k *Call) Result() *MeshError {
	e := k.last
	if e == nil {
		e = noReadyInstance(k.c.Service)
	}
	k.settle(false)
	if g := k.c.guard; g != nil && g.fallback != nil && (e.Reason == ReasonNoReadyInstance || e.Reason == ReasonCircuitOpen) {
		f := *e
		f.Fallback = g.fallback
		return &f
	}
	return e
}

// UpstreamError is the mesh error of a failed attempt on ep.
func UpstreamError(service string, ep *Endpoint, class endpoint.Class, err error) *MeshError {
	status, reason := http.StatusBadGateway, ReasonUpstreamReset
	switch class {
	case endpoint.ConnectFailed:
		reason = ReasonConnectFailed
	case endpoint.Timeout:
		status, reason = http.StatusGatewayTimeout, ReasonUpstreamTimeout
	}
	e := &MeshError{Status: status, Reason: reason, Service: service}
	if ep != nil {
		e.Instance = ep.Instance
		e.Message = fmt.Sprintf("%s at %s: %v", ep.Instance, ep.Address, err)
	} else {
		e.Message = err.Error()
	}
	return e
}

func noReadyInstance(service string) *MeshError {
	return &MeshError{Status: http.StatusServiceUnavailable, Reason: ReasonNoReadyInstance, Service: service,
		Message: fmt.Sprintf("service %q has no ready instance", service)}
}
