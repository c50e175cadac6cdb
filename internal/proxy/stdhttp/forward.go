package stdhttp

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"

	"github.com/weftmesh/weft/internal/endpoint"
	"github.com/weftmesh/weft/internal/proxy/conn"
	"github.com/weftmesh/weft/internal/proxy/plan"
)

// NewTransport returns the pooled HTTP/1.1 client side of a hop. The
// wait for response headers is bounded by the request plan, not here.
func NewTransport() *http.Transport {
	d := &net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                  nil, // a sidecar never follows HTTP_PROXY itself
		DialContext:            countedDial(d),
		MaxIdleConns:           0,
		MaxIdleConnsPerHost:    1024,
		IdleConnTimeout:        90 * time.Second,
		ExpectContinueTimeout:  time.Second,
		DisableCompression:     true, // bytes pass through as the app sent them
		MaxResponseHeaderBytes: 1 << 20,
		WriteBufferSize:        32 << 10,
		ReadBufferSize:         32 << 10,
	}
}

// NewH2CTransport returns the HTTP/2 client side of a hop, over cleartext
// with prior knowledge: a request that arrived as HTTP/2 (gRPC among them)
// leaves as HTTP/2, so trailers, streaming in both directions and
// cancellation carry through. All streams to one peer share one
// connection, whose frames are written in batches (batchConn).
func NewH2CTransport() *http2.Transport {
	d := &net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}
	return &http2.Transport{
		AllowHTTP:          true,
		DisableCompression: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			if cl, _ := ctx.Value(connLimitKey{}).(*connLimit); cl != nil && cl.ep.TLS() != nil {
				c, err := conn.DialPeer(addr, cl.ep.TLS(), conn.ALPNMeshH2) // a peer sidecar that takes mutual TLS
				if err != nil {
					return nil, err
				}
				return newBatchConn(c), nil
			}
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return newBatchConn(c), nil
		},
		ReadIdleTimeout: 30 * time.Second,
		PingTimeout:     15 * time.Second,
	}
}

// connLimitKey carries a request's endpoint and its ConnLimit to the
// HTTP/1.1 transport's dial (withConnLimit).
type connLimitKey struct{}

type connLimit struct {
	ep  *plan.Endpoint
	lim endpoint.ConnLimit
}

// withConnLimit is r, for a try to ep over HTTP/1.1, with what its dial
// must count (ctx is the request's own, before any try's).
func withConnLimit(ctx context.Context, r *http.Request, ep *plan.Endpoint, lim endpoint.ConnLimit) *http.Request {
	return r.WithContext(context.WithValue(ctx, connLimitKey{}, &connLimit{ep: ep, lim: lim}))
}

// countedDial dials as d does, counting each connection open on its
// endpoint, and waits for one to close while the endpoint has
// circuitBreaker.maxConnections (endpoint.AcquireConn). net/http hands
// the waiting request any connection that goes idle meanwhile.
func countedDial(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		cl, _ := ctx.Value(connLimitKey{}).(*connLimit)
		if cl == nil {
			return d.DialContext(ctx, network, addr)
		}
		if err := cl.ep.AcquireConn(cl.lim); err != nil {
			return nil, err
		}
		var c net.Conn
		var err error
		if cfg := cl.ep.TLS(); cfg != nil {
			c, err = conn.DialPeer(addr, cfg, conn.ALPNMeshHTTP1) // a peer sidecar that takes mutual TLS
		} else {
			c, err = d.DialContext(ctx, network, addr)
		}
		if err != nil {
			cl.ep.ReleaseConn()
			return nil, err
		}
		return &countedConn{Conn: c, ep: cl.ep}, nil
	}
}

// countedConn gives its endpoint's count back when it closes.
type countedConn struct {
	net.Conn
	ep   *plan.Endpoint
	once sync.Once
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.ep.ReleaseConn)
	return err
}

// transportFor keeps the protocol of the request: HTTP/2 in, HTTP/2 out.
func transportFor(r *http.Request, h1, h2 http.RoundTripper) http.RoundTripper {
	if r.ProtoMajor == 2 && h2 != nil {
		return h2
	}
	return h1
}

// upgradeType returns the protocol a request or response asks to switch to.
func upgradeType(h http.Header) string {
	if !httpguts.HeaderValuesContainsToken(h["Connection"], "Upgrade") {
		return ""
	}
	return h.Get("Upgrade")
}

