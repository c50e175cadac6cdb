package http2

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/weftmesh/weft/internal/endpoint"
	"github.com/weftmesh/weft/internal/proxy/conn"
	"github.com/weftmesh/weft/internal/proxy/plan"
)

// h2Stream is one request crossing a hop of the HTTP/2 engine: a stream
// on the client's connection (front) paired with a stream on a shared
// connection to an instance (peer). Each half ends on its own: the front
// when the client has ended its side and the response has ended towards
// it, the peer when the request has ended towards it and the response has
// ended from it, or either by a reset. plan.Metrics are recorded when both
// have ended.
//
// Every field is guarded by mu. Lock order: mu, then a writer's mu.
type h2Stream struct {
	mu    sync.Mutex
	front *h2Client
	id    uint32 // on the client's connection
	peer  *h2Peer
	uid   uint32 // on the peer's connection

	cluster *plan.Cluster
	k       plan.Call      // the plan: pick, attempts, retry decision
	ep      *plan.Endpoint // of the current attempt
	m       *plan.ServiceMetrics
	start   time.Time
	req     []hpack.HeaderField // the request head as it goes to the peer
	timeout int                 // index of grpc-timeout in req, or -1
	// hopTimeout is the index of plan.TimeoutHeader in req, or -1.
	hopTimeout int
	// respEdits is the route rule's modifier of the final response head.
	respEdits *plan.HeaderEdits
	noBody    bool // the request ended with its head: it can be sent again
	isGRPC    bool
	expires   time.Time   // the grpc-timeout, if any
	headBy    time.Time   // the plan's deadline for the response head, if any (h2deadline.go)
	timer     *time.Timer // the caller's grpc-timeout, if it set one

	// under front.w.mu: the stream's place in its connection's headWait
	headDue            time.Time
	headPrev, headNext *h2Stream
	headListed         bool
	clen               int64 // declared content-length, or -1
	got                int64 // request body bytes received

	// client -> peer
	clientWin  int64 // what the client may still send on this stream
	clientOwed int64 // credit to give back to the client
	clientEnd  bool  // the client ended its side
	upWin      int64 // what may still be sent to the peer on this stream
	upPend     h2Pend
	upTrail    []hpack.HeaderField
	upEnd      bool // the request ends after upPend (and upTrail)
	upDone     bool // the request has ended towards the peer
	upSent     int64
	upBlocked  bool // waits in peer.blocked

	// peer -> client
	peerWin    int64 // what the peer may still send on this stream
	peerOwed   int64
	peerEnd    bool // the peer ended its side
	downWin    int64
	downPend   h2Pend
	downTrail  []hpack.HeaderField
	downEnd    bool
	downDone   bool // the response has ended towards the client
	downBlock  bool // waits in front.blocked
	gotFinal   bool // a final response head arrived, or the mesh answered
	headersOut bool // a final response head went to the client

	stopClient  bool // the instance reset the stream after a complete response: reset the client's once it has it all
	connecting  bool // a goroutine is opening the peer stream
	frontClosed bool
	peerClosed  bool // the peer half has ended (or was never opened and will not be)
	recorded    bool

	status   int
	grpcResp bool
	grpcCode string

	// hedging (h2hedge.go)
	hedge   h2Hedge
	keep    bool   // the body is kept to send again, to a retry or a hedge
	keepMax int64  // up to this many bytes (plan.Call.KeepBody)
	kept    []byte // the body so far, while keep

	mirror *h2Mirror // the body's copy for the route's mirrors, until it ends (h2mirror.go)

	// what Record keeps (plan.Cluster.Record): the service called, the
	// rule that decided, the route stage's own answer, and the request's
	// id, method and path as the client sent them
	called              *plan.Cluster
	rule, route         string // the rule's ref, and its route for metrics
	routePath           string // the rule's path, for spans
	routeErr            *plan.MeshError
	reqID, method, path string
	source              string // the x-weft-source it came with (an inbound caller)
	bytes               int64  // the response's declared content-length (-1: none)
}

// open starts the peer half as the plan's next attempt: on a connection
// to an instance that is ready now, or, when one must be dialled, from a
// goroutine (frames that arrive meanwhile wait in upPend). Called under mu.
func (s *h2Stream) open(b *h2Batch) {
	ep := s.k.Next()
	if ep == nil {
		s.meshError(s.k.Result(), b)
		return
	}
	s.ep = ep
	if p := h2PoolOf(ep).ready(); p != nil && s.attach(p, b) {
		return
	}
	s.connecting = true
	go s.connect(ep)
}

