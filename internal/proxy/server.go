package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"

	"github.com/weftmesh/weft/internal/h1"
)

// Server serves a sidecar listener. HTTP/1.1 takes the fast path: one
// goroutine per client connection reads a request head, forwards head and
// body to a pooled upstream connection, and copies the response back,
// without net/http and without a goroutine hand-off per request (see
// docs/adr/0002-data-path-engine.md). A connection that opens with the
// HTTP/2 preface is served by x/net/http2 with the net/http handler in H2.
//
// Before any of that, detect (detect.go) decides what the connection
// speaks: where Opaque is set, connections that are not HTTP, or that stay
// silent for DetectTimeout, are forwarded as bytes by TCP.
type Server struct {
	// Name labels the listener in metrics: outbound, inbound, upstream/<service>.
	Name string
	// Resolve picks the cluster for a request (or answers a mesh error).
	Resolve func(req *h1.Head, host []byte, proxyForm bool) (*Cluster, *MeshError)
	// Connect allows CONNECT tunnels (outbound only).
	Connect bool
	// H2 serves HTTP/2 connections (prior knowledge); nil refuses them.
	H2 http.Handler
	// H2Frames, when set, routes HTTP/2 connections with prior knowledge
	// on plain TCP through Weft's own HTTP/2 engine (h2front.go), which
	// forwards frames to instances that speak HTTP/2, instead of H2.
	H2Frames H2Route
	// H1, when set, serves HTTP/1 connections through net/http instead of
	// the fast path (an h2c app's inbound translates them to HTTP/2).
	H1 http.Handler
	// Opaque, when set, is where connections that are not HTTP go as bytes:
	// it returns the destination (nil: none, the connection closes) and
	// whether the destination is declared TCP, which skips detection.
	Opaque func() (dest *Cluster, declared bool)
	// TCP forwards connections as bytes: those Opaque sends it, and
	// CONNECT tunnels.
	TCP *TCPProxy
	// SNI, when set, routes TLS connections by the server name of their
	// ClientHello and passes them through (the outbound listener, which
	// has no other destination for them).
	SNI func(serverName string) (*Cluster, *MeshError)
	// TLS, when set, terminates TLS on this listener (ALPN h2 and
	// http/1.1) instead of forwarding it as bytes; what it carries is
	// detected again.
	TLS *tls.Config
	// DetectTimeout is how long a listener with Opaque waits for a new
	// connection's first line before forwarding it as TCP (0: as long as
	// the client idle timeout).
	DetectTimeout time.Duration
	// HeadTimeout bounds the arrival of a request head (and of a TLS
	// handshake) once it has begun (0: DefaultHeadTimeout).
	HeadTimeout time.Duration
	Metrics     *Metrics
	Log         *slog.Logger

	std      *http.Server  // net/http, for connections handed off (H1, h2c upgrade)
	h2       *http2.Server // for HTTP/2 connections, prior knowledge or upgraded
	stdQueue *connQueue
	mu       sync.Mutex
	ln       net.Listener
	conns    map[*clientConn]struct{}
	shutdown atomic.Bool
	wg       sync.WaitGroup
}

func (s *Server) headTimeout() time.Duration {
	if s.HeadTimeout > 0 {
		return s.HeadTimeout
	}
	return DefaultHeadTimeout
}

// Client connection states, for a shutdown that closes only idle ones.
const (
	stateActive int32 = iota
	stateIdle
	stateClosed
)

const (
	clientIdleTimeout = 5 * time.Minute
	// DefaultHeadTimeout is Server.HeadTimeout's default.
	DefaultHeadTimeout = 30 * time.Second
)

type clientConn struct {
	conn  net.Conn      // what the connection is read and written through (TLS, once terminated)
	raw   net.Conn      // the accepted connection, which Shutdown and Close close from other goroutines
	rawBR *bufio.Reader // under TLS: the reader of raw, feeding the TLS layer
	br    *bufio.Reader
	bw    *bufio.Writer
	ip    []byte // the client's address, for X-Forwarded-For
	state atomic.Int32
	req   h1.Head
	resp  h1.Head
	start time.Time // when the current request began
	dl    lazyDeadline
	// sock reads and writes the socket directly (nil under TLS); see
	// session.go.
	sock      *sockIO
	onSession func(uintptr) bool
	sess      sessionState
	// handedOff: net/http owns the connection now.
	handedOff bool
	// h2 is set while the HTTP/2 engine serves the connection.
	h2 atomic.Pointer[h2Client]
	// call is the plan of the request being served on the fast path
	// (here, not on the stack: the balancer's interface call would move
	// it to the heap per request).
	call call
}

// lazyDeadline sets a connection's read deadline only when the one in
// force is not close enough to what is asked: a timer update per request
// is a measurable share of the fast path's CPU.
type lazyDeadline struct{ at time.Time } // zero: none in force

