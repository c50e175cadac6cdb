package http1

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/weftmesh/weft/internal/endpoint"
	"github.com/weftmesh/weft/internal/h1"
	"github.com/weftmesh/weft/internal/proxy/conn"
	"github.com/weftmesh/weft/internal/proxy/plan"
)

// handle serves one request on the fast path, top to bottom:
//
//	CONNECT       -> tunnel
//	resolve       -> cluster of the destination, or a mesh error
//	pick, send    -> head and body to a pooled connection to an instance
//	connect fails -> eject the instance, try another (the body is unsent)
//	stale reuse   -> the pooled connection was closed by the peer: redial
//	response      -> 1xx passed on; head and body copied back; 101 pipes
//
// It reports whether the client connection can serve another request.
func (e *Engine) handle(cc *Conn) bool {
	req := &cc.req
	if req.IsMethod(http.MethodConnect) {
		e.tunnel(cc)
		return false
	}
	host, proxyForm := destinationOf(req)
	c, merr := e.resolve(req, host, proxyForm)
	if merr != nil {
		e.meshError(cc, nil, merr)
		return !hasBody(req) && !req.Close
	}
	cc.view = h1View{h: req, ip: cc.IP}
	if cc.Peer != "" {
		cc.view.peer = plan.BytesOf(cc.Peer)
	}
	cc.id, cc.newID = req.Get(plan.RequestIDHeader), nil
	if !plan.ValidRequestID(cc.id) { // none, empty or too long: this hop names it (writeRequestHead drops the client's)
		cc.id = plan.NewRequestID(&cc.idBuf)
		cc.newID = cc.id
	}
	var routed plan.Routed
	called := c // (c becomes the route's backend)
	if c.Routed() {
		if routed, merr = c.Route(&cc.view); merr != nil {
			e.meshError(cc, c, merr)
			now := time.Now()
			c.Metrics().Answered(plan.Result{Status: merr.Status, Source: plan.StringOf(sourceOf(c, cc)), Route: routed.RouteName()}, cc.start, now)
			c.Record(&plan.Visit{Start: cc.start, End: now, Status: merr.Status, Err: merr, Rule: routed.RuleRef(), Bytes: -1},
				cc.id, req.Method(), originForm(req.Target()), nil)
			return !hasBody(req) && !req.Close
		}
		c = routed.Cluster
		if routed.Delay > 0 {
			time.Sleep(routed.Delay) // a Fault's delay (this connection's goroutine waits)
		}
	}
	m := c.Metrics()
	m.Begin()
	ex := exchange{e: e, cc: cc, c: c, k: &cc.call, sentAt: cc.start, edits: routed.Request, respEdits: routed.Response, routed: routed, bytes: -1}
	ex.k.Init(c, &cc.view, cc.start)
	ex.k.SetRoute(routed.RouteName(), routed.RulePath())
	defer func() {
		now := time.Now() // one clock read for the metrics, the attempt and the record
		src := sourceOf(called, cc)
		res := plan.Result{Status: ex.status, Source: plan.StringOf(src), Route: ex.routed.RouteName()}
		m.DoneAt(res, cc.start, now)
		ex.k.Finish(now)
		ex.k.End(res, now)
		called.Record(&plan.Visit{Start: cc.start, End: now, Status: ex.status, Call: ex.k, Rule: ex.routed.RuleRef(), Bytes: ex.bytes},
			cc.id, req.Method(), originForm(req.Target()), src)
		ex.k.Clear() // holds no endpoint or error past the request
		if ex.kept != nil {
			putKept(ex.kept)
		}
	}()
	if ex.routed.Mirrors() && !ex.mirror() {
		return false // the client went away while its body was read
	}
	return ex.run()
}