// connect dials (or waits for a dial of) a connection to ep and attaches
// the stream to it, moving on to another instance when it cannot.
func (s *h2Stream) connect(ep *plan.Endpoint) {
	var b h2Batch
	defer b.flush()
	for {
		p, err := h2PoolOf(ep).get(ep)
		s.mu.Lock()
		if s.frontClosed || s.peerClosed {
			// The client left, or the mesh answered (a deadline) meanwhile:
			// the attempt ends cancelled, but a failed dial still counts
			// against the instance.
			s.connecting, s.peerClosed = false, true
			s.k.Cancelled()
			if err != nil {
				ep.ConnectFailed()
			}
			s.settle(&b)
			s.mu.Unlock()
			return
		}
		if err == nil {
			if s.attach(p, &b) {
				s.connecting = false
				s.mu.Unlock()
				return
			}
			s.mu.Unlock()
			continue // the connection went away meanwhile: another one
		}
		s.connecting = false
		s.k.Failed(endpoint.ConnectFailed, err)
		if !s.k.Again(false) {
			s.meshError(s.k.Result(), &b)
			s.mu.Unlock()
			return
		}
		s.open(&b)
		s.mu.Unlock()
		return
	}
}

// setSource names the calling service in the request head
// (plan.SourceHeader), in place of what the client sent, when the
// cluster has one. Called under mu, before the first attempt.
func (s *h2Stream) setSource() {
	src := s.cluster.Source
	if src == "" {
		return
	}
	set := false
	for i := range s.req {
		if s.req[i].Name == plan.SourceHeader {
			s.req[i].Value, set = src, true
		}
	}
	if !set {
		s.req = append(s.req, hpack.HeaderField{Name: plan.SourceHeader, Value: src})
	}
}

// passTrace sets the try's traceparent in req, in place of the client's,
// when the plan has one for it (plan.Call.TraceParent).
func (s *h2Stream) passTrace() {
	var buf [plan.TraceParentLen]byte
	tp := s.k.TraceParent(&buf)
	if tp == nil {
		return
	}
	for i := range s.req {
		if s.req[i].Name == plan.TraceParentHeader {
			s.req[i].Value = string(tp)
			return
		}
	}
	s.req = append(s.req, hpack.HeaderField{Name: plan.TraceParentHeader, Value: string(tp)})
}

// passTimeout sets the try's timeout for the next hop in req
// (plan.TimeoutHeader), or removes the client's when none is passed.
func (s *h2Stream) passTimeout() {
	t, pass := s.k.NextHopTimeout()
	switch {
	case pass && s.hopTimeout >= 0:
		s.req[s.hopTimeout].Value = string(plan.AppendTimeoutHeader(nil, t))
	case pass:
		s.hopTimeout = len(s.req)
		s.req = append(s.req, hpack.HeaderField{Name: plan.TimeoutHeader, Value: string(plan.AppendTimeoutHeader(nil, t))})
	case s.hopTimeout >= 0:
		s.req = slices.Delete(s.req, s.hopTimeout, s.hopTimeout+1)
		if s.timeout > s.hopTimeout {
			s.timeout--
		}
		s.hopTimeout = -1
	}
}

// attach opens the peer stream on p and sends the request head and what
// has come of the body. It reports false if p takes no more streams.
// Called under mu.
func (s *h2Stream) attach(p *h2Peer, b *h2Batch) bool {
	if s.timeout >= 0 {
		s.req[s.timeout].Value = plan.FormatGRPCTimeout(max(time.Until(s.expires), 0))
	}
	s.passTimeout()
	s.passTrace()
	p.w.mu.Lock()
	if p.nextID > 1<<31-1 && !p.closed {
		// Out of stream ids: no new streams here; the connection closes
		// when its last one ends.
		p.closed = true
		if len(p.streams) == 0 {
			p.w.closeLocked()
		}
	}
	if p.closed || p.w.err != nil || uint32(len(p.streams)) >= p.set.maxStreams {
		p.w.mu.Unlock()
		return false
	}
	s.peer, s.uid = p, p.nextID
	p.nextID += 2
	p.streams[s.uid] = s
	s.upWin = int64(p.set.initWin)
	s.peerWin = h2StreamWindow
	s.peerClosed = false
	end := s.upEnd && s.upPend.len() == 0 && s.upTrail == nil
	p.w.headers(s.uid, s.req, end)
	s.upDone = end
	p.w.mu.Unlock()
	b.add(&p.w)
	s.pushUp(b)
	if s.upDone {
		s.headClock()
	}
	return true
}

