package stdhttp

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"

	"github.com/weftmesh/weft/internal/proxy/conn"
)

// Server is the net/http side of one listener: it serves the connections
// the listener hands it, HTTP/2 that Weft's frame engine does not take
// (ServeH2), and HTTP/1 connections of a listener that translates them
// or that asked to upgrade to h2c (HandOff). One net/http server and one
// HTTP/2 server per listener; the HTTP/2 server is configured on the
// net/http one, so Shutdown sends GOAWAY on every HTTP/2 connection,
// prior knowledge or upgraded.
type Server struct {
	std   *http.Server
	h2    *http2.Server
	h2h   http.Handler
	queue *connQueue
}

// ServerConfig is what a listener's net/http side serves.
type ServerConfig struct {
	// H1, when set, serves HTTP/1 connections handed off and h2c
	// upgrades, instead of H2 (an h2c app's inbound translates them).
	H1 http.Handler
	// H2 serves HTTP/2 connections with prior knowledge (and h2c
	// upgrades when H1 is nil); nil refuses them.
	H2 http.Handler
	// HeadTimeout bounds the arrival of a request head.
	HeadTimeout time.Duration
	// IdleTimeout closes a connection idle for that long.
	IdleTimeout time.Duration
	// Log receives net/http's own complaints, at debug level.
	Log *slog.Logger
}

// NewServer builds the net/http side of a listener; Serve runs it.
func NewServer(cfg ServerConfig) (*Server, error) {
	h := cfg.H1
	if h == nil {
		h = cfg.H2
	}
	s := &Server{h2: &http2.Server{IdleTimeout: cfg.IdleTimeout}, h2h: cfg.H2, queue: newConnQueue()}
	s.std = &http.Server{ReadHeaderTimeout: cfg.HeadTimeout, IdleTimeout: cfg.IdleTimeout,
		ErrorLog: slog.NewLogLogger(cfg.Log.Handler(), slog.LevelDebug),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if hc, ok := c.(*handedConn); ok && hc.peer != "" {
				return withPeer(ctx, hc.peer)
			}
			return ctx
		}}
	if h != nil {
		s.std.Handler = noUpgradeWithBody(h2c.NewHandler(upgraded(h), s.h2))
	}
	if err := http2.ConfigureServer(s.std, s.h2); err != nil {
		return nil, fmt.Errorf("configuring HTTP/2: %w", err)
	}
	return s, nil
}

// Serve serves what is handed off until Shutdown or Close; addr is the
// listener's address (what net/http reports as local).
func (s *Server) Serve(addr net.Addr) error {
	s.queue.addr = addr
	return s.std.Serve(s.queue)
}

// Shutdown closes what is idle and waits for the rest (net/http's
// Shutdown: GOAWAY on HTTP/2 connections) until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error { return s.std.Shutdown(ctx) }

// Close closes every connection it serves now.
func (s *Server) Close() error { return s.std.Close() }

// TakesUpgrades reports whether the listener hands h2c upgrades here.
func (s *Server) TakesUpgrades() bool { return s.std.Handler != nil }

// ServeH2 serves an HTTP/2 connection with prior knowledge through
// x/net/http2, which reads the preface from the buffered reader first.
func (s *Server) ServeH2(c *conn.Client) {
	c.DL.Clear(c.Conn)
	opts := &http2.ServeConnOpts{Handler: s.h2h, BaseConfig: s.std}
	if c.Peer != "" {
		opts.Context = withPeer(context.Background(), c.Peer)
	}
	s.h2.ServeConn(&conn.Buffered{Conn: c.Conn, R: c.BR}, opts)
	// ServeConn may return while its frame reader still reads through
	// the buffers: they are not returned to the pool.
	c.BR, c.RawBR = nil, nil
}

// HandOff gives the connection to net/http, with head (a request head
// already read, or nil) and what is buffered replayed in front of the
// rest. The connection stays active until net/http closes it, and
// HandOff waits until then, so that the listener's Shutdown waits for it
// (hijacked and upgraded ones included) and Close closes it.
func (s *Server) HandOff(c *conn.Client, head []byte) {
	if !c.Activate() && !c.Active() {
		return // closed by Shutdown
	}
	pre := bytes.NewBuffer(head)
	b, _ := c.BR.Peek(c.BR.Buffered())
	pre.Write(b)
	c.DL.Clear(c.Conn)
	hc := &handedConn{Buffered: conn.Buffered{Conn: c.Conn, R: io.MultiReader(pre, c.Conn)}, closed: make(chan struct{}), peer: c.Peer}
	if !s.queue.deliver(hc) {
		return
	}
	c.HandedOff = true
	<-hc.closed
}

// handedConn is a connection net/http owns; Close tells HandOff.
type handedConn struct {
	conn.Buffered
	once   sync.Once
	closed chan struct{}
	peer   string // the service its mutual-TLS certificate proves ("": none)
}

// peerKey keys, in a request's context, the calling service a
// mutual-TLS connection's certificate proves.
type peerKey struct{}

func withPeer(ctx context.Context, peer string) context.Context {
	return context.WithValue(ctx, peerKey{}, peer)
}

// peerOf is the service the certificate of r's connection proves ("":
// not mutual TLS).
func peerOf(r *http.Request) string {
	p, _ := r.Context().Value(peerKey{}).(string)
	return p
}

func (c *handedConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Buffered.Close()
}

// noUpgradeWithBody drops an h2c upgrade offered with a request body, so
// that net/http's h2c handler serves the request as HTTP/1.1 instead of
// reading the whole body into memory first.
func noUpgradeWithBody(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 && strings.EqualFold(r.Header.Get("Upgrade"), "h2c") {
			r.Header.Del("Upgrade")
		}
		h.ServeHTTP(w, r)
	})
}

// connQueue is a net.Listener fed with connections a listener hands off,
// so that a net/http server can serve them.
type connQueue struct {
	addr net.Addr
	ch   chan net.Conn
	once sync.Once
	done chan struct{}
}

func newConnQueue() *connQueue {
	return &connQueue{ch: make(chan net.Conn), done: make(chan struct{})}
}

// deliver passes conn to the net/http server; false once it is closed.
func (q *connQueue) deliver(conn net.Conn) bool {
	select {
	case q.ch <- conn:
		return true
	case <-q.done:
		return false
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.done) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return q.addr }

// upgraded passes requests to h, turning one that was upgraded to h2c
// (the h2c handler calls h with it once the connection speaks HTTP/2)
// into the HTTP/2 request it now is, without its upgrade fields.
func upgraded(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 1 && strings.EqualFold(r.Header.Get("Upgrade"), "h2c") {
			r.Header.Del("Upgrade")
			r.Header.Del("Http2-Settings")
			r.Header.Del("Connection")
			r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/2.0", 2, 0
		}
		h.ServeHTTP(w, r)
	})
}