// exchange is one request's trip through the mesh.
type exchange struct {
	e         *Engine
	cc        *Conn
	c         *plan.Cluster
	k         *plan.Call // the plan: pick, attempts, retry decision (the connection's, reused)
	status    int        // recorded in metrics
	committed bool       // the request may have reached an upstream or its body is spent: no other instance may be tried
	// sentAt is when the current attempt's request had gone in full:
	// the response head timeout counts from there.
	sentAt time.Time
	// kept is the request body, read whole from the client to be sent
	// again to another instance (plan.Call.KeepBody), or for a mirror;
	// nil: streamed. resend: the plan was told (Kept), so a try may send
	// it again.
	kept   *[]byte
	resend bool
	// edits and respEdits are the route rule's header modifiers for the
	// request head and the final response head (nil: none).
	edits, respEdits *plan.HeaderEdits
	// routed is the route stage's decision, for the mirrors (mirror.go).
	routed plan.Routed
	// bytes is the response body's declared length (-1: not known).
	bytes int64
}

// run drives the plan: attempt after attempt, as long as the last
// failure allows another instance.
func (ex *exchange) run() bool {
	cc, c, req := ex.cc, ex.c, &ex.cc.req
	ex.status = plan.StatusAborted
	for ep := ex.k.Next(); ep != nil; ep = ex.k.Next() {
		keep, done := ex.try(ep)
		if done {
			return keep
		}
		// Once committed, the body is gone: no other instance can have it.
		if !ex.k.Again(ex.committed) {
			break
		}
		if d := ex.k.Backoff(); d > 0 {
			time.Sleep(d) // the retry's jittered backoff (this connection's goroutine waits)
		}
	}
	last := ex.k.Result()
	ex.status = last.Status
	ex.e.meshError(cc, c, last)
	return !ex.committed && !hasBody(req) && !req.Close
}

// try sends the request to one endpoint, as the plan's current attempt.
// done means a response (or the client's departure) ended the exchange;
// otherwise the attempt failed (ex.k holds why) and ex.committed says
// whether the request may still go elsewhere.
func (ex *exchange) try(ep *plan.Endpoint) (keep, done bool) {
	if ex.k.Attempts() > 1 {
		ex.sentAt = time.Now() // a retry: its own timeout
	}
	for fresh := false; ; fresh = true {
		uc, derr := h1Pool(ep).get(fresh, ex.cc.start, ex.k.ConnLimit())
		if errors.Is(derr, endpoint.ErrConnLimit) {
			ex.k.Overflowed(derr)
			return false, false
		}
		if derr != nil {
			ex.k.Failed(endpoint.ConnectFailed, derr)
			return false, false
		}
		keep, done, stale := ex.send(ep, uc)
		if stale && !fresh {
			continue // the pooled connection was dead: one more try on a new one
		}
		return keep, done
	}
}

// send writes the request on uc and relays the response. stale reports a
// reused connection that failed before anything was sent or received.
func (ex *exchange) send(ep *plan.Endpoint, uc *upConn) (keep, done, stale bool) {
	cc, req := ex.cc, &ex.cc.req
	var writes uint64
	if uc.sock != nil {
		writes = uc.sock.Writes
	}
	t, pass := ex.k.NextHopTimeout()
	writeRequestHead(uc.bw, req, cc.IP, t, pass, ex.source(), ex.edits, ex.routed.Rewrite, ownFields{cc.newID, ex.k.TraceParent(&cc.tpBuf)})
	if !req.ExpectContinue {
		if err := ex.sendBody(uc); err != nil {
			return ex.sendFailed(uc, err)
		}
	}
	if d, ok := ex.k.HedgeAfter((!hasBody(req) || ex.resend) && !req.ExpectContinue); ok {
		return ex.race(ep, uc, d)
	}
	// The whole request still in the buffer: the upstream has had nothing
	// to answer yet (a large body goes out in parts, and may be answered
	// early).
	if !req.ExpectContinue && uc.sock != nil && uc.sock.Writes == writes && uc.br.Buffered() == 0 {
		return ex.awaitResponse(ep, uc)
	}
	if err := uc.bw.Flush(); err != nil {
		return ex.sendFailed(uc, err)
	}
	if req.ExpectContinue && !ex.awaitContinue(uc) {
		// No word from the upstream within a second: send the body anyway,
		// as clients do (RFC 9110 §10.1.1).
		req.ExpectContinue = false
		err := ex.sendBody(uc)
		if err == nil {
			err = uc.bw.Flush()
		}
		if err != nil {
			return ex.sendFailed(uc, err)
		}
	}
	ex.responseDeadline(uc)
	return ex.receive(ep, uc, nil)
}