// set asks for a deadline at now+after, accepting one up to slack earlier.
func (d *lazyDeadline) set(c net.Conn, now time.Time, after, slack time.Duration) {
	want := now.Add(after)
	if d.at.IsZero() || d.at.After(want) || d.at.Before(want.Add(-slack)) {
		d.at = want
		c.SetReadDeadline(want)
	}
}

// clear removes the deadline.
func (d *lazyDeadline) clear(c net.Conn) {
	if !d.at.IsZero() {
		d.at = time.Time{}
		c.SetReadDeadline(time.Time{})
	}
}

// Serve accepts connections until the listener is closed.
func (s *Server) Serve(ln net.Listener) error {
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	s.mu.Lock()
	s.ln = ln
	s.conns = map[*clientConn]struct{}{}
	s.stdQueue = newConnQueue(ln.Addr())
	// One net/http server and one HTTP/2 server per listener. The HTTP/2
	// server is configured on the net/http one, so shutting that down sends
	// GOAWAY on every HTTP/2 connection, prior knowledge or upgraded.
	h := s.H1
	if h == nil {
		h = s.H2
	}
	s.h2 = &http2.Server{IdleTimeout: clientIdleTimeout}
	s.std = &http.Server{ReadHeaderTimeout: s.headTimeout(), IdleTimeout: clientIdleTimeout,
		ErrorLog: slog.NewLogLogger(s.Log.Handler(), slog.LevelDebug)}
	if h != nil {
		s.std.Handler = noUpgradeWithBody(h2c.NewHandler(upgraded(h), s.h2))
	}
	if err := http2.ConfigureServer(s.std, s.h2); err != nil {
		s.mu.Unlock()
		return fmt.Errorf("configuring HTTP/2: %w", err)
	}
	std := s.std
	s.wg.Add(1)
	go func() { defer s.wg.Done(); std.Serve(s.stdQueue) }()
	s.mu.Unlock()
	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if s.shutdown.Load() {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff) // accept loop backoff, as net/http does
				continue
			}
			return err
		}
		backoff = 0
		cc := &clientConn{conn: conn, raw: conn}
		if !s.track(cc, true) {
			conn.Close()
			continue
		}
		s.wg.Add(1)
		go s.serveConn(cc)
	}
}

func (s *Server) track(cc *clientConn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.shutdown.Load() {
			return false
		}
		s.conns[cc] = struct{}{}
	} else {
		delete(s.conns, cc)
	}
	return true
}