// sendUp passes request body bytes on to the peer, as far as its windows
// allow (or once its stream opens). data is the frame's, valid only until
// the next frame is read, so it is copied to the stream's buffer first.
// Called under mu.
func (s *h2Stream) sendUp(data []byte, end bool, b *h2Batch) {
	if end {
		s.upEnd = true
	}
	s.keepBody(data)
	s.upPend.add(data)
	s.pushUp(b)
}

// pushUp sends what waits for the peer, as far as its windows allow.
// Called under mu.
func (s *h2Stream) pushUp(b *h2Batch) {
	p := s.peer
	if p == nil || s.peerClosed || s.upDone {
		return
	}
	p.w.mu.Lock()
	sent := 0
	for s.upPend.len() > 0 && p.w.err == nil {
		n := int64(min(s.upPend.len(), p.w.maxFrame))
		n = min(n, s.upWin, p.sendWin)
		if p.w.backlogged() {
			n = 0
		}
		if n <= 0 {
			if (p.sendWin <= 0 || p.w.backlogged()) && s.upWin > 0 && !s.upBlocked {
				s.upBlocked = true
				p.blocked = append(p.blocked, s)
			}
			break
		}
		last := int(n) == s.upPend.len() && s.upEnd && s.upTrail == nil
		p.w.fr.WriteData(s.uid, last, s.upPend.bytes()[:n])
		if len(p.w.out) >= h2FlushAt {
			p.w.flushLocked() // a long run of DATA goes out as it gathers
		}
		s.upPend.consume(int(n))
		s.upWin -= n
		p.sendWin -= n
		sent += int(n)
		s.upDone = last
	}
	if s.upPend.len() == 0 {
		switch {
		case s.upDone:
		case s.upTrail != nil:
			p.w.headers(s.uid, s.upTrail, true)
			s.upTrail, s.upDone = nil, true
		case s.upEnd:
			p.w.fr.WriteData(s.uid, true, nil)
			s.upDone = true
		}
	}
	p.w.mu.Unlock()
	b.add(&p.w)
	s.upSent += int64(sent)
	s.clientOwed += int64(sent)
	s.creditClient(b)
	if s.upDone {
		s.headClock()
	}
}

// creditClient gives the client back the credit of what was passed on.
// Called under mu.
func (s *h2Stream) creditClient(b *h2Batch) {
	if s.clientOwed < h2StreamCredit || s.clientEnd || s.frontClosed {
		return
	}
	h := s.front
	h.w.mu.Lock()
	h.w.fr.WriteWindowUpdate(s.id, uint32(s.clientOwed))
	h.w.mu.Unlock()
	b.add(&h.w)
	s.clientWin += s.clientOwed
	s.clientOwed = 0
}

// sendDown passes response body bytes on to the client (see sendUp).
// Called under mu.
func (s *h2Stream) sendDown(data []byte, end bool, b *h2Batch) {
	if end {
		s.downEnd = true
	}
	s.downPend.add(data)
	s.pushDown(b)
}

