package stdhttp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/internal/endpoint"
	"github.com/weftmesh/weft/internal/h1"
	"github.com/weftmesh/weft/internal/health"
	"github.com/weftmesh/weft/internal/proxy/plan"
	"github.com/weftmesh/weft/internal/security/authz"
	"github.com/weftmesh/weft/internal/snapshot"
)

// Inbound is the handler on the sidecar's inbound listener: it takes
// requests from peer sidecars and plain clients and forwards them to the
// local app.
type Inbound struct {
	Service   string
	Instance  string
	App       string // host:port of the local app
	Transport http.RoundTripper
	// H2 carries requests that arrived as HTTP/2 to the app (nil: HTTP/1.1).
	H2      http.RoundTripper
	metrics *plan.ServiceMetrics
	cluster atomic.Pointer[plan.Cluster] // the app, as the fast path's only destination
	authz   *plan.Authorization          // the service's AuthorizationPolicies, shared by every copy of cluster
	healthy func() bool                  // the sidecar's check of its app, for probes (nil: no answer to probes)
}

// AnswerProbes makes the inbound answer the probes of peer sidecars
// (health.Path with health.Header) itself: 200 while healthy says the
// app is up, 503 otherwise. Call it before serving.
func (in *Inbound) AnswerProbes(healthy func() bool) { in.healthy = healthy }

// probe is the answer to a probe of this sidecar, or nil when the
// request is none.
func (in *Inbound) probe(target []byte, header func(string) string) *plan.MeshError {
	if in.healthy == nil || string(target) != health.Path || header(health.Header) == "" {
		return nil
	}
	if in.healthy() {
		return &plan.MeshError{Status: http.StatusOK, Fallback: probeOK}
	}
	return &plan.MeshError{Status: http.StatusServiceUnavailable, Reason: plan.ReasonNoReadyInstance, Service: in.Service,
		Instance: in.Instance, Message: fmt.Sprintf("the app of %s at %s fails its health check", in.Instance, in.App)}
}

var probeOK = &plan.Fallback{Status: http.StatusOK, Headers: http.Header{}, Body: []byte("ok\n")}

// NewInbound wires an Inbound.
func NewInbound(service, instance, app string, transport http.RoundTripper, m *plan.Metrics) *Inbound {
	in := &Inbound{Service: service, Instance: instance, App: app, Transport: transport}
	if m != nil {
		in.metrics = m.ForService("inbound", service)
	}
	c := plan.NewCluster(service, []*plan.Endpoint{endpoint.New(service, instance, app, nil)}, 0, in.metrics)
	c.PassTimeout = true // the app may read how long its caller waits, and pass it on
	in.authz = plan.NewAuthorization(service, in.metrics)
	c.Authorize(in.authz)
	in.cluster.Store(c)
	return in
}

// SetAuthorization puts the service's compiled AuthorizationPolicies in
// force for the next request, on every engine (nil: every request is
// let through).
func (in *Inbound) SetAuthorization(m *authz.Matcher) { in.authz.Set(m) }

// TraceWith makes the inbound's requests server spans of t (nil: none).
// Call it before serving.
func (in *Inbound) TraceWith(t *plan.Tracer) {
	c := in.cluster.Load()
	c.Server = true
	c.SetTracer(t)
}

// RecordInto makes the inbound record its requests into r and l (either
// may be nil). Call it before serving.
func (in *Inbound) RecordInto(r *plan.Recent, l *plan.AccessLog) { in.cluster.Load().RecordInto(r, l) }

// SetTimeout bounds the wait for the app's response head (the default is
// none: the caller's sidecar bounds it). Call it before serving.
func (in *Inbound) SetTimeout(d time.Duration) { in.cluster.Load().Timeout = d }

// Resolve is the fast path's routing decision for the inbound listener:
// always the local app.
func (in *Inbound) Resolve(req *h1.Head, _ []byte, _ bool) (*plan.Cluster, *plan.MeshError) {
	if in.healthy != nil && len(req.Target()) == len(health.Path) {
		if e := in.probe(req.Target(), func(name string) string { return string(req.Get(name)) }); e != nil {
			return in.cluster.Load(), e
		}
	}
	return in.cluster.Load(), nil
}