// prepare turns the server's request into a client request, in place (the
// handler owns r and nothing else reads it afterwards). The target host is
// set per attempt in r.URL.Host.
func prepare(r *http.Request) {
	up := upgradeType(r.Header)
	keepTE := httpguts.HeaderValuesContainsToken(r.Header["Te"], "trailers")
	plan.RemoveHopHeaders(r.Header)
	if up != "" {
		r.Header["Connection"] = []string{"Upgrade"}
		r.Header["Upgrade"] = []string{up}
	}
	if keepTE {
		r.Header["Te"] = []string{"trailers"}
	}
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		if prior := r.Header["X-Forwarded-For"]; len(prior) > 0 {
			ip = strings.Join(prior, ", ") + ", " + ip
		}
		r.Header["X-Forwarded-For"] = []string{ip}
	}
	r.URL.Scheme = "http"
	r.RequestURI = ""
	r.Close = false
}

// timeoutKey and sourceKey are plan.TimeoutHeader and SourceHeader in
// canonical form.
var (
	timeoutKey = http.CanonicalHeaderKey(plan.TimeoutHeader)
	sourceKey  = http.CanonicalHeaderKey(plan.SourceHeader)
	traceKey   = http.CanonicalHeaderKey(plan.TraceParentHeader)
)

// setSource names the calling service on r (plan.SourceHeader), in
// place of what the client sent, when c has one.
func setSource(r *http.Request, c *plan.Cluster) {
	if c.Source != "" {
		r.Header[sourceKey] = []string{c.Source}
	}
}

// passTimeout sets the try's timeout for the next hop on r
// (plan.TimeoutHeader), or removes the client's when none is passed.
func passTimeout(r *http.Request, k *plan.Call) {
	if t, pass := k.NextHopTimeout(); pass {
		r.Header[timeoutKey] = []string{string(plan.AppendTimeoutHeader(nil, t))}
	} else {
		delete(r.Header, timeoutKey)
	}
	var buf [plan.TraceParentLen]byte
	if tp := k.TraceParent(&buf); tp != nil {
		r.Header[traceKey] = []string{string(tp)} // the try's span is the next hop's parent
	}
}

// replayBody wraps a request body so that a failed attempt cannot close it
// and a retry can tell whether any of it was sent.
type replayBody struct {
	io.ReadCloser
	// read is set by the transport's body writer, which may still run
	// when the response head is in (a gRPC client stream).
	read atomic.Bool
	// keep: the body is kept, up to max bytes, to send again to a retry
	// or a hedge; kept is whole once complete is set (by the transport's
	// goroutine).
	keep     bool
	max      int64
	kept     []byte
	complete atomic.Bool
}

func (b *replayBody) Read(p []byte) (int, error) {
	if !b.read.Load() {
		b.read.Store(true)
	}
	n, err := b.ReadCloser.Read(p)
	if b.keep {
		if int64(len(b.kept)+n) > b.max {
			b.keep, b.kept = false, nil
		} else {
			b.kept = append(b.kept, p[:n]...)
			if err == io.EOF {
				b.complete.Store(true)
			}
		}
	}
	return n, err
}

// again is a fresh copy of the body for another attempt, once it is
// kept whole (nil otherwise).
func (b *replayBody) again() io.ReadCloser {
	if b == nil {
		return nil
	}
	if kept, ok := b.whole(); ok {
		return io.NopCloser(bytes.NewReader(kept))
	}
	return nil
}

// whole is the body as kept, once the client has sent all of it; false
// while it has not, or when it was too long to keep.
func (b *replayBody) whole() ([]byte, bool) {
	if b == nil {
		return nil, true
	}
	if !b.complete.Load() {
		return nil, false
	}
	return b.kept, true
}

func (b *replayBody) Close() error { return nil }

// classOf classifies an error from a round trip.
func classOf(err error) endpoint.Class {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return endpoint.ConnectFailed
	}
	var ne net.Error
	if errors.Is(err, plan.ErrHeadTimeout) || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return endpoint.Timeout
	}
	return endpoint.Reset
}