// pushDown sends what waits for the client, as far as its windows allow.
// Called under mu.
func (s *h2Stream) pushDown(b *h2Batch) {
	if s.frontClosed || s.downDone {
		return
	}
	h := s.front
	h.w.mu.Lock()
	sent := 0
	for s.downPend.len() > 0 && h.w.err == nil {
		n := int64(min(s.downPend.len(), h.w.maxFrame))
		n = min(n, s.downWin, h.sendWin)
		if h.w.backlogged() {
			n = 0
		}
		if n <= 0 {
			if (h.sendWin <= 0 || h.w.backlogged()) && s.downWin > 0 && !s.downBlock {
				s.downBlock = true
				h.blocked = append(h.blocked, s)
			}
			break
		}
		last := int(n) == s.downPend.len() && s.downEnd && s.downTrail == nil
		h.w.fr.WriteData(s.id, last, s.downPend.bytes()[:n])
		if len(h.w.out) >= h2FlushAt {
			h.w.flushLocked() // a long run of DATA goes out as it gathers
		}
		s.downPend.consume(int(n))
		s.downWin -= n
		h.sendWin -= n
		sent += int(n)
		s.downDone = last
	}
	if s.downPend.len() == 0 {
		switch {
		case s.downDone:
		case s.downTrail != nil:
			h.w.headers(s.id, s.downTrail, true)
			s.downTrail, s.downDone = nil, true
		case s.downEnd:
			h.w.fr.WriteData(s.id, true, nil)
			s.downDone = true
		}
	}
	if s.downDone && s.clientEnd {
		// Both sides have ended: the stream leaves the connection with
		// its last frame, before any writer can flush that frame (the
		// client may open the next stream as soon as it sees it).
		s.closeFrontLocked(http2.ErrCodeNo, false)
	}
	h.w.mu.Unlock()
	b.add(&h.w)
	s.peerOwed += int64(sent)
	s.creditPeer(b)
	if s.downDone && (s.clientEnd || s.stopClient) {
		s.closeFront(http2.ErrCodeNo, !s.clientEnd, b)
	}
}

// creditPeer gives the peer back the credit of what was passed on.
// Called under mu.
func (s *h2Stream) creditPeer(b *h2Batch) {
	p := s.peer
	if s.peerOwed < h2StreamCredit || s.peerEnd || s.peerClosed || p == nil {
		return
	}
	p.w.mu.Lock()
	p.w.fr.WriteWindowUpdate(s.uid, uint32(s.peerOwed))
	p.w.mu.Unlock()
	b.add(&p.w)
	s.peerWin += s.peerOwed
	s.peerOwed = 0
}

// responseHead passes a response head (or trailers) from the peer on to
// the client. Called under mu.
func (s *h2Stream) responseHead(f *http2.MetaHeadersFrame, b *h2Batch) {
	end := f.StreamEnded()
	if s.gotFinal {
		// Trailers: they end the response.
		if !end || len(f.PseudoFields()) > 0 {
			s.peerBroke(http2.ErrCodeProtocol, "trailers without END_STREAM or with pseudo-headers", b)
			return
		}
		s.peerEnd = true
		if s.grpcResp {
			s.grpcCode = fieldValue(f.Fields, "grpc-status")
		}
		s.downTrail = responseFields(f.Fields)
		s.downEnd = true
		s.pushDown(b)
		s.settle(b)
		return
	}
	status, err := strconv.Atoi(f.PseudoValue("status"))
	if err != nil || status < 100 || status > 999 || status == http.StatusSwitchingProtocols || f.Truncated {
		s.peerBroke(http2.ErrCodeProtocol, fmt.Sprintf("invalid response head (:status %q)", f.PseudoValue("status")), b)
		return
	}
	if status < 200 {
		if end {
			s.peerBroke(http2.ErrCodeProtocol, "an interim response that ends the stream", b)
			return
		}
		s.writeDownHead(responseFields(f.Fields), false, b)
		return
	}
	s.dropHedge(endpoint.Outrun, b) // the first final head wins
	if status == http.StatusBadGateway && fieldValue(f.Fields, "x-weft-error") == plan.ReasonConnectFailed &&
		s.k.PastPeer(!s.noBody) {
		// The peer sidecar could not reach its app: the app never saw
		// this request, so another instance may take it.
		s.k.Failed(endpoint.ConnectFailed, plan.ErrPeerCouldNotConnect)
		s.closePeer(http2.ErrCodeCancel, b)
		s.reopen(b)
		return
	}
	st := plan.AnswerStatus(status, fieldValue(f.Fields, "grpc-status"))
	if s.k.RetryStatus(st, !s.noBody) {
		// An answer the service's policy retries, to a request that can
		// go elsewhere: this one is dropped, another instance asked.
		s.closePeer(http2.ErrCodeCancel, b)
		s.reopen(b)
		return
	}
	s.bytes = -1
	if n, err := strconv.ParseInt(fieldValue(f.Fields, "content-length"), 10, 64); err == nil {
		s.bytes = n // (the declared length, for the record)
	}
	var after time.Duration
	if st.Failed() { // only an instance that could not serve asks to be left alone
		after = plan.RetryAfter(fieldValue(f.Fields, "retry-after"))
	}
	s.k.Answered(st, after)
	s.k.OK()
	s.headDone()
	s.gotFinal, s.status = true, status
	s.grpcResp = strings.HasPrefix(fieldValue(f.Fields, "content-type"), "application/grpc")
	if end {
		s.peerEnd = true
		if s.grpcResp {
			s.grpcCode = fieldValue(f.Fields, "grpc-status")
		}
	}
	s.headersOut = true
	s.writeDownHead(editResponse(responseFields(f.Fields), s.respEdits), end, b)
	if end {
		s.downEnd, s.downDone = true, true
		if s.clientEnd {
			s.closeFront(0, false, b)
		}
	}
	s.settle(b)
}