func (in *Inbound) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if e := in.probe([]byte(r.URL.RequestURI()), r.Header.Get); e != nil {
		e.WriteStd(w, false) // (a peer's probe is no request: not counted, as on the fast path)
		return
	}
	in.metrics.Begin()
	source := r.Header.Get(plan.SourceHeader)
	if peer := peerOf(r); peer != "" {
		// Over mutual TLS the caller is who its certificate says: the
		// app, policies and metrics see that, whatever the header said.
		source = peer
		r.Header[sourceKey] = []string{peer}
	}
	res := plan.Result{Status: plan.StatusAborted}
	defer func() {
		res.Source = source
		in.metrics.Done(res, start)
	}()
	id := requestID(r) // a caller outside the mesh sent none: the app gets one
	target := originTarget(r.RequestURI)
	c := in.cluster.Load()
	var decided string // the authorization's decision
	if c.Routed() {
		routed, merr := c.Route(&stdView{r}) // authorization first
		if merr != nil {
			res = failStd(w, r, in.metrics, merr)
			c.RecordString(&plan.Visit{Start: start, End: time.Now(), Status: res.Status, Err: merr, Bytes: -1}, id, r.Method, target, source)
			return
		}
		decided = routed.Authorization()
	}
	res = in.forward(w, r, start, func(k *plan.Call, status int, bytes int64) {
		c.RecordString(&plan.Visit{Start: start, End: time.Now(), Status: status, Call: k, Authorization: decided, Bytes: bytes}, id, r.Method, target, source)
	})
}

// forward sends r to the app, and records it with record once answered.
func (in *Inbound) forward(w http.ResponseWriter, r *http.Request, start time.Time, record func(k *plan.Call, status int, bytes int64)) (res plan.Result) {
	if r.Method == http.MethodConnect {
		return failStd(w, r, in.metrics, &plan.MeshError{Status: http.StatusMethodNotAllowed, Reason: plan.ReasonBadRequest, Service: in.Service,
			Instance: in.Instance, Message: "CONNECT is not accepted on the inbound listener"})
	}
	prepare(r)
	r, cancel := withGRPCDeadline(r)
	defer cancel()
	setGRPCTimeout(r)
	r.URL.Host = in.App
	var k plan.Call
	k.Init(in.cluster.Load(), &stdView{r}, start)
	defer func() { k.End(res, time.Now()) }()
	bytes := int64(-1)
	defer func() { record(&k, res.Status, bytes) }()
	k.Next() // the app: one endpoint, one attempt
	passTimeout(r, &k)
	resp, err := roundTrip(transportFor(r, in.Transport, in.H2), r, k.TryTimeout())
	if err != nil {
		if r.Context().Err() != nil && !errors.Is(err, plan.ErrHeadTimeout) {
			k.Cancelled()
			if isGRPC(r) && r.Context().Err() == context.DeadlineExceeded {
				return failStd(w, r, in.metrics, &plan.MeshError{Status: http.StatusGatewayTimeout, Reason: plan.ReasonUpstreamTimeout,
					Service: in.Service, Instance: in.Instance,
					Message: fmt.Sprintf("grpc-timeout ran out waiting for the app of %s at %s", in.Instance, in.App)})
			}
			return plan.Result{Status: plan.StatusClientGone}
		}
		e := k.Failed(classOf(err), err)
		e.Message = fmt.Sprintf("app of %s at %s: %v", in.Instance, in.App, err)
		return failStd(w, r, in.metrics, e)
	}
	k.Answered(plan.AnswerStatus(resp.StatusCode, resp.Header.Get("Grpc-Status")), 0)
	k.OK()
	bytes = resp.ContentLength
	return writeResponse(w, r, resp)
}

// RouteH2 is the HTTP/2 engine's routing for the inbound listener of an
// app that speaks HTTP/2: always the app.
func (in *Inbound) RouteH2(string) (*plan.Cluster, string, *plan.MeshError) {
	return in.cluster.Load(), "", nil
}

// CloseIdle closes the connections to the app that carry no request.
func (in *Inbound) CloseIdle() { in.cluster.Load().Endpoints[0].CloseIdle() }

// SetServerLimit puts the app under its service's server-side rate
// limits (rateLimit.server, for all callers, and perSource, for each
// calling service; off: none): past them callers get 429 rate-limited.
// The buckets carry over while the limits stay the same.
func (in *Inbound) SetServerLimit(rl, perSource snapshot.RateLimit) error {
	c, err := in.cluster.Load().ServerLimited(rl, perSource)
	if err != nil {
		return err
	}
	in.cluster.Store(c)
	return nil
}
