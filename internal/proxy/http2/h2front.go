package http2

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/weftmesh/weft/internal/proxy/conn"
	"github.com/weftmesh/weft/internal/proxy/plan"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Route is how a listener routes an HTTP/2 stream in Weft's own HTTP/2
// engine (ADR 5): the cluster for the stream's :authority, whose
// endpoints speak HTTP/2 with prior knowledge, and the :authority to send
// on ("" keeps the client's); or the mesh error to answer.
type Route func(authority string) (c *plan.Cluster, rewrite string, merr *plan.MeshError)

// h2Client serves one client connection that opened with the HTTP/2
// preface, top to bottom in serve:
//
//	preface, SETTINGS     -> ours: 256 streams, a 1 MiB connection window
//	HEADERS (new stream)  -> checked, routed, sent on a shared connection to an instance
//	DATA, trailers        -> passed on by stream, within both sides' windows
//	WINDOW_UPDATE         -> what waited for the client's window goes out
//	RST_STREAM            -> the instance's stream is reset too
//
// One goroutine reads the client's frames; each connection to an
// instance has its own reader (h2peer.go), which writes the answers here.
// No goroutine per stream, and writes gather until the reader has nothing
// more buffered (h2Batch).
type h2Client struct {
	h2Conn
	e     *Engine
	cc    *conn.Client
	route Route
	fr    *http2.Framer
	ip    string

	// under w.mu:
	streams  map[uint32]*h2Stream
	maxID    uint32 // the highest stream the client opened
	set      h2Settings
	blocked  []*h2Stream // streams waiting for sendWin or the writer's backlog
	draining bool        // GOAWAY sent: no new streams; close when none is left
	idle     *time.Timer // runs while no stream is open: then GOAWAY
	heads    headWait    // streams waiting for a response head (h2deadline.go)
	resets   [32]uint32  // the last streams this side reset, for resetByUs
	nresets  int
}

// resetByUs reports whether id is among the last streams this side reset,
// whose late frames are ignored. Called under w.mu.
func (h *h2Client) resetByUs(id uint32) bool {
	for _, r := range h.resets {
		if r == id {
			return true
		}
	}
	return false
}

// Engine is Weft's HTTP/2 engine as one listener runs it.
type Engine struct {
	route        Route
	headTimeout  time.Duration
	shuttingDown func() bool
}

// Config is what a listener's HTTP/2 engine needs.
type Config struct {
	// Route routes each stream by its :authority.
	Route Route
	// HeadTimeout bounds the client's preface and SETTINGS.
	HeadTimeout time.Duration
	// ShuttingDown reports whether the listener is shutting down: a
	// connection served then sends GOAWAY at once.
	ShuttingDown func() bool
}

// New returns the engine of one listener.
func New(cfg Config) *Engine {
	return &Engine{route: cfg.Route, headTimeout: cfg.HeadTimeout, shuttingDown: cfg.ShuttingDown}
}

// Serve serves a client connection that opened with the HTTP/2 preface
// (still unread in c.BR) until it ends. While it serves, c.GoAway ends
// the connection gracefully.
func (e *Engine) Serve(c *conn.Client) {
	h := &h2Client{e: e, cc: c, route: e.route, ip: string(c.IP), streams: map[uint32]*h2Stream{}}
	h.w.init(c.Conn)
	h.recvWin = h2StreamWindow
	h.sendWin = h2StreamWindow
	h.set = h2Settings{initWin: h2StreamWindow, maxStreams: ^uint32(0)}
	h.fr = http2.NewFramer(nil, c.BR)
	h.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	h.fr.MaxHeaderListSize = h2MaxHeaderList
	h.fr.SetReuseFrames() // no frame is kept past the next read
	h.fr.SetMaxReadFrameSize(h2MaxFrame)
	h.w.wake = h.resume
	h.idle = time.AfterFunc(conn.ClientIdleTimeout, h.idleOut)
	defer h.idle.Stop()
	h.serve()
}

