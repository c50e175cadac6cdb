package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/weftmesh/weft/internal/proxy/conn"
	"github.com/weftmesh/weft/internal/proxy/http1"
	"github.com/weftmesh/weft/internal/proxy/http2"
	"github.com/weftmesh/weft/internal/proxy/plan"
	"github.com/weftmesh/weft/internal/proxy/stdhttp"
	"github.com/weftmesh/weft/internal/proxy/tcp"
)

// Listener serves one sidecar listener (outbound, inbound, an upstream
// port): it accepts connections, decides what each speaks (detect.go:
// TLS, HTTP/1, HTTP/2 or bytes) and hands it to the engine that serves
// it:
//
//	accept -> conn.Client -> detect
//	   bytes (declared TCP, not HTTP, silent)   -> tcp.Proxy
//	   TLS: terminate (Config.TLS) or pass by SNI -> detect again | tcp.Proxy
//	   HTTP/1                                   -> http1 (or stdhttp with Config.H1)
//	   HTTP/2 preface, Config.H2Frames          -> http2 (plain TCP or inside TLS)
//	   other HTTP/2, h2c upgrades               -> stdhttp (x/net/http2, net/http)
//
// Shutdown drains: it closes connections as they become idle, sends
// GOAWAY on HTTP/2 ones, and waits for the rest until its context ends.
type Listener struct {
	cfg      Config
	fast     *http1.Engine   // the HTTP/1.1 fast path
	frames   *http2.Engine   // Weft's HTTP/2 engine, when H2Frames is set
	std      *stdhttp.Server // net/http, for connections handed off (H1, h2c upgrade, HTTP/2 the engine does not take)
	mu       sync.Mutex
	ln       net.Listener
	conns    map[*conn.Client]struct{}
	shutdown atomic.Bool
	wg       sync.WaitGroup
}

// Config is what a listener serves and where it sends it. Resolve is
// needed wherever HTTP/1 may arrive (every listener but one whose
// connections are all declared TCP); every other field may be left zero.
type Config struct {
	// Name labels the listener in metrics: outbound, inbound, upstream/<service>.
	Name string
	// Resolve picks the cluster for a request (or answers a mesh error).
	Resolve http1.Resolve
	// Connect allows CONNECT tunnels (outbound only).
	Connect bool
	// H2 serves HTTP/2 connections (prior knowledge); nil refuses them.
	H2 http.Handler
	// H2Frames, when set, routes HTTP/2 connections with prior knowledge
	// (on plain TCP, or inside TLS the listener terminated) through Weft's
	// own HTTP/2 engine (package http2), which forwards frames to
	// instances that speak HTTP/2, instead of H2.
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
	// MeshTLS, when set, terminates the mutual TLS of peer sidecars: a
	// ClientHello offering a mesh ALPN protocol (conn.MeshALPN) is
	// handshaken with it, the peer's certificate gives the connection's
	// Peer, and the protocol it negotiated says what it carries. Other
	// TLS goes on as TLS sets, or as bytes.
	MeshTLS *tls.Config
	// Strict, when set and true, refuses every connection that is not
	// mutual TLS from a peer sidecar (the service's strict mode); it is
	// asked at each new connection, so a change of mode takes effect at
	// once.
	Strict func() bool
	// DetectTimeout is how long a listener with Opaque waits for a new
	// connection's first line before forwarding it as TCP (0: as long as
	// the client idle timeout).
	DetectTimeout time.Duration
	// HeadTimeout bounds the arrival of a request head (and of a TLS
	// handshake) once it has begun (0: DefaultHeadTimeout).
	HeadTimeout time.Duration
	// Metrics counts detections, tunnels and what the engines record
	// (nil: nothing is counted).
	Metrics *plan.Metrics
	// Log receives the listener's warnings (nil: discarded).
	Log *slog.Logger
}

// DefaultHeadTimeout is Config.HeadTimeout's default.
const DefaultHeadTimeout = 30 * time.Second

// NewListener checks cfg and builds a listener and its engines; Serve
// runs it.
func NewListener(cfg Config) (*Listener, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.HeadTimeout <= 0 {
		cfg.HeadTimeout = DefaultHeadTimeout
	}
	s := &Listener{cfg: cfg, conns: map[*conn.Client]struct{}{}}
	std, err := stdhttp.NewServer(stdhttp.ServerConfig{H1: cfg.H1, H2: cfg.H2,
		HeadTimeout: cfg.HeadTimeout, IdleTimeout: conn.ClientIdleTimeout, Log: cfg.Log})
	if err != nil {
		return nil, fmt.Errorf("listener %s: %w", cfg.Name, err)
	}
	s.std = std
	if cfg.H2Frames != nil {
		s.frames = http2.New(http2.Config{Route: cfg.H2Frames, HeadTimeout: cfg.HeadTimeout, ShuttingDown: s.shutdown.Load})
	}
	fast := http1.Config{Resolve: cfg.Resolve, Connect: cfg.Connect, TCP: cfg.TCP, HeadTimeout: cfg.HeadTimeout,
		Metrics: cfg.Metrics, ShuttingDown: s.shutdown.Load}
	if cfg.H2 != nil {
		fast.ServeH2 = s.serveH2
	}
	if std.TakesUpgrades() {
		fast.HandOff = std.HandOff
	}
	s.fast = http1.New(fast)
	return s, nil
}

// Serve accepts connections until the listener is closed.
func (s *Listener) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.ln != nil {
		s.mu.Unlock()
		return errors.New("proxy: listener " + s.cfg.Name + " is served already")
	}
	if s.shutdown.Load() {
		// Shutdown (or Close) came first: it found no listener to close.
		s.mu.Unlock()
		ln.Close()
		return http.ErrServerClosed
	}
	s.ln = ln
	std := s.std
	s.wg.Add(1)
	go func() { defer s.wg.Done(); std.Serve(ln.Addr()) }()
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

func (s *Listener) track(cc *conn.Client, add bool) bool {
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
func (s *Listener) Shutdown(ctx context.Context) error {
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
func (s *Listener) Close() {
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
func (s *Listener) serveConn(fc *http1.Conn) {
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
	if s.cfg.H1 != nil && !conn.IsH2Preface(cc.BR) {
		s.std.HandOff(cc, nil)
		return
	}
	s.fast.Serve(fc)
}

// serveH2 serves a connection that opened with the HTTP/2 preface: Weft's
// engine where the listener has one (on plain TCP, or inside the TLS it
// terminated: a peer sidecar's mutual TLS above all), else x/net/http2.
func (s *Listener) serveH2(cc *conn.Client) {
	if s.frames != nil {
		s.frames.Serve(cc)
		return
	}
	s.std.ServeH2(cc)
}
