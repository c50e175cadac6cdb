package stdhttp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/internal/endpoint"
	"github.com/weftmesh/weft/internal/h1"
	"github.com/weftmesh/weft/internal/proxy/plan"
)

// Outbound is the handler on the sidecar's outbound listener, where the
// local app sends its calls. Read it top to bottom:
//
//	CONNECT            -> tunnel (egress)
//	destination        -> proxy form (http://svc/...) or reverse form (Host: svc)
//	not a mesh service -> egress in proxy form, unknown-service otherwise
//	plan (call)        -> the balancer picks a ready, non-ejected instance
//	send               -> pooled connection to the peer's inbound, the wait
//	                      for the response head bounded by the plan's timeout
//	connect failed     -> eject the instance, try another (body not yet sent)
//	connection broken  -> for GET/HEAD/OPTIONS without a body, try another
//	respond            -> stream the answer back, record metrics
type Outbound struct {
	Table     *plan.Table
	Transport http.RoundTripper
	// H2 carries requests that arrived as HTTP/2 (nil: they go as HTTP/1.1).
	H2 http.RoundTripper
	// Egress sends requests for hosts outside the mesh.
	Egress  http.RoundTripper
	Metrics *plan.Metrics
	Log     *slog.Logger
	// MaxMirrors bounds the mirrored requests in flight at once (0:
	// DefaultMaxMirrors); set it before the first request.
	MaxMirrors int

	egressMetrics  *plan.ServiceMetrics
	egressClusters sync.Map // host:port -> *plan.Cluster
	egressCount    atomic.Int32
	mirrors        mirrors // mirrored requests in flight (mirror.go)
}

// NewOutbound wires an Outbound.
func NewOutbound(t *plan.Table, transport, egress http.RoundTripper, m *plan.Metrics, log *slog.Logger) *Outbound {
	o := &Outbound{Table: t, Transport: transport, Egress: egress, Metrics: m, Log: log}
	if m != nil {
		o.egressMetrics = m.ForService("egress", "egress")
	}
	return o
}

func (o *Outbound) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect {
		// HTTP/1.1 CONNECT is the fast path's (http1, Engine.tunnel); a stream of
		// an HTTP/2 connection cannot be taken over as a byte pipe.
		o.fail(w, r, nil, &plan.MeshError{Status: http.StatusMethodNotAllowed, Reason: plan.ReasonBadRequest, Service: r.Host,
			Message: "CONNECT is served on HTTP/1.1 connections to this listener, not over HTTP/2"})
		return
	}
	host, proxyForm := destination(r)
	cluster, merr := o.lookup([]byte(host), proxyForm)
	if merr != nil {
		o.fail(w, r, nil, merr)
		return
	}
	rec := &record{called: cluster, id: requestID(r), method: r.Method, target: originTarget(r.RequestURI)}
	var routed plan.Routed
	if cluster != nil && cluster.Routed() {
		if routed, merr = cluster.Route(&stdView{r}); merr != nil {
			start := time.Now()
			res := o.fail(w, r, cluster.Metrics(), merr)
			res.Route = routed.RouteName()
			now := time.Now()
			cluster.Metrics().Answered(res, start, now)
			cluster.RecordString(&plan.Visit{Start: start, End: now, Status: merr.Status, Err: merr, Rule: routed.RuleRef(), Bytes: -1},
				rec.id, rec.method, rec.target, "")
			return
		}
		rec.rule, rec.route, rec.path = routed.RuleRef(), routed.RouteName(), routed.RulePath()
		if routed.Delay > 0 && !pause(r, routed.Delay) {
			return // a Fault's delay, and the client left meanwhile
		}
		cluster = routed.Cluster
		if routed.Mirrors() && upgradeType(r.Header) == "" {
			mr := routed // (its own variable: only a mirrored request allocates it)
			if tee := mirror(r, &mr); tee != nil {
				defer tee.finish(plan.MirrorIncomplete) // (the body was read to its end: sent already)
			}
		}
		routed.Request.Apply(r.Header)
		if err := routed.Rewrite.ApplyTo(r); err != nil {
			start := time.Now()
			res := o.fail(w, r, cluster.Metrics(), &plan.MeshError{Status: http.StatusInternalServerError, Reason: plan.ReasonInvalidFilter,
				Service: cluster.Service, Message: err.Error()})
			res.Route = routed.RouteName()
			cluster.Metrics().Answered(res, start, time.Now())
			return
		}
	}
	m := o.egressMetrics
	if cluster != nil {
		m = cluster.Metrics()
	}
	start := time.Now()
	m.Begin()
	// plan.StatusAborted stays only if the response is cut off mid-body (a panic
	// with http.ErrAbortHandler); the deferred record still runs.
	res := plan.Result{Status: plan.StatusAborted}
	defer func() {
		res.Route = routed.RouteName()
		m.Done(res, start)
	}()
	if cluster == nil {
		res = o.egress(w, r, host, start)
		return
	}
	res = o.route(w, r, cluster, start, routed.Response, rec)
}