// roundTrip sends r with rt, bounding the wait for the response head by
// timeout (0: no bound), counted from when the request has been written
// in full (as http.Transport's ResponseHeaderTimeout does; a request
// still streaming its body is not bounded). When it runs out, the
// request's context is cancelled and the error wraps plan.ErrHeadTimeout.
// Once the head is in, the body may take as long as it takes.
func roundTrip(rt http.RoundTripper, r *http.Request, timeout time.Duration) (*http.Response, error) {
	if timeout <= 0 {
		return rt.RoundTrip(r)
	}
	ctx, cancel := context.WithCancelCause(r.Context())
	hc := &headClock{}
	trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) {
		hc.start(timeout, func() { cancel(plan.ErrHeadTimeout) })
	}}
	resp, err := rt.RoundTrip(r.WithContext(httptrace.WithClientTrace(ctx, trace)))
	if fired := hc.stop(); fired && err == nil {
		// The head came just as the clock ran out: its body would be
		// cut by the cancelled context, so the timeout stands.
		resp.Body.Close()
		err = plan.ErrHeadTimeout
	}
	if err != nil {
		cancel(nil)
		if errors.Is(context.Cause(ctx), plan.ErrHeadTimeout) {
			return nil, fmt.Errorf("%w within %s", plan.ErrHeadTimeout, timeout)
		}
		return nil, err
	}
	return resp, nil
}

// headClock is roundTrip's timer, started from the transport's goroutine
// once the request is written, and stopped by roundTrip.
type headClock struct {
	mu      sync.Mutex
	t       *time.Timer
	stopped bool
	fired   bool
}

func (h *headClock) start(d time.Duration, f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped || h.t != nil {
		return
	}
	h.t = time.AfterFunc(d, func() {
		h.mu.Lock()
		fire := !h.stopped
		h.fired = fire
		h.mu.Unlock()
		if fire {
			f()
		}
	})
}

// stop ends the clock and reports whether it had run out.
func (h *headClock) stop() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopped = true
	if h.t != nil {
		h.t.Stop()
	}
	return h.fired
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// writeResponse copies an upstream response to the client: headers less
// hop-by-hop ones, body streamed (flushed as it comes when its length is
// unknown), then trailers. It returns the status sent (and the
// grpc-status of a gRPC answer).
func writeResponse(w http.ResponseWriter, r *http.Request, resp *http.Response) plan.Result {
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return plan.Result{Status: switchProtocols(w, r, resp)}
	}
	defer resp.Body.Close()
	plan.RemoveHopHeaders(resp.Header)
	dst := w.Header()
	for k, v := range resp.Header {
		dst[k] = v
	}
	if len(resp.Trailer) > 0 {
		names := make([]string, 0, len(resp.Trailer))
		for k := range resp.Trailer {
			names = append(names, k)
		}
		dst["Trailer"] = []string{strings.Join(names, ", ")}
	}
	w.WriteHeader(resp.StatusCode)

	flush := resp.ContentLength < 0
	bp := bufPool.Get().(*[]byte)
	copyBody(w, resp.Body, *bp, flush)
	bufPool.Put(bp)

	for k, vv := range resp.Trailer {
		dst[trailerKey(k)] = vv
	}
	return plan.Result{Status: resp.StatusCode, GRPC: plan.GRPCOf(resp)}
}

// copyBody streams src to w. An error on either side ends the copy: the
// server then closes the client connection, which is all that can be said
// once the status line is out.
func copyBody(w http.ResponseWriter, src io.Reader, buf []byte, flush bool) {
	var fl http.Flusher
	if flush {
		fl, _ = w.(http.Flusher)
	}
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if fl != nil {
				fl.Flush()
			}
		}
		if rerr != nil {
			if rerr != io.EOF {
				panic(http.ErrAbortHandler) // cut the client off: the body is incomplete
			}
			return
		}
	}
}

// switchProtocols completes an Upgrade (WebSocket and the like): the
// client's connection is taken over and bytes flow both ways untouched.
func switchProtocols(w http.ResponseWriter, r *http.Request, resp *http.Response) int {
	back, ok := resp.Body.(io.ReadWriteCloser)
	if !ok || upgradeType(resp.Header) == "" {
		resp.Body.Close()
		http.Error(w, "upstream switched protocols without an upgradable body", http.StatusBadGateway)
		return http.StatusBadGateway
	}
	defer back.Close()
	hj, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, "cannot take over the connection for an upgrade", http.StatusInternalServerError)
		return http.StatusInternalServerError
	}
	defer hj.Close()
	resp.Body = nil
	if err := resp.Write(brw); err != nil {
		return http.StatusSwitchingProtocols
	}
	if err := brw.Flush(); err != nil {
		return http.StatusSwitchingProtocols
	}
	conn.Pipe(hj, brw.Reader, back)
	return http.StatusSwitchingProtocols
}