// Shutdown stops accepting, closes idle connections as they become idle,
// and waits for active ones until ctx ends, then closes the rest.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdown.Store(true)
	s.mu.Lock()
	if s.ln != nil {
		s.ln.Close()
	}
	std := s.std
	s.mu.Unlock()
	// net/http drains what was handed to it, and its shutdown sends GOAWAY
	// on HTTP/2 connections, so they end once their streams are done.
	stdDone := make(chan error, 1)
	if std != nil {
		go func() { stdDone <- std.Shutdown(ctx) }()
	} else {
		stdDone <- nil
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		for cc := range s.conns {
			if cc.state.CompareAndSwap(stateIdle, stateClosed) {
				cc.raw.Close()
			} else if h := cc.h2.Load(); h != nil {
				h.goAway() // GOAWAY once; it closes when its streams are done
			}
		}
		n := len(s.conns)
		s.mu.Unlock()
		if n == 0 {
			if err := <-stdDone; err != nil {
				s.Close()
			}
			s.wg.Wait()
			return nil
		}
		select {
		case <-ctx.Done():
			s.Close()
			<-stdDone
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Close closes the listener and every client connection now. It does not
// wait: a tunnel whose upstream never closes must not hold a shutdown.
func (s *Server) Close() {
	s.shutdown.Store(true)
	s.mu.Lock()
	if s.ln != nil {
		s.ln.Close()
	}
	for cc := range s.conns {
		cc.state.Store(stateClosed)
		closeNow(cc.raw)
	}
	std := s.std
	s.mu.Unlock()
	if std != nil {
		std.Close()
	}
}

func (s *Server) serveConn(cc *clientConn) {
	defer s.wg.Done()
	defer s.track(cc, false)
	defer func() {
		if !cc.handedOff {
			cc.conn.Close()
		}
	}()
	cc.sock, cc.br, cc.bw = buffered(cc.conn)
	defer func() {
		putBuffers(cc.br, cc.bw)
		if cc.rawBR != nil && cc.rawBR != cc.br {
			putBuffers(cc.rawBR, nil)
		}
	}()
	if host, _, err := net.SplitHostPort(cc.conn.RemoteAddr().String()); err == nil {
		cc.ip = []byte(host)
	}
	cc.state.Store(stateIdle)
	if !s.detect(cc) {
		return
	}
	if s.H1 != nil && !isH2Preface(cc.br) {
		s.handOff(cc, nil)
		return
	}
	for {
		if cc.sock != nil {
			// Plain requests are served inside one wait on the socket
			// (session.go); it returns the others, head read or not.
			switch s.session(cc) {
			case sessionClosed:
				return
			case sessionHeadRead:
				if !s.serveRequest(cc) {
					return
				}
				continue
			}
		}
		if !s.readRequest(cc) || !s.serveRequest(cc) {
			return
		}
	}
}

// readRequest waits for the next request and reads its head. It reports
// whether there is one to serve (an HTTP/2 preface is served here).
func (s *Server) readRequest(cc *clientConn) bool {
	cc.dl.set(cc.conn, time.Now(), clientIdleTimeout, time.Minute)
	if _, err := cc.br.Peek(1); err != nil {
		return false // closed, idle too long, or closed by Shutdown
	}
	cc.start = time.Now()
	if !cc.state.CompareAndSwap(stateIdle, stateActive) {
		return false
	}
	if s.H2 != nil && isH2Preface(cc.br) {
		if s.H2Frames != nil && cc.sock != nil {
			s.serveH2Frames(cc)
		} else {
			s.serveH2(cc)
		}
		return false
	}
	// Deadlines cost timer updates: set them only where a read can block.
	if !headBuffered(cc.br) {
		cc.dl.set(cc.conn, cc.start, s.headTimeout(), time.Second)
	}
	if err := h1.ReadRequestHead(cc.br, &cc.req); err != nil {
		s.badRequest(cc, err)
		return false
	}
	return true
}

// serveRequest serves a request whose head has been read. It reports
// whether the connection may carry another.
func (s *Server) serveRequest(cc *clientConn) bool {
	if s.std.Handler != nil && isH2CUpgrade(&cc.req) {
		s.handOff(cc, &cc.req) // net/http's h2c answers 101 and serves HTTP/2
		return false
	}
	if needsClient(&cc.req) {
		cc.dl.clear(cc.conn) // the body or tunnel may take its time
	}
	keep := s.handle(cc)
	if !keep || s.shutdown.Load() {
		cc.bw.Flush()
		return false
	}
	cc.state.Store(stateIdle)
	return true
}

// needsClient: serving the request reads more from the client than its
// head (a body, or the bytes of a tunnel or an upgraded connection).
func needsClient(req *h1.Head) bool {
	return hasBody(req) || len(req.Upgrade()) > 0 || req.IsMethod(http.MethodConnect)
}

// badRequest answers a head that could not be read, and the connection
// closes: after a framing error nothing on it can be trusted.
func (s *Server) badRequest(cc *clientConn, err error) {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), isNetError(err):
		return // the client went away or was too slow; nobody to answer
	case errors.Is(err, h1.ErrHeadTooLarge):
		(&MeshError{Status: http.StatusRequestHeaderFieldsTooLarge, Reason: ReasonBadRequest,
			Message: err.Error()}).writeH1(cc.bw, true)
	default:
		(&MeshError{Status: http.StatusBadRequest, Reason: ReasonBadRequest,
			Message: err.Error()}).writeH1(cc.bw, true)
	}
	cc.bw.Flush()
}

func isNetError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne)
}

// h2Preface starts every HTTP/2 connection with prior knowledge.
var h2Preface = []byte(http2.ClientPreface)

// isH2Preface reports whether the buffered start of the connection is the
// HTTP/2 preface. It reads more only while what it has matches, so an
// HTTP/1 request (which differs by its second byte at the latest) is never
// delayed.
func isH2Preface(br *bufio.Reader) bool {
	for n := 1; n <= len(h2Preface); n++ {
		b, err := br.Peek(n)
		if err != nil || !bytes.Equal(b, h2Preface[:n]) {
			return false
		}
	}
	return true
}

// serveH2 hands the connection to x/net/http2, which reads the preface
// from the buffered reader first.
func (s *Server) serveH2(cc *clientConn) {
	cc.dl.clear(cc.conn)
	s.h2.ServeConn(&bufferedConn{Conn: cc.conn, r: cc.br}, &http2.ServeConnOpts{Handler: s.H2, BaseConfig: s.std})
	// ServeConn may return while its frame reader still reads through
	// the buffers: they are not returned to the pool.
	cc.br, cc.rawBR = nil, nil
}

type bufferedConn struct {
	net.Conn
	r io.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

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

// closeNow ends a connection at once without waiting. Closing a socket
// waits until nothing uses it, and a session (session.go) uses it for as
// long as an exchange with an upstream takes. So the connection's write
// half is shut first, which the peer sees at once, and the close runs on
// its own: it wakes whatever waits on the socket with an error at once,
// and releases the descriptor when the session lets go of it. (Not a
// read shutdown: a copy would take that for the peer's end of stream.)
func closeNow(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
		go tc.Close()
		return
	}
	c.Close()
}