func (h *h2Client) serve() {
	var b h2Batch
	defer h.end(&b)
	cc := h.cc
	cc.DL.Set(cc.Conn, time.Now(), h.e.headTimeout, 0)
	if _, err := cc.BR.Discard(len(conn.H2Preface)); err != nil {
		return
	}
	h.w.mu.Lock()
	h.w.fr.WriteSettings(
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: MaxStreams},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: h2MaxHeaderList},
	)
	h.w.fr.WriteWindowUpdate(0, h2ConnWindow-h2StreamWindow)
	h.recvWin = h2ConnWindow
	h.w.flushLocked()
	h.w.mu.Unlock()
	cc.DL.Clear(cc.Conn) // from here the idle timer bounds a silent client
	cc.SetGoAway(h.goAway)
	if h.e.shuttingDown() {
		h.goAway()
	}

	first := true
	for {
		if b.frames++; cc.BR.Buffered() == 0 || b.frames >= h2BatchFrames {
			b.flush()
		}
		f, err := h.fr.ReadFrame()
		if err != nil {
			var se http2.StreamError
			switch {
			case errors.As(err, &se):
				h.resetStream(se.StreamID, se.Code, &b)
				continue
			}
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				h.connError(http2.ErrCode(ce), h.fr.ErrorDetail())
			} else if errors.Is(err, http2.ErrFrameTooLarge) {
				h.connError(http2.ErrCodeFrameSize, err)
			}
			return
		}
		if first {
			if _, ok := f.(*http2.SettingsFrame); !ok {
				h.connError(http2.ErrCodeProtocol, errors.New("the preface is not followed by SETTINGS"))
				return
			}
			first = false
		}
		if err := h.frame(f, &b); err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				h.resetStream(se.StreamID, se.Code, &b)
				continue
			}
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				h.connError(http2.ErrCode(ce), err)
			}
			return
		}
	}
}

// connErr is a connection error with what caused it, for GOAWAY's debug data.
type connErr struct {
	code http2.ErrCode
	why  string
}

func (e connErr) Error() string { return fmt.Sprintf("%v: %s", e.code, e.why) }

func (e connErr) As(target any) bool {
	if ce, ok := target.(*http2.ConnectionError); ok {
		*ce = http2.ConnectionError(e.code)
		return true
	}
	return false
}

func protocolError(format string, args ...any) error {
	return connErr{http2.ErrCodeProtocol, fmt.Sprintf(format, args...)}
}

// frame handles one frame from the client.
func (h *h2Client) frame(f http2.Frame, b *h2Batch) error {
	switch f := f.(type) {
	case *http2.MetaHeadersFrame:
		return h.headers(f, b)
	case *http2.DataFrame:
		return h.data(f, b)
	case *http2.WindowUpdateFrame:
		return h.windowUpdate(f, b)
	case *http2.RSTStreamFrame:
		return h.rstStream(f, b)
	case *http2.SettingsFrame:
		return h.settings(f, b)
	case *http2.PingFrame:
		if !f.IsAck() {
			h.w.mu.Lock()
			h.w.fr.WritePing(true, f.Data)
			h.w.mu.Unlock()
			b.add(&h.w)
		}
	case *http2.PriorityFrame:
		if f.StreamDep == f.StreamID {
			return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeProtocol}
		}
	case *http2.GoAwayFrame:
		// The client will open no more streams; those open go on.
	case *http2.PushPromiseFrame:
		return protocolError("PUSH_PROMISE from a client")
	}
	return nil // unknown frame types are ignored
}

// stream returns the open stream id, or nil; idle reports an id the
// client has not opened yet.
func (h *h2Client) stream(id uint32) (s *h2Stream, idle bool) {
	h.w.mu.Lock()
	s, idle = h.streams[id], id > h.maxID
	h.w.mu.Unlock()
	return s, idle
}