// record is what Record keeps of a request (plan.Cluster.Record): the
// service called, the rule that decided, and the request's id, method
// and target as the client sent them.
type record struct {
	called                   *plan.Cluster
	id, method, target, rule string
	route, path              string // the rule's route and path, for spans
}

// originTarget is a request target without its scheme and authority
// (the proxy form's "http://svc/items" is "/items").
func originTarget(t string) string {
	rest, ok := strings.CutPrefix(t, "http://")
	if !ok {
		return t
	}
	if i := strings.IndexAny(rest, "/?"); i >= 0 && rest[i] == '/' {
		return rest[i:]
	} else if i >= 0 {
		return "/" + rest[i:]
	}
	return "/"
}

// requestID is r's x-request-id, set to a new one when it has none, or
// one that is empty, too long or repeated (the first hop names the
// request).
func requestID(r *http.Request) string {
	if vs := r.Header.Values(plan.RequestIDHeader); len(vs) == 1 && plan.ValidRequestID(vs[0]) {
		return vs[0]
	}
	var buf [32]byte
	id := string(plan.NewRequestID(&buf))
	r.Header.Set(plan.RequestIDHeader, id)
	return id
}

// route sends r through cluster's plan: an instance after another while
// the failures allow it, with a route rule's edits (or nil) on the
// response. It returns the status sent, and records the request when
// rec is set.
func (o *Outbound) route(w http.ResponseWriter, r *http.Request, c *plan.Cluster, start time.Time, respEdits *plan.HeaderEdits, rec *record) (res plan.Result) {
	body := wrapBody(r)
	prepare(r)
	setSource(r, c)
	r, cancel := withGRPCDeadline(r)
	defer cancel()
	ctx := r.Context()
	var k plan.Call
	k.Init(c, &stdView{r}, start)
	defer func() { k.End(res, time.Now()) }()
	bytes := int64(-1) // the response body's declared length
	if rec != nil {
		k.SetRoute(rec.route, rec.path)
		defer func() {
			rec.called.RecordString(&plan.Visit{Start: start, End: time.Now(), Status: res.Status, Call: &k, Rule: rec.rule, Bytes: bytes},
				rec.id, rec.method, rec.target, "")
		}()
	}
	kept := false // the body is being kept (body.keep is the transport's once it reads)
	if body != nil {
		body.max = k.KeepBody()
		body.keep, kept = body.max > 0, body.max > 0
	}
	// sent: some of the body has left and it is not kept whole.
	sent := func() bool {
		if kept {
			if _, ok := body.whole(); ok {
				k.Kept()
				return false
			}
		}
		return body != nil && body.read.Load()
	}
	for ep := k.Next(); ep != nil; ep = k.Next() {
		if k.Attempts() > 1 && kept {
			if b := body.again(); b != nil {
				r.Body = b // (the plan retries a request whose body was sent only if it is kept whole)
			}
		}
		r.URL.Host = ep.Address
		if r.ProtoMajor != 2 || o.H2 == nil { // HTTP/1.1 out: its connections are counted
			r = withConnLimit(ctx, r, ep, k.ConnLimit())
		} else if ep.TLS() != nil {
			r = withConnLimit(ctx, r, ep, endpoint.ConnLimit{}) // (for its dial's mutual TLS)
		}
		setGRPCTimeout(r)
		passTimeout(r, &k)
		var resp *http.Response
		var err error
		if d, ok := k.HedgeAfter(body == nil || kept); ok {
			var stop func()
			resp, ep, stop, err = hedgedTrip(transportFor(r, o.Transport, o.H2), r, body, &k, ep, d)
			defer stop()
		} else {
			resp, err = roundTrip(transportFor(r, o.Transport, o.H2), r, k.TryTimeout())
		}
		if errors.Is(err, endpoint.ErrConnLimit) {
			k.Overflowed(err)
			continue
		}
		if err != nil {
			if r.Context().Err() != nil && !errors.Is(err, plan.ErrHeadTimeout) {
				k.Cancelled()
				return o.deadlineOrGone(w, r, c, ep)
			}
			k.Failed(classOf(err), err)
			if !k.Again(sent()) || !pause(r, k.Backoff()) {
				break
			}
			continue
		}
		if peerCouldNotConnect(resp) && k.PastPeer(sent()) {
			// The peer sidecar could not reach its app: the app never saw
			// this request, so another instance may take it.
			resp.Body.Close()
			k.Failed(endpoint.ConnectFailed, plan.ErrPeerCouldNotConnect)
			continue
		}
		st := plan.AnswerStatus(resp.StatusCode, resp.Header.Get("Grpc-Status"))
		if k.RetryStatus(st, sent()) {
			resp.Body.Close()
			if !pause(r, k.Backoff()) {
				break
			}
			continue
		}
		k.Answered(st, plan.RetryAfter(resp.Header.Get("Retry-After")))
		k.OK()
		respEdits.Apply(resp.Header)
		bytes = resp.ContentLength
		return writeResponse(w, r, resp)
	}
	return o.fail(w, r, c.Metrics(), k.Result())
}