// responseDeadline bounds the wait for the response head by the timeout,
// if there is one, counted from when the request had gone in full.
func (ex *exchange) responseDeadline(uc *upConn) {
	if t := ex.k.TryTimeout(); t > 0 {
		uc.dl.Set(uc.Conn, ex.sentAt, t, t/16)
	} else {
		uc.dl.Clear(uc.Conn)
	}
}

// awaitResponse flushes the request and waits for the response's first
// bytes without the read that would fail (sockIO.awaitAfter): the
// connection is idle, so the upstream has nothing to say before it.
//
// A close the upstream sent while the connection idled in the pool would
// not wake that wait if the upstream kept its socket open (a half-close),
// so it lasts at most ProbeAfter (or half the response timeout): then a
// look at the socket finds such a close, and ordinary reads take over for
// the rest of the timeout.
func (ex *exchange) awaitResponse(ep *plan.Endpoint, uc *upConn) (keep, done, stale bool) {
	now := time.Now() // (not the request's start: a retry comes after earlier waits)
	wait := ProbeAfter
	if t := ex.k.TryTimeout(); t > 0 {
		wait = min(wait, t/2, ex.sentAt.Add(t).Sub(now)) // half of it is left for the ordinary reads
	}
	uc.dl.Set(uc.Conn, now, wait, wait/16)
	ex.cc.resp.Reset()
	sendErr, readErr := uc.sock.AwaitAfter(uc.br, uc.bw)
	if sendErr != nil {
		return ex.sendFailed(uc, sendErr)
	}
	if readErr != nil && errors.Is(readErr, os.ErrDeadlineExceeded) {
		// Nothing woke the wait. An end of stream that came before it
		// would not have: look at the socket now.
		switch err := uc.sock.PeekNow(uc.br); {
		case err == nil: // bytes, just now
			readErr = nil
		case err != conn.ErrWouldBlock: // the peer's end of stream, or a reset: a stale connection
			readErr = err
		default: // no answer yet: read on, the ordinary way
			readErr = nil
		}
		if readErr == nil {
			ex.responseDeadline(uc)
		}
	} else if readErr == nil && !headBuffered(uc.br) {
		ex.responseDeadline(uc) // the rest of the head may take longer than the wait
	}
	return ex.receive(ep, uc, readErr)
}

