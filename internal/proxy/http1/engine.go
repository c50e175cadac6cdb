package http1

import (
	"bufio"
	"bytes"
	"errors"
	"github.com/weftmesh/weft/internal/h1"
	"github.com/weftmesh/weft/internal/proxy/conn"
	"github.com/weftmesh/weft/internal/proxy/plan"
	"github.com/weftmesh/weft/internal/proxy/tcp"
	"io"
	"net"
	"net/http"
	"time"
)

// Resolve is how a listener routes a request on the fast path: the
// cluster of its destination (host, as the request names it; proxyForm:
// an absolute URL), or the mesh error to answer.
type Resolve func(req *h1.Head, host []byte, proxyForm bool) (*plan.Cluster, *plan.MeshError)

// Config is what a listener's fast path needs.
type Config struct {
	// Resolve routes each request.
	Resolve Resolve
	// Connect allows CONNECT tunnels (outbound only), through TCP.
	Connect bool
	// TCP carries CONNECT tunnels.
	TCP *tcp.Proxy
	// HeadTimeout bounds the arrival of a request head once it has begun.
	HeadTimeout time.Duration
	// Metrics counts tunnels (may be nil).
	Metrics *plan.Metrics
	// ServeH2, when set, serves a connection whose next bytes are the
	// HTTP/2 preface; nil answers them as a bad request.
	ServeH2 func(c *conn.Client)
	// HandOff, when set, takes requests to upgrade to h2c: it gives the
	// connection to net/http, with the head already read replayed first.
	// nil passes such requests on like any other upgrade.
	HandOff func(c *conn.Client, head []byte)
	// ShuttingDown reports whether the listener is shutting down: a
	// connection then closes after the request it serves.
	ShuttingDown func() bool
}

// Engine is the HTTP/1.1 fast path of one listener.
type Engine struct {
	resolve      Resolve
	connect      bool
	tcp          *tcp.Proxy
	headTimeout  time.Duration
	metrics      *plan.Metrics
	serveH2      func(c *conn.Client)
	handOff      func(c *conn.Client, head []byte)
	shuttingDown func() bool
}

// New returns the fast path of one listener.
func New(cfg Config) *Engine {
	return &Engine{resolve: cfg.Resolve, connect: cfg.Connect, tcp: cfg.TCP, headTimeout: cfg.HeadTimeout,
		metrics: cfg.Metrics, serveH2: cfg.ServeH2, handOff: cfg.HandOff, shuttingDown: cfg.ShuttingDown}
}

// Conn is a client connection with the fast path's state beside it (one
// allocation per connection, reused by every request on it). The
// listener makes it when it accepts, and hands its Client to whichever
// engine detection chooses.
type Conn struct {
	conn.Client
	req       h1.Head
	resp      h1.Head
	start     time.Time // when the current request began
	onSession func(uintptr) bool
	sess      sessionState
	// call is the plan of the request being served on the fast path
	// (here, not on the stack: the balancer's interface call would move
	// it to the heap per request).
	call plan.Call
	view h1View // the request's view, for the plan
	// id is the request's x-request-id (the client's, or made in idBuf),
	// and newID the one this hop made (nil: the client's is passed on).
	id, newID []byte
	idBuf     [32]byte
	tpBuf     [plan.TraceParentLen]byte // the try's traceparent (plan.Call.TraceParent)
}

// Serve serves the connection's requests until it closes, idles out, or
// goes to another engine (HTTP/2, net/http).
func (e *Engine) Serve(cc *Conn) {
	for {
		if cc.Sock != nil {
			// Plain requests are served inside one wait on the socket
			// (session.go); it returns the others, head read or not.
			switch e.session(cc) {
			case sessionClosed:
				return
			case sessionHeadRead:
				if !e.serveRequest(cc) {
					return
				}
				continue
			}
		}
		if !e.readRequest(cc) || !e.serveRequest(cc) {
			return
		}
	}
}