// writeDownHead writes a header block to the client. Called under mu.
func (s *h2Stream) writeDownHead(fields []hpack.HeaderField, end bool, b *h2Batch) {
	if s.frontClosed {
		return
	}
	h := s.front
	h.w.mu.Lock()
	h.w.headers(s.id, fields, end)
	if end && s.clientEnd {
		s.closeFrontLocked(0, false) // with its last frame, as in pushDown
	}
	h.w.mu.Unlock()
	b.add(&h.w)
}

// reopen sends a request that no instance has seen to another one.
// Called under mu, with the peer half closed.
func (s *h2Stream) reopen(b *h2Batch) {
	s.headDone() // the next attempt's clock starts when its request has gone
	s.peer, s.uid = nil, 0
	s.peerClosed, s.peerEnd, s.upDone = false, false, false
	s.upEnd = true
	if s.keep {
		// The body, kept whole (else the plan would not retry): sent
		// again as it came. The client has ended its side, so none of
		// it is credited to the client twice.
		s.upPend.reset()
		s.upPend.add(s.kept)
	}
	if d := s.k.Backoff(); d > 0 {
		// The retry's jittered backoff: the stream waits as while a
		// connection is dialled (frames that arrive wait in upPend).
		s.connecting = true
		time.AfterFunc(d, s.afterBackoff)
		return
	}
	s.open(b)
}

// afterBackoff begins the retry once its backoff has passed, unless the
// client left or the mesh answered meanwhile.
func (s *h2Stream) afterBackoff() {
	var b h2Batch
	defer b.flush()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.connecting = false
	if s.frontClosed || s.peerClosed {
		s.peerClosed = true
		s.settle(&b)
		return
	}
	s.open(&b)
}

// meshError answers the request with an error the mesh made, if no
// response has begun; else it resets the client's stream. A gRPC call
// gets a trailers-only answer with the gRPC status of the error. Called
// under mu.
func (s *h2Stream) meshError(e *plan.MeshError, b *h2Batch) {
	s.m.MeshError(e.Reason)
	s.k.Cancelled() // an attempt still open ends with the answer (its outcome, if any, was recorded)
	s.closePeer(http2.ErrCodeCancel, b)
	if s.headersOut || s.frontClosed {
		s.status = plan.StatusAborted
		s.closeFront(http2.ErrCodeInternal, true, b)
		s.settle(b)
		return
	}
	fields, body := e.H2Parts(s.isGRPC)
	s.gotFinal, s.headersOut = true, true
	s.downPend.reset()
	s.downTrail = nil
	if s.isGRPC {
		s.status, s.grpcResp, s.grpcCode = http.StatusOK, true, e.GRPCCode()
		s.writeDownHead(fields, true, b)
		s.downEnd, s.downDone = true, true
		if s.clientEnd {
			s.closeFront(0, false, b)
		}
	} else {
		s.status, s.grpcResp, s.grpcCode = e.Status, false, ""
		s.writeDownHead(fields, false, b)
		s.sendDown(body, true, b)
	}
	s.settle(b)
}

// timerFired is the caller's grpc-timeout running out in the mesh.
func (s *h2Stream) timerFired() {
	var b h2Batch
	defer b.flush()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.frontClosed || s.downDone {
		return
	}
	where := "connecting"
	if s.ep != nil {
		where = "waiting for " + s.ep.Instance + " at " + s.ep.Address
	}
	s.meshError(&plan.MeshError{Status: http.StatusGatewayTimeout, Reason: plan.ReasonUpstreamTimeout, Service: s.cluster.Service,
		Message: "grpc-timeout ran out " + where}, &b)
}