// egress passes a request for a host outside the mesh straight through.
func (o *Outbound) egress(w http.ResponseWriter, r *http.Request, host string, start time.Time) plan.Result {
	prepare(r)
	r.URL.Host = host
	resp, err := roundTrip(o.Egress, r, o.Table.Policy().Timeout)
	if err != nil {
		if r.Context().Err() != nil && !errors.Is(err, plan.ErrHeadTimeout) {
			return plan.Result{Status: plan.StatusClientGone}
		}
		e := plan.UpstreamError(host, nil, classOf(err), fmt.Errorf("egress to %s: %w", host, err))
		return o.fail(w, r, o.egressMetrics, e)
	}
	return writeResponse(w, r, resp)
}

// fail answers with a mesh error and returns its status.
func (o *Outbound) fail(w http.ResponseWriter, r *http.Request, m *plan.ServiceMetrics, e *plan.MeshError) plan.Result {
	if o.Log.Enabled(context.Background(), slog.LevelDebug) {
		o.Log.Debug("mesh error", "reason", e.Reason, "service", e.Service, "instance", e.Instance, "msg", e.Message)
	}
	return failStd(w, r, m, e)
}

// failStd records a mesh error and writes it through net/http (for a
// gRPC call, as a gRPC status).
func failStd(w http.ResponseWriter, r *http.Request, m *plan.ServiceMetrics, e *plan.MeshError) plan.Result {
	m.MeshError(e.Reason)
	if r != nil && isGRPC(r) {
		return plan.Result{Status: e.WriteStd(w, true), GRPC: plan.GRPCLabel(e.GRPCCode())}
	}
	return plan.Result{Status: e.WriteStd(w, false)}
}

// wrapBody guards the request body for retries; nil when there is none.
func wrapBody(r *http.Request) *replayBody {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		// No body (the HTTP/2 server gives every request one, empty
		// when the stream ended with the head): the request can be
		// replayed, and the transport sends none.
		r.Body = http.NoBody
		return nil
	}
	b := &replayBody{ReadCloser: r.Body}
	r.Body = b
	return b
}

func peerCouldNotConnect(resp *http.Response) bool {
	return resp.StatusCode == http.StatusBadGateway && resp.Header.Get(plan.HeaderError) == plan.ReasonConnectFailed
}

// destination returns the host the app asked for and whether it used the
// proxy form (absolute URL, as with HTTP_PROXY) rather than the reverse form.
func destination(r *http.Request) (host string, proxyForm bool) {
	if r.URL.Host != "" {
		return r.URL.Host, true
	}
	return r.Host, false
}