// headers opens a stream, or carries a request's trailers.
func (h *h2Client) headers(f *http2.MetaHeadersFrame, b *h2Batch) error {
	id := f.StreamID
	if id%2 != 1 {
		return protocolError("HEADERS on even stream %d", id)
	}
	if f.HasPriority() && f.Priority.StreamDep == id {
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	}
	if s, _ := h.stream(id); s != nil {
		return h.trailers(s, f, b)
	}
	h.w.mu.Lock()
	if id <= h.maxID {
		reset := h.resetByUs(id)
		h.w.mu.Unlock()
		if reset {
			// Trailers the client sent before it saw our RST_STREAM:
			// ignored (RFC 9113 §5.1); the block is decoded, so HPACK
			// state holds.
			return nil
		}
		return connErr{http2.ErrCodeStreamClosed, fmt.Sprintf("HEADERS on closed stream %d", id)}
	}
	h.maxID = id
	if h.draining {
		h.w.mu.Unlock()
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeRefusedStream}
	}
	if len(h.streams) >= MaxStreams {
		h.w.mu.Unlock()
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeRefusedStream}
	}
	s := &h2Stream{front: h, id: id, start: time.Now(), clen: -1, timeout: -1, hopTimeout: -1,
		clientWin: h2StreamWindow, downWin: int64(h.set.initWin)}
	h.streams[id] = s
	if len(h.streams) == 1 {
		h.idle.Stop()
	}
	h.w.mu.Unlock()

	s.mu.Lock()
	defer s.mu.Unlock()
	authority, merr, err := h.request(s, f)
	if err != nil {
		s.peerClosed = true
		s.closeFront(http2.ErrCodeProtocol, true, b)
		s.recorded = true // not a request: nothing to record
		return nil
	}
	s.clientEnd = f.StreamEnded()
	s.noBody = s.clientEnd
	s.upEnd = s.clientEnd
	var delay time.Duration // a Fault's, before the first try
	if merr == nil {
		var rewrite string
		s.cluster, rewrite, merr = h.route(authority)
		if rewrite != "" {
			for i := range s.req {
				if s.req[i].Name == ":authority" {
					s.req[i].Value = rewrite
				}
			}
		}
		s.called = s.cluster
		if merr == nil && s.cluster.Routed() {
			// The route stage; a request it refuses is the parent's.
			r, rerr := s.cluster.Route((*h2View)(s))
			s.rule, s.route, s.routePath = r.RuleRef(), r.RouteName(), r.RulePath()
			if rerr != nil {
				merr, s.routeErr = rerr, rerr
			} else {
				s.cluster, delay, s.respEdits = r.Cluster, r.Delay, r.Response
				if r.Mirrors() {
					s.startMirror(r) // the head as the client sent it
				}
				s.editRequest(r.Request)
				s.rewrite(r.Rewrite)
			}
		}
	}
	if s.cluster != nil {
		s.m = s.cluster.Metrics()
		s.k.Init(s.cluster, (*h2View)(s), s.start)
		s.k.SetRoute(s.route, s.routePath)
		s.setSource()
		if !s.noBody {
			s.keepMax = s.k.KeepBody()
			s.keep = s.keepMax > 0
		}
	}
	s.m.Begin()
	if merr != nil {
		s.meshError(merr, b)
		return nil
	}
	if s.timeout >= 0 {
		if d, ok := plan.ParseGRPCTimeout(s.req[s.timeout].Value); ok {
			s.expires = time.Now().Add(d)
		} else {
			s.timeout = -1
		}
	}
	s.armTimer()
	if delay > 0 {
		// The stream waits as while a connection is dialled (frames that
		// arrive wait in upPend), then opens as after a retry's backoff.
		s.connecting = true
		time.AfterFunc(delay, s.afterBackoff)
		return nil
	}
	s.open(b)
	return nil
}