// receive reads the response head (after readErr, the error of a read
// already made) and relays the response.
func (ex *exchange) receive(ep *plan.Endpoint, uc *upConn, readErr error) (keep, done, stale bool) {
	cc, req, resp := ex.cc, &ex.cc.req, &ex.cc.resp
	for {
		err := readErr
		readErr = nil
		if err == nil {
			err = h1.ReadResponseHead(uc.br, resp)
		}
		if err != nil {
			uc.close()
			if !ex.committed && uc.reused && resp.Status == 0 && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err)) {
				return false, false, true
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				ex.committed = true
				ex.k.Failed(endpoint.Timeout, fmt.Errorf("%w within %s", plan.ErrHeadTimeout, ex.k.TryTimeout()))
				return false, false, false
			}
			ex.k.Failed(endpoint.Reset, err) // the plan decides whether a replayable request goes elsewhere
			return false, false, false
		}
		if resp.Status == http.StatusSwitchingProtocols && len(req.Upgrade()) == 0 {
			// Only an upgrade request can be answered with 101 (RFC 9110
			// §15.2.2); what follows it is no HTTP response.
			uc.close()
			ex.committed = true
			ex.k.Failed(endpoint.Reset, errors.New("101 Switching Protocols to a request that asked for no upgrade"))
			return false, false, false
		}
		if resp.Status >= 200 || resp.Status == http.StatusSwitchingProtocols {
			break
		}
		// 1xx: pass it on. 100 Continue releases the body held back.
		writeResponseHead(cc.BW, resp, req, false, nil)
		if err := cc.BW.Flush(); err != nil {
			uc.close()
			ex.status = plan.StatusClientGone
			ex.k.Cancelled()
			return false, true, false
		}
		if resp.Status == http.StatusContinue && req.ExpectContinue {
			req.ExpectContinue = false
			err := ex.sendBody(uc)
			if err == nil {
				err = uc.bw.Flush()
			}
			if err != nil {
				return ex.sendFailed(uc, err)
			}
		}
		ex.responseDeadline(uc) // the final response: the whole timeout, not the first wait's
	}
	if !bodyBuffered(resp, req, uc.br) {
		uc.dl.Clear(uc.Conn) // the body may stream for longer than the timeout
	}
	if peerCouldNotConnectHead(resp) && ex.k.PastPeer(ex.committed || hasBody(req)) {
		// The peer sidecar could not reach its app: the app never saw
		// this request, so another instance may take it.
		ex.discardResponse(uc, ep)
		ex.k.Failed(endpoint.ConnectFailed, plan.ErrPeerCouldNotConnect)
		return false, false, false
	}
	if resp.Status >= 500 || resp.Status == http.StatusTooManyRequests {
		st := endpoint.HTTPStatus(resp.Status)
		if ex.k.RetryStatus(st, ex.committed || hasBody(req)) {
			// An answer the service's policy retries, to a request that
			// can go elsewhere: dropped, and another instance asked.
			ex.discardResponse(uc, ep)
			return false, false, false
		}
		ex.k.Answered(st, plan.RetryAfter(string(resp.Get("Retry-After"))))
	}
	ex.k.OKLater()
	return ex.relay(uc, ep)
}

// sendBody copies the request body, if any, to the upstream.
func (ex *exchange) sendBody(uc *upConn) error {
	req := &ex.cc.req
	var err error
	switch {
	case req.Chunked:
		ex.committed = true
		err = h1.CopyChunked(uc.bw, ex.cc.BR)
	case req.ContentLength > 0 && ex.kept != nil:
		ex.committed = ex.committed || !ex.resend // (kept for a mirror only: sent once)
		if _, werr := uc.bw.Write(*ex.kept); werr != nil {
			err = &h1.WriteError{Err: werr}
		}
	case req.ContentLength > 0 && req.ContentLength <= ex.k.KeepBody():
		// Kept whole, so another instance can have it too (a retry).
		ex.kept = getKept(int(req.ContentLength))
		if _, rerr := io.ReadFull(ex.cc.BR, *ex.kept); rerr != nil {
			ex.committed = true
			err = rerr
			break
		}
		ex.k.Kept()
		ex.resend = true
		if _, werr := uc.bw.Write(*ex.kept); werr != nil {
			err = &h1.WriteError{Err: werr}
		}
	case req.ContentLength > 0:
		ex.committed = true
		err = h1.CopyFixed(uc.bw, ex.cc.BR, req.ContentLength)
	default:
		return nil
	}
	if err != nil && !isWriteError(err) {
		ex.status = plan.StatusClientGone // reading from the client failed
	}
	ex.sentAt = time.Now() // a body may take its time: the head timeout starts after it
	return err
}

// sendFailed handles an error while sending the request.
func (ex *exchange) sendFailed(uc *upConn, err error) (keep, done, stale bool) {
	uc.close()
	if ex.status == plan.StatusClientGone {
		ex.k.Cancelled()
		return false, true, false
	}
	if !ex.committed && uc.reused {
		return false, false, true
	}
	ex.k.Failed(endpoint.Reset, err)
	return false, false, false
}