// serviceName is serviceNameBytes for a string.
func serviceName(host string) string { return string(serviceNameBytes([]byte(host))) }

// Resolve is the fast path's routing decision for the outbound listener:
// the cluster of the mesh service the request names; in proxy form, a host
// outside the mesh is egress; in reverse form it is unknown-service.
func (o *Outbound) Resolve(req *h1.Head, host []byte, proxyForm bool) (*plan.Cluster, *plan.MeshError) {
	c, merr := o.lookup(host, proxyForm)
	if c == nil && merr == nil {
		c = o.egressCluster(string(host))
	}
	return c, merr
}

// lookup finds the mesh service a host names. Neither a cluster nor an
// error means egress (proxy form only); in reverse form an unknown name is
// unknown-service.
func (o *Outbound) lookup(host []byte, proxyForm bool) (*plan.Cluster, *plan.MeshError) {
	name := serviceNameBytes(host)
	if c := o.Table.LookupBytes(name); c != nil {
		return c, nil
	}
	if proxyForm {
		return nil, nil
	}
	return nil, &plan.MeshError{Status: http.StatusNotFound, Reason: plan.ReasonUnknownService, Service: string(name),
		Message: fmt.Sprintf("no mesh service named %q; call http://<service>/ through this proxy, or set Host: <service>", name)}
}

// ResolveSNI is the outbound listener's routing for TLS passed through:
// the mesh service the server name names, or the host itself on port 443.
func (o *Outbound) ResolveSNI(name string) (*plan.Cluster, *plan.MeshError) {
	host := []byte(net.JoinHostPort(name, "443"))
	return o.Resolve(nil, host, true)
}

// egressCluster returns a one-endpoint cluster for a host outside the
// mesh, cached so its connections are pooled.
func (o *Outbound) egressCluster(host string) *plan.Cluster {
	if _, _, err := net.SplitHostPort(host); err != nil {
		host = net.JoinHostPort(strings.Trim(host, "[]"), "80")
	}
	if c, ok := o.egressClusters.Load(host); ok {
		return c.(*plan.Cluster)
	}
	c := plan.NewCluster(host, []*plan.Endpoint{endpoint.New(host, "egress:"+host, host, nil)}, o.Table.Policy().Timeout, o.egressMetrics)
	if o.egressCount.Add(1) <= maxEgressClusters {
		o.egressClusters.Store(host, c)
	}
	return c
}

// maxEgressClusters bounds the egress hosts whose connections are pooled.
const maxEgressClusters = 1024

// serviceNameBytes maps catalog, catalog:8080, Catalog. to catalog,
// allocating only when it must lower-case.
func serviceNameBytes(host []byte) []byte {
	if i := bytes.LastIndexByte(host, ':'); i >= 0 && bytes.IndexByte(host, ']') < i {
		host = host[:i]
	}
	host = bytes.TrimSuffix(host, []byte("."))
	for _, c := range host {
		if 'A' <= c && c <= 'Z' {
			return bytes.ToLower(host)
		}
	}
	return host
}

// deadlineOrGone ends a request whose context ended: its grpc-timeout ran
// out here (the caller still waits for a gRPC status), or its client left.
func (o *Outbound) deadlineOrGone(w http.ResponseWriter, r *http.Request, c *plan.Cluster, ep *plan.Endpoint) plan.Result {
	if isGRPC(r) && r.Context().Err() == context.DeadlineExceeded {
		return failStd(w, r, c.Metrics(), &plan.MeshError{Status: http.StatusGatewayTimeout, Reason: plan.ReasonUpstreamTimeout,
			Service: c.Service, Instance: ep.Instance,
			Message: fmt.Sprintf("grpc-timeout ran out waiting for %s at %s", ep.Instance, ep.Address)})
	}
	return plan.Result{Status: plan.StatusClientGone}
}

// RouteH2 is the HTTP/2 engine's routing for the outbound listener: the
// mesh service :authority names (HTTP/2 has no proxy form, so no egress).
func (o *Outbound) RouteH2(authority string) (*plan.Cluster, string, *plan.MeshError) {
	c, merr := o.lookup([]byte(authority), false)
	return c, "", merr
}

// pause waits d before a retry; false if the client went away meanwhile.
func pause(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}