// request checks a request head and builds the head to send on: the
// client's fields, with X-Forwarded-For extended. err is a malformed
// request (a stream error); merr one the mesh answers.
func (h *h2Client) request(s *h2Stream, f *http2.MetaHeadersFrame) (authority string, merr *plan.MeshError, err error) {
	if f.Truncated {
		return "", &plan.MeshError{Status: http.StatusRequestHeaderFieldsTooLarge, Reason: plan.ReasonBadRequest,
			Message: "the request's header list is larger than " + strconv.Itoa(h2MaxHeaderList) + " bytes"}, nil
	}
	method, path, scheme := f.PseudoValue("method"), f.PseudoValue("path"), f.PseudoValue("scheme")
	authority = f.PseudoValue("authority")
	s.method, s.path = method, path
	if f.PseudoValue("status") != "" || f.PseudoValue("protocol") != "" {
		return "", nil, errors.New("response or extended-CONNECT pseudo-header in a request")
	}
	if method == http.MethodConnect {
		if authority == "" || path != "" || scheme != "" {
			return "", nil, errors.New("malformed CONNECT")
		}
		return "", &plan.MeshError{Status: http.StatusMethodNotAllowed, Reason: plan.ReasonBadRequest, Service: authority,
			Message: "CONNECT is served on HTTP/1.1 connections to this listener, not over HTTP/2"}, nil
	}
	if method == "" || path == "" || scheme == "" {
		return "", nil, errors.New("missing :method, :scheme or :path")
	}
	req := make([]hpack.HeaderField, 0, len(f.Fields)+1)
	xff := -1
	for _, hf := range f.Fields {
		switch {
		case plan.ConnectionSpecific(hf.Name):
			return "", nil, errors.New("connection-specific field " + hf.Name)
		case hf.Name == "te" && hf.Value != "trailers":
			return "", nil, errors.New("te other than trailers")
		case hf.Name == "content-length":
			n, perr := strconv.ParseInt(hf.Value, 10, 64)
			if perr != nil || n < 0 || (s.clen >= 0 && n != s.clen) {
				return "", nil, errors.New("invalid content-length")
			}
			s.clen = n
		case hf.Name == "host" && authority == "":
			authority = hf.Value
		case hf.Name == "grpc-timeout":
			s.timeout = len(req)
		case hf.Name == plan.TimeoutHeader:
			s.hopTimeout = len(req) // read by the plan; each try sets its own (passTimeout)
		case hf.Name == "content-type":
			s.isGRPC = strings.HasPrefix(hf.Value, "application/grpc")
		case hf.Name == "x-request-id":
			if !plan.ValidRequestID(hf.Value) || s.reqID != "" {
				continue // empty, too long or repeated: replaced by a new one below
			}
			s.reqID = hf.Value
		case hf.Name == plan.SourceHeader:
			s.source = hf.Value
		case hf.Name == "x-forwarded-for":
			if xff >= 0 {
				req[xff].Value += ", " + hf.Value
				continue
			}
			xff = len(req)
		}
		req = append(req, hf)
	}
	if f.StreamEnded() && s.clen > 0 {
		return "", nil, errors.New("content-length without a body")
	}
	if h.ip != "" {
		if xff >= 0 {
			req[xff].Value += ", " + h.ip
		} else {
			req = append(req, hpack.HeaderField{Name: "x-forwarded-for", Value: h.ip})
		}
	}
	if s.reqID == "" { // the first hop names the request (plan.RequestIDHeader)
		var buf [32]byte
		s.reqID = string(plan.NewRequestID(&buf))
		req = append(req, hpack.HeaderField{Name: "x-request-id", Value: s.reqID})
	}
	if peer := h.cc.Peer; peer != "" && s.source != peer {
		// Over mutual TLS the caller is who its certificate says, whatever
		// the header said: the app, policies and metrics see that.
		req = setField(req, plan.SourceHeader, peer)
		s.source = peer
	}
	s.req = req
	return authority, nil, nil
}

// setField sets the field name (lower case) of a head to value: each
// field of that name gets it, or one is added at the end (no field moves:
// the stream keeps indexes into the head).
func setField(fields []hpack.HeaderField, name, value string) []hpack.HeaderField {
	set := false
	for i := range fields {
		if fields[i].Name == name {
			fields[i].Value, set = value, true
		}
	}
	if !set {
		fields = append(fields, hpack.HeaderField{Name: name, Value: value})
	}
	return fields
}

// rewrite applies a route rule's URLRewrite to the head sent on.
func (s *h2Stream) rewrite(rw plan.Rewrite) {
	for i := range s.req {
		switch f := &s.req[i]; {
		case f.Name == ":path" && rw.Path != "":
			f.Value = rw.Path
		case (f.Name == ":authority" || f.Name == "host") && rw.Host != "":
			f.Value = rw.Host
		}
	}
}

// editRequest applies a route rule's header modifier to the head sent
// on (pseudo-fields are never named by one), and finds the timeout
// fields again.
func (s *h2Stream) editRequest(e *plan.HeaderEdits) {
	if e == nil {
		return
	}
	req := make([]hpack.HeaderField, 0, len(s.req)+2)
	for _, f := range s.req {
		if !e.DropsString(f.Name) {
			req = append(req, f)
		}
	}
	e.Each(func(name, value string) { req = append(req, hpack.HeaderField{Name: name, Value: value}) })
	s.timeout, s.hopTimeout = -1, -1
	for i, f := range req {
		switch f.Name {
		case "grpc-timeout":
			s.timeout = i
		case plan.TimeoutHeader:
			s.hopTimeout = i
		}
	}
	s.req = req
}