// armTimer starts the stream's timer for the caller's grpc-timeout, if it
// set one. Called under mu, before the first attempt.
func (s *h2Stream) armTimer() {
	if s.timeout >= 0 {
		s.timer = time.AfterFunc(time.Until(s.expires), s.timerFired)
	}
}

// peerBroke handles a peer that broke the protocol on this stream.
// Called under mu.
func (s *h2Stream) peerBroke(code http2.ErrCode, what string, b *h2Batch) {
	if s.firstTryFailed(endpoint.Reset, errors.New(what), code, b) {
		return // its hedge goes on
	}
	s.closePeer(code, b)
	s.meshError(s.k.Failed(endpoint.Reset, errors.New(what)), b)
}

// peerReset handles the peer's RST_STREAM, or the end of its connection
// (refused: the peer says it did not process the stream). Called under mu.
func (s *h2Stream) peerReset(code http2.ErrCode, refused bool, err error, b *h2Batch) {
	if !(code == http2.ErrCodeNo && s.peerEnd) && s.hedge.peer != nil {
		class := endpoint.Reset
		if refused {
			class = endpoint.Refused
		}
		if err == nil {
			err = fmt.Errorf("stream reset by the instance (%v)", code)
		}
		if s.firstTryFailed(class, err, 0, b) {
			return // its hedge goes on
		}
	}
	s.closePeer(0, b)
	if code == http2.ErrCodeNo && s.peerEnd {
		// A complete response, and the instance wants no more of the
		// request (RFC 9113 §8.1): the response goes out whole, then
		// the client is told the same.
		s.stopClient = true
		if s.downDone && !s.clientEnd {
			s.closeFront(http2.ErrCodeNo, true, b)
		}
		s.settle(b)
		return
	}
	if refused && s.noBody && !s.gotFinal && s.k.Retry(endpoint.Refused, false) {
		// The instance did not take the stream: it may take it on
		// another connection, so it stays a candidate.
		s.k.Failed(endpoint.Refused, fmt.Errorf("stream refused (%v)", code))
		s.k.SameAgain()
		s.reopen(b)
		return
	}
	if s.gotFinal && s.headersOut {
		if !s.downDone {
			s.status = plan.StatusAborted
		}
		s.closeFront(code, true, b)
		s.settle(b)
		return
	}
	if err == nil {
		err = fmt.Errorf("stream reset by the instance (%v)", code)
	}
	class := endpoint.Reset
	if refused {
		class = endpoint.Refused
	}
	e := s.k.Failed(class, err)
	if !s.gotFinal && !s.frontClosed && s.k.Again(!s.noBody) {
		// The plan allows another instance: a replayable request whose
		// stream or connection broke before a response (as on HTTP/1.1).
		s.reopen(b)
		return
	}
	s.meshError(e, b)
}

// closePeer ends the peer half, with RST_STREAM when code is not 0, and
// a hedge still racing. Called under mu.
func (s *h2Stream) closePeer(code http2.ErrCode, b *h2Batch) {
	s.dropHedge(endpoint.Cancelled, b) // (none races once the first try has answered)
	if s.peerClosed {
		return
	}
	s.peerClosed = true
	// (not attached: a connect in flight sees peerClosed and gives up)
	closeHalf(s.peer, s.uid, code, b)
}

// closeFront ends the front half; rst sends RST_STREAM with code.
// Called under mu.
func (s *h2Stream) closeFront(code http2.ErrCode, rst bool, b *h2Batch) {
	if s.frontClosed {
		return
	}
	h := s.front
	h.w.mu.Lock()
	s.closeFrontLocked(code, rst)
	h.w.mu.Unlock()
	b.add(&h.w)
}

// closeFrontLocked is closeFront with the client's writer lock held
// (the caller adds the writer to its batch).
func (s *h2Stream) closeFrontLocked(code http2.ErrCode, rst bool) {
	if s.frontClosed {
		return
	}
	s.frontClosed = true
	h := s.front
	if !s.headBy.IsZero() {
		s.headBy = time.Time{}
		h.heads.remove(s)
	}
	if rst && h.w.err == nil {
		h.w.fr.WriteRSTStream(s.id, code)
		h.resets[h.nresets%len(h.resets)] = s.id
		h.nresets++
	}
	delete(h.streams, s.id)
	if len(h.streams) == 0 {
		if h.draining {
			h.w.closeLocked()
		} else {
			h.idle.Reset(conn.ClientIdleTimeout)
		}
	}
}