// relay copies the response head and body to the client and returns the
// upstream connection to its pool when it can serve another request.
func (ex *exchange) relay(uc *upConn, ep *plan.Endpoint) (keep, done, stale bool) {
	cc, req, resp := ex.cc, &ex.cc.req, &ex.cc.resp
	ex.status = resp.Status
	if resp.Status == http.StatusSwitchingProtocols {
		writeResponseHead(cc.BW, resp, req, false, ex.respEdits)
		if cc.BW.Flush() == nil {
			conn.Pipe(cc.Conn, cc.BR, &conn.Buffered{Conn: uc.Conn, R: uc.br})
		}
		uc.close()
		return false, true, false
	}
	bodyless := req.IsMethod(http.MethodHead) || resp.Status == http.StatusNoContent || resp.Status == http.StatusNotModified
	untilEOF := !bodyless && !resp.Chunked && resp.ContentLength < 0
	dechunk := resp.Chunked && req.Minor == 0
	// The client never got 100 Continue: whether its body follows is unknown.
	bodyPending := req.ExpectContinue && hasBody(req)
	keepClient := !req.Close && !untilEOF && !dechunk && !bodyPending
	writeResponseHead(cc.BW, resp, req, !keepClient, ex.respEdits)
	ex.bytes = resp.ContentLength
	if bodyless {
		ex.bytes = 0
	}

	var err error
	switch {
	case bodyless:
	case dechunk:
		err = h1.DechunkTo(cc.BW, uc.br)
	case resp.Chunked:
		err = h1.CopyChunked(cc.BW, uc.br)
	case resp.ContentLength > 0:
		err = h1.CopyFixed(cc.BW, uc.br, resp.ContentLength)
	case untilEOF:
		err = h1.CopyUntilEOF(cc.BW, uc.br)
	}
	if err != nil {
		// The status line is out: closing both sides is all that is left.
		uc.close()
		if isWriteError(err) {
			ex.status = plan.StatusClientGone
		} else {
			ex.status = plan.StatusAborted
		}
		return false, true, false
	}
	if resp.Close || untilEOF || bodyPending {
		uc.close()
	} else {
		h1Pool(ep).put(uc, ex.cc.start)
	}
	if err := cc.BW.Flush(); err != nil {
		ex.status = plan.StatusClientGone
		return false, true, false
	}
	return keepClient, true, false
}

// awaitContinue waits up to a second for the upstream to start its answer
// to a request that expects 100 Continue. It consumes nothing.
func (ex *exchange) awaitContinue(uc *upConn) bool {
	uc.dl.Set(uc.Conn, time.Now(), time.Second, 0)
	_, err := uc.br.Peek(1)
	uc.dl.Clear(uc.Conn)
	return err == nil
}

// discardResponse reads a small error response off uc so it can be reused.
func (ex *exchange) discardResponse(uc *upConn, ep *plan.Endpoint) {
	resp := &ex.cc.resp
	if resp.ContentLength >= 0 && resp.ContentLength < 64<<10 && !resp.Close {
		if _, err := uc.br.Discard(int(resp.ContentLength)); err == nil {
			h1Pool(ep).put(uc, ex.cc.start)
			return
		}
	}
	uc.close()
}

// tunnel answers CONNECT host:port: to an instance of the mesh service
// the host names (connection-level balancing, as TCP services get), or to
// the host itself for egress. Bytes are then piped both ways.
func (e *Engine) tunnel(cc *Conn) {
	target := cc.req.Target()
	if !e.connect || e.tcp == nil {
		e.meshError(cc, nil, &plan.MeshError{Status: http.StatusMethodNotAllowed, Reason: plan.ReasonBadRequest,
			Message: "CONNECT is not accepted on this listener"})
		return
	}
	if _, _, err := net.SplitHostPort(string(target)); err != nil {
		e.meshError(cc, nil, &plan.MeshError{Status: http.StatusBadRequest, Reason: plan.ReasonBadRequest, Service: string(target),
			Message: fmt.Sprintf("CONNECT target %q is not host:port", target)})
		return
	}
	c, merr := e.resolve(&cc.req, target, true)
	if merr != nil {
		e.meshError(cc, nil, merr)
		return
	}
	start := time.Now()
	up, ep, merr := e.tcp.Dial(c)
	if merr != nil {
		e.meshError(cc, c, merr)
		c.RecordConn(plan.Conn{Start: start, End: time.Now(), Err: merr, Source: cc.Conn.RemoteAddr(), Tunnel: true})
		return
	}
	defer ep.ReleaseConn()
	defer up.Close()
	e.metrics.TunnelOpened()
	cc.BW.WriteString("HTTP/1.1 200 Connection Established\r\n\r\n")
	if cc.BW.Flush() != nil {
		return
	}
	m := c.Metrics().TCP()
	m.Opened()
	defer m.Closed()
	buffered, _ := cc.BR.Peek(cc.BR.Buffered())
	idle, rx, tx := e.tcp.Pipe(cc.Conn, buffered, up, m)
	if idle {
		m.IdleTimeout()
	}
	c.RecordConn(plan.Conn{Start: start, End: time.Now(), Endpoint: ep, Received: rx, Sent: tx, Idle: idle, Source: cc.Conn.RemoteAddr(), Tunnel: true})
}