// readRequest waits for the next request and reads its head. It reports
// whether there is one to serve (an HTTP/2 preface is served here).
func (e *Engine) readRequest(cc *Conn) bool {
	cc.DL.Set(cc.Conn, time.Now(), conn.ClientIdleTimeout, time.Minute)
	if _, err := cc.BR.Peek(1); err != nil {
		return false // closed, idle too long, or closed by Shutdown
	}
	cc.start = time.Now()
	if !cc.Activate() {
		return false
	}
	if e.serveH2 != nil && conn.IsH2Preface(cc.BR) {
		e.serveH2(&cc.Client)
		return false
	}
	// Deadlines cost timer updates: set them only where a read can block.
	if !headBuffered(cc.BR) {
		cc.DL.Set(cc.Conn, cc.start, e.headTimeout, time.Second)
	}
	if err := h1.ReadRequestHead(cc.BR, &cc.req); err != nil {
		e.badRequest(cc, err)
		return false
	}
	return true
}

// serveRequest serves a request whose head has been read. It reports
// whether the connection may carry another.
func (e *Engine) serveRequest(cc *Conn) bool {
	if e.handOff != nil && isH2CUpgrade(&cc.req) {
		var head bytes.Buffer
		writeRawHead(&head, &cc.req)
		e.handOff(&cc.Client, head.Bytes()) // net/http's h2c answers 101 and serves HTTP/2
		return false
	}
	if needsClient(&cc.req) {
		cc.DL.Clear(cc.Conn) // the body or tunnel may take its time
	}
	keep := e.handle(cc)
	if !keep || e.shuttingDown() {
		cc.BW.Flush()
		return false
	}
	cc.Idle()
	return true
}

// needsClient: serving the request reads more from the client than its
// head (a body, or the bytes of a tunnel or an upgraded connection).
func needsClient(req *h1.Head) bool {
	return hasBody(req) || len(req.Upgrade()) > 0 || req.IsMethod(http.MethodConnect)
}

// badRequest answers a head that could not be read, and the connection
// closes: after a framing error nothing on it can be trusted.
func (e *Engine) badRequest(cc *Conn, err error) {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), isNetError(err):
		return // the client went away or was too slow; nobody to answer
	case errors.Is(err, h1.ErrHeadTooLarge):
		(&plan.MeshError{Status: http.StatusRequestHeaderFieldsTooLarge, Reason: plan.ReasonBadRequest,
			Message: err.Error()}).WriteH1(cc.BW, true)
	default:
		(&plan.MeshError{Status: http.StatusBadRequest, Reason: plan.ReasonBadRequest,
			Message: err.Error()}).WriteH1(cc.BW, true)
	}
	cc.BW.Flush()
}

func isNetError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne)
}

// headBuffered reports whether a whole request head is already buffered,
// so that reading it cannot block: after up to four empty lines (which
// the parser skips), a line followed by an empty one, with CRLF or LF
// line endings.
func headBuffered(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	for i := 0; i < 4; i++ {
		if bytes.HasPrefix(b, crlf) {
			b = b[2:]
		} else if len(b) > 0 && b[0] == '\n' {
			b = b[1:]
		}
	}
	return bytes.Contains(b, []byte("\n\r\n")) || bytes.Contains(b, []byte("\n\n"))
}

var crlf = []byte("\r\n")

// writeRawHead writes a request head as it came.
func writeRawHead(w *bytes.Buffer, h *h1.Head) {
	w.Write(h.Method())
	w.WriteByte(' ')
	w.Write(h.Target())
	w.WriteByte(' ')
	w.Write(h.Proto())
	w.WriteString("\r\n")
	for i := 0; i < h.NumFields(); i++ {
		name, value := h.FieldAt(i)
		w.Write(name)
		w.WriteString(": ")
		w.Write(value)
		w.WriteString("\r\n")
	}
	w.WriteString("\r\n")
}

// isH2CUpgrade reports whether a request asks to upgrade to HTTP/2
// cleartext (RFC 7540 §3.2) in a way this listener takes itself: without
// a body, which the upgrade would have to hold in memory (a request with
// one is passed on like any other upgrade).
func isH2CUpgrade(h *h1.Head) bool {
	return bytes.EqualFold(h.Upgrade(), []byte("h2c")) && h.Get("HTTP2-Settings") != nil &&
		h.NamedByConnection([]byte("HTTP2-Settings")) && !hasBody(h)
}
