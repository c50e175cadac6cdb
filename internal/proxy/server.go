package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"github.com/weftmesh/weft/internal/proxy/http2"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/weftmesh/weft/internal/proxy/conn"
	"github.com/weftmesh/weft/internal/proxy/http1"
	"github.com/weftmesh/weft/internal/proxy/plan"
	"github.com/weftmesh/weft/internal/proxy/stdhttp"
	"github.com/weftmesh/weft/internal/proxy/tcp"
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
	Resolve http1.Resolve
	// Connect allows CONNECT tunnels (outbound only).
	Connect bool
	// H2 serves HTTP/2 connections (prior knowledge); nil refuses them.
	H2 http.Handler
	// H2Frames, when set, routes HTTP/2 connections with prior knowledge
	// on plain TCP through Weft's own HTTP/2 engine (package http2), which
	// forwards frames to instances that speak HTTP/2, instead of H2.
	H2Frames http2.Route
	// H1, when set, serves HTTP/1 connections through net/http instead of
	// the fast path (an h2c app's inbound translates them to HTTP/2).
	H1 http.Handler
	// Opaque, when set, is where connections that are not HTTP go as bytes:
	// it returns the destination (nil: none, the connection closes) and
	// whether the destination is declared TCP, which skips detection.
	Opaque func() (dest *plan.Cluster, declared bool)
	// TCP forwards connections as bytes: those Opaque sends it, and
	// CONNECT tunnels.
	TCP *tcp.Proxy
	// SNI, when set, routes TLS connections by the server name of their
	// ClientHello and passes them through (the outbound listener, which
	// has no other destination for them).
	SNI func(serverName string) (*plan.Cluster, *plan.MeshError)
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
	Metrics     *plan.Metrics
	Log         *slog.Logger

	fast     *http1.Engine   // the HTTP/1.1 fast path
	frames   *http2.Engine   // Weft's HTTP/2 engine, when H2Frames is set
	std      *stdhttp.Server // net/http, for connections handed off (H1, h2c upgrade, HTTP/2 the engine does not take)
	mu       sync.Mutex
	ln       net.Listener
	conns    map[*conn.Client]struct{}
	shutdown atomic.Bool
	wg       sync.WaitGroup
}

func (s *Server) headTimeout() time.Duration {
	if s.HeadTimeout > 0 {
		return s.HeadTimeout
	}
	return DefaultHeadTimeout
}

// DefaultHeadTimeout is Server.HeadTimeout's default.
const DefaultHeadTimeout = 30 * time.Second

// Serve accepts connections until the listener is closed.
func (s *Server) Serve(ln net.Listener) error {
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	s.mu.Lock()
	s.ln = ln
	s.conns = map[*conn.Client]struct{}{}
	std, err := stdhttp.NewServer(stdhttp.ServerConfig{Addr: ln.Addr(), H1: s.H1, H2: s.H2,
		HeadTimeout: s.headTimeout(), IdleTimeout: conn.ClientIdleTimeout, Log: s.Log})
	if err != nil {
		s.mu.Unlock()
		return err
	}
	s.std = std
	if s.H2Frames != nil {
		s.frames = http2.New(http2.Config{Route: s.H2Frames, HeadTimeout: s.headTimeout(), ShuttingDown: s.shutdown.Load})
	}
	fast := http1.Config{Resolve: s.Resolve, Connect: s.Connect, TCP: s.TCP, HeadTimeout: s.headTimeout(),
		Metrics: s.Metrics, ShuttingDown: s.shutdown.Load}
	if s.H2 != nil {
		fast.ServeH2 = s.serveH2
	}
	if std.TakesUpgrades() {
		fast.HandOff = std.HandOff
	}
	s.fast = http1.New(fast)
	s.wg.Add(1)
	go func() { defer s.wg.Done(); std.Serve() }()
	s.mu.Unlock()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
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
		// One allocation per connection: the fast path's state, with the
		// engine-neutral connection inside it for the other engines.
		cc := &http1.Conn{Client: conn.Client{Conn: nc, Raw: nc}}
		if !s.track(&cc.Client, true) {
			nc.Close()
			continue
		}
		s.wg.Add(1)
		go s.serveConn(cc)
	}
}

func (s *Server) track(cc *conn.Client, add bool) bool {
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
			if cc.CloseIfIdle() {
				cc.Raw.Close()
			} else {
				cc.GoAway() // HTTP/2: GOAWAY once; it closes when its streams are done
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
		cc.MarkClosed()
		conn.CloseNow(cc.Raw)
	}
	std := s.std
	s.mu.Unlock()
	if std != nil {
		std.Close()
	}
}

// serveConn serves one accepted connection: detection, then the engine
// it takes.
func (s *Server) serveConn(fc *http1.Conn) {
	defer s.wg.Done()
	cc := &fc.Client
	defer s.track(cc, false)
	defer func() {
		if !cc.HandedOff {
			cc.Conn.Close()
		}
	}()
	cc.Sock, cc.BR, cc.BW = conn.Buffers(cc.Conn)
	defer func() {
		conn.PutBuffers(cc.BR, cc.BW)
		if cc.RawBR != nil && cc.RawBR != cc.BR {
			conn.PutBuffers(cc.RawBR, nil)
		}
	}()
	if host, _, err := net.SplitHostPort(cc.Conn.RemoteAddr().String()); err == nil {
		cc.IP = []byte(host)
	}
	cc.Idle()
	if !s.detect(cc) {
		return
	}
	if s.H1 != nil && !conn.IsH2Preface(cc.BR) {
		s.std.HandOff(cc, nil)
		return
	}
	s.fast.Serve(fc)
}

// serveH2 serves a connection that opened with the HTTP/2 preface: Weft's
// engine on plain TCP where the listener has one, else x/net/http2.
func (s *Server) serveH2(cc *conn.Client) {
	if s.frames != nil && cc.Sock != nil {
		s.frames.Serve(cc)
		return
	}
	s.std.ServeH2(cc)
}