// meshError answers with an error the mesh made. The connection closes
// after it when the request body was not read.
func (e *Engine) meshError(cc *Conn, c *plan.Cluster, merr *plan.MeshError) {
	if c != nil {
		c.Metrics().MeshError(merr.Reason)
	}
	closing := hasBody(&cc.req) || cc.req.Close
	merr.WriteH1(cc.BW, closing)
	cc.BW.Flush()
}

// source is the calling service the next hop is told (SourceHeader):
// this sidecar's own outbound; inbound, the peer its certificate proves
// ("": the caller's header is passed on as it came).
func (ex *exchange) source() string {
	if ex.c.Source != "" {
		return ex.c.Source
	}
	return ex.cc.Peer
}

// sourceOf is the calling service of an inbound request, as the
// request's view gives it (over mutual TLS, the peer its certificate
// proves); nil outbound, where the caller is this sidecar's service.
func sourceOf(c *plan.Cluster, cc *Conn) []byte {
	if c.Source != "" {
		return nil
	}
	return cc.view.Header(plan.SourceHeader)
}

// destinationOf returns the authority the request names and whether it
// used the absolute (proxy) form.
func destinationOf(req *h1.Head) (host []byte, proxyForm bool) {
	t := req.Target()
	if len(t) > 7 && equalFoldPrefix(t, "http://") {
		rest := t[7:]
		if i := bytes.IndexAny(rest, "/?"); i >= 0 {
			rest = rest[:i]
		}
		return rest, true
	}
	return req.Host(), false
}

// originForm is the request target without scheme and authority.
func originForm(t []byte) []byte {
	if len(t) > 7 && equalFoldPrefix(t, "http://") {
		rest := t[7:]
		i := bytes.IndexAny(rest, "/?")
		if i < 0 {
			return []byte("/")
		}
		if rest[i] == '?' {
			return append([]byte("/"), rest[i:]...)
		}
		return rest[i:]
	}
	return t
}

func equalFoldPrefix(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && bytes.EqualFold(b[:len(prefix)], []byte(prefix))
}

func hasBody(req *h1.Head) bool { return req.Chunked || req.ContentLength > 0 }

// replayableHead: a safe method without a body.
func replayableHead(req *h1.Head) bool {
	if hasBody(req) {
		return false
	}
	switch string(req.Method()) {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	return false
}

func peerCouldNotConnectHead(resp *h1.Head) bool {
	return resp.Status == http.StatusBadGateway && bytes.Equal(resp.Get(plan.HeaderError), []byte(plan.ReasonConnectFailed))
}

// isReset: the connection broke (not a timeout).
func isReset(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && !oe.Timeout()
}

func isWriteError(err error) bool {
	var we *h1.WriteError
	return errors.As(err, &we)
}

// bodyBuffered reports whether the response body is already in the
// buffer, so no read can block on it (and a stale deadline cannot fire).
func bodyBuffered(resp, req *h1.Head, br *bufio.Reader) bool {
	if req.IsMethod(http.MethodHead) || resp.Status == http.StatusNoContent || resp.Status == http.StatusNotModified {
		return true
	}
	return !resp.Chunked && resp.ContentLength >= 0 && int64(br.Buffered()) >= resp.ContentLength
}