// trailers ends a request with its trailers.
func (h *h2Client) trailers(s *h2Stream, f *http2.MetaHeadersFrame, b *h2Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clientEnd {
		return http2.StreamError{StreamID: s.id, Code: http2.ErrCodeStreamClosed}
	}
	if !f.StreamEnded() || len(f.PseudoFields()) > 0 || (s.clen >= 0 && s.got != s.clen) {
		return http2.StreamError{StreamID: s.id, Code: http2.ErrCodeProtocol}
	}
	s.clientEnd = true
	s.dropMirror(plan.MirrorIncomplete) // trailers are not mirrored
	if s.peerClosed && !s.connecting {
		s.afterClientEnd(b)
		return nil
	}
	s.upTrail = f.Fields
	s.upEnd = true
	s.keep, s.kept = false, nil // trailers are not kept: no hedge
	s.pushUp(b)
	s.afterClientEnd(b)
	return nil
}

// afterClientEnd closes the front half if the response is done too.
// Called under s.mu.
func (s *h2Stream) afterClientEnd(b *h2Batch) {
	if s.downDone {
		s.closeFront(0, false, b)
	}
	s.settle(b)
}

// data passes a DATA frame on.
func (h *h2Client) data(f *http2.DataFrame, b *h2Batch) error {
	id := f.StreamID
	s, idle := h.stream(id)
	if id == 0 || (s == nil && idle) {
		return protocolError("DATA on idle stream %d", id)
	}
	if !h.takeConn(f.Length, b) {
		return connErr{http2.ErrCodeFlowControl, "DATA beyond the connection's window"}
	}
	if s == nil {
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeStreamClosed}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clientEnd {
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeStreamClosed}
	}
	if int64(f.Length) > s.clientWin {
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeFlowControl}
	}
	data := f.Data()
	s.clientWin -= int64(f.Length)
	s.clientOwed += int64(f.Length) - int64(len(data)) // padding
	s.got += int64(len(data))
	end := f.StreamEnded()
	if s.clen >= 0 && (s.got > s.clen || end && s.got != s.clen) {
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	}
	if end {
		s.clientEnd = true
	}
	if s.mirror != nil {
		s.takeMirror(data, end)
	}
	if s.peerClosed && !s.connecting {
		// Nobody takes the body any more (the mesh answered): drop it.
		s.clientOwed += int64(len(data))
		s.creditClient(b)
		if end {
			s.afterClientEnd(b)
		}
		return nil
	}
	s.sendUp(data, end, b)
	s.creditClient(b)
	if end {
		s.afterClientEnd(b)
	}
	return nil
}

func (h *h2Client) windowUpdate(f *http2.WindowUpdateFrame, b *h2Batch) error {
	if f.StreamID == 0 {
		return h.connWindowUpdate(f.Increment, b)
	}
	s, idle := h.stream(f.StreamID)
	if s == nil {
		if idle {
			return protocolError("WINDOW_UPDATE on idle stream %d", f.StreamID)
		}
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.downWin+int64(f.Increment) > 1<<31-1 {
		return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeFlowControl}
	}
	s.downWin += int64(f.Increment)
	s.pushDown(b)
	s.settle(b)
	return nil
}