// settle ends the peer half once the request and response have both
// passed, and records the stream when both halves have ended. Called
// under mu.
func (s *h2Stream) settle(b *h2Batch) {
	if !s.peerClosed && s.upDone && s.peerEnd && !s.connecting {
		s.closePeer(0, b)
	}
	if s.recorded || !s.frontClosed || !s.peerClosed || s.connecting {
		return
	}
	s.recorded = true
	s.dropMirror(plan.MirrorIncomplete) // the body never ended
	s.stopHedgeTimer()
	s.k.Cancelled() // an attempt the client left before its outcome
	if s.timer != nil {
		s.timer.Stop()
	}
	if s.status == 0 {
		s.status = plan.StatusClientGone
	}
	r := plan.Result{Status: s.status, Source: s.source, Route: s.route}
	if s.grpcResp {
		r.GRPC = plan.GRPCLabel(s.grpcCode)
	}
	now := time.Now()
	s.m.DoneAt(r, s.start, now)
	s.k.End(r, now)
	v := plan.Visit{Start: s.start, End: now, Status: s.status, Rule: s.rule, Err: s.routeErr, Bytes: -1}
	if s.headersOut {
		v.Bytes = s.bytes
	}
	if s.routeErr == nil {
		v.Call = &s.k
	}
	s.called.RecordString(&v, s.reqID, s.method, s.path, s.source)
}

// fieldValue returns the value of the first field named name.
func fieldValue(fields []hpack.HeaderField, name string) string {
	for _, f := range fields {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

// responseFields is a response head less connection-specific fields.
func responseFields(fields []hpack.HeaderField) []hpack.HeaderField {
	for i, f := range fields {
		if plan.ConnectionSpecific(f.Name) {
			out := append([]hpack.HeaderField(nil), fields[:i]...)
			for _, g := range fields[i+1:] {
				if !plan.ConnectionSpecific(g.Name) {
					out = append(out, g)
				}
			}
			return out
		}
	}
	return fields
}

// editResponse applies a route rule's header modifier to a final
// response head (a copy when there are edits).
func editResponse(fields []hpack.HeaderField, e *plan.HeaderEdits) []hpack.HeaderField {
	if e == nil {
		return fields
	}
	out := make([]hpack.HeaderField, 0, len(fields)+2)
	for _, f := range fields {
		if !e.DropsString(f.Name) {
			out = append(out, f)
		}
	}
	e.Each(func(name, value string) { out = append(out, hpack.HeaderField{Name: name, Value: value}) })
	return out
}

// h2Pend holds a stream's bytes that wait for window, read from the
// front. Its buffer comes from a pool when bytes first wait and goes back
// when none do, so a stream that keeps hitting its reader's window does
// not allocate per message.
type h2Pend struct {
	buf []byte
	off int
}

// h2PendPool holds buffers of a stream window's size: what a stream can
// have waiting (its sender's credit waits with its bytes).
var h2PendPool = sync.Pool{New: func() any { b := make([]byte, 0, h2StreamWindow); return &b }}

func (q *h2Pend) len() int      { return len(q.buf) - q.off }
func (q *h2Pend) bytes() []byte { return q.buf[q.off:] }

func (q *h2Pend) consume(n int) {
	q.off += n
	if q.off == len(q.buf) {
		q.reset()
	}
}

func (q *h2Pend) add(p []byte) {
	if len(p) == 0 {
		return
	}
	if q.buf == nil {
		q.buf = (*h2PendPool.Get().(*[]byte))[:0]
	}
	if q.off > 0 && len(q.buf)+len(p) > cap(q.buf) {
		q.buf = q.buf[:copy(q.buf, q.buf[q.off:])]
		q.off = 0
	}
	q.buf = append(q.buf, p...)
}

// reset drops what waits and returns the buffer.
func (q *h2Pend) reset() {
	if q.buf != nil && cap(q.buf) == h2StreamWindow {
		b := q.buf[:0]
		h2PendPool.Put(&b)
	}
	q.buf, q.off = nil, 0
}