func (h *h2Client) rstStream(f *http2.RSTStreamFrame, b *h2Batch) error {
	s, idle := h.stream(f.StreamID)
	if s == nil {
		if idle {
			return protocolError("RST_STREAM on idle stream %d", f.StreamID)
		}
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.downDone {
		s.status = plan.StatusClientGone
	}
	s.closeFront(0, false, b)
	s.closePeer(http2.ErrCodeCancel, b)
	s.settle(b)
	return nil
}

func (h *h2Client) settings(f *http2.SettingsFrame, b *h2Batch) error {
	if f.IsAck() {
		return nil
	}
	h.w.mu.Lock()
	delta, err := h.w.applySettings(f, &h.set)
	streams := make([]*h2Stream, 0, len(h.streams))
	if delta != 0 {
		for _, s := range h.streams {
			streams = append(streams, s)
		}
	}
	h.w.mu.Unlock()
	if err != nil {
		var ce http2.ConnectionError
		errors.As(err, &ce)
		return connErr{http2.ErrCode(ce), "invalid SETTINGS value"}
	}
	// Every open stream's window changes before the ACK says the
	// settings are in force (streams opened from now on start with them).
	for _, s := range streams {
		s.mu.Lock()
		s.downWin += int64(delta)
		over := s.downWin > 1<<31-1
		s.mu.Unlock()
		if over {
			return connErr{http2.ErrCodeFlowControl, "stream window above 2^31-1"}
		}
	}
	h.w.mu.Lock()
	h.w.fr.WriteSettingsAck()
	h.w.mu.Unlock()
	b.add(&h.w)
	if delta > 0 {
		for _, s := range streams {
			s.mu.Lock()
			s.pushDown(b)
			s.settle(b)
			s.mu.Unlock()
		}
	}
	return nil
}

// resetStream answers a stream error with RST_STREAM, and resets the
// instance's stream too.
func (h *h2Client) resetStream(id uint32, code http2.ErrCode, b *h2Batch) {
	s, _ := h.stream(id)
	if s == nil {
		h.w.mu.Lock()
		h.w.fr.WriteRSTStream(id, code)
		h.w.mu.Unlock()
		b.add(&h.w)
		return
	}
	s.mu.Lock()
	if !s.downDone {
		s.status = plan.StatusClientGone
	}
	s.closeFront(code, true, b)
	s.closePeer(http2.ErrCodeCancel, b)
	s.settle(b)
	s.mu.Unlock()
}

// connError ends the connection with GOAWAY.
func (h *h2Client) connError(code http2.ErrCode, why error) {
	var debug []byte
	if why != nil {
		debug = []byte(why.Error())
	}
	h.w.mu.Lock()
	h.w.fr.WriteGoAway(h.maxID, code, debug)
	h.w.flushLocked()
	h.w.mu.Unlock()
}

// goAway starts a graceful close: GOAWAY naming the last stream taken;
// the connection closes when the streams already open have ended. The
// idle timer and Shutdown call it.
func (h *h2Client) goAway() {
	h.w.mu.Lock()
	defer h.w.mu.Unlock()
	if h.draining {
		return
	}
	h.draining = true
	h.w.fr.WriteGoAway(h.maxID, http2.ErrCodeNo, nil)
	h.w.flushLocked()
	if len(h.streams) == 0 {
		h.w.closeLocked()
	}
}

// idleOut closes a connection that has had no stream for the idle
// timeout (unless one opened just as the timer fired).
func (h *h2Client) idleOut() {
	h.w.mu.Lock()
	busy := len(h.streams) > 0
	h.w.mu.Unlock()
	if !busy {
		h.goAway()
	}
}

// resume gives the streams that waited for the connection's window or
// its writer's backlog another go.
func (h *h2Client) resume(b *h2Batch) {
	h.w.mu.Lock()
	blocked := h.blocked
	h.blocked = nil
	h.w.mu.Unlock()
	for _, s := range blocked {
		s.mu.Lock()
		s.downBlock = false
		s.pushDown(b)
		s.settle(b)
		s.mu.Unlock()
	}
}

// end resets every stream still open when the client's connection ends.
func (h *h2Client) end(b *h2Batch) {
	h.w.mu.Lock()
	h.draining = true
	h.heads.stop()
	streams := make([]*h2Stream, 0, len(h.streams))
	for _, s := range h.streams {
		streams = append(streams, s)
	}
	h.w.mu.Unlock()
	for _, s := range streams {
		s.mu.Lock()
		if !s.downDone {
			s.status = plan.StatusClientGone
		}
		s.closeFront(0, false, b)
		s.closePeer(http2.ErrCodeCancel, b)
		s.settle(b)
		s.mu.Unlock()
	}
	b.flush()
	h.w.mu.Lock()
	h.w.closeLocked()
	h.w.mu.Unlock()
	// The caller closes the socket next: first let the client see the
	// last frames and end its side (a close with its bytes unread would
	// reset the connection), for at most CloseWait.
	h.cc.Conn.SetReadDeadline(time.Now().Add(CloseWait))
	io.Copy(io.Discard, h.cc.BR)
}
