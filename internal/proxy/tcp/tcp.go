// Package tcp is the engine that forwards connections as bytes: services
// declared TCP, connections a listener could not identify, TLS passed
// through by its server name, and CONNECT tunnels. It uses the plan
// (package plan) for the decisions it makes, whether a connection may
// reach the app (inbound) and which instance it goes to, and the raw
// socket reads of package conn:
//
//	listener (detection) -> Proxy.Forward(client, buffered, cluster, peer)
//	   -> dial: Call.Next (inbound: authorized by peer, once; denied ->
//	      closed, no byte to the app), conn.DialPeer, connect failure ->
//	      the next instance
//	   -> Pipe: two copy loops, half-close, one idle timer per pair
package tcp

import (
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/internal/endpoint"
	"github.com/weftmesh/weft/internal/proxy/conn"
	"github.com/weftmesh/weft/internal/proxy/plan"
	"github.com/weftmesh/weft/internal/request"
)

// Proxy forwards whole connections as bytes, for services that do not
// speak HTTP (legacy RPC, databases) and for traffic the listener could not
// identify. A connection is balanced as one unit:
//
//	authorize-> inbound, by the peer's proven service (AuthorizationPolicy)
//	pick     -> an instance of the cluster, round robin over those in rotation
//	dial     -> a connect failure ejects the instance and moves to the next
//	pipe     -> bytes both ways; each side's end of stream half-closes the other
//	idle     -> no byte either way for IdleTimeout closes both sides
type Proxy struct {
	IdleTimeout time.Duration // 0: none
	Log         *slog.Logger  // connections refused for want of an instance are logged here
}

// DefaultIdleTimeout is Envoy's tcp_proxy default.
const DefaultIdleTimeout = time.Hour

// Forward serves one client connection: buffered holds the bytes
// already read from it (by protocol detection), and peer is the calling
// service that the peer sidecar's mutual TLS proved ("": none, a plain
// connection). The metrics and the record name peer as the source
// (inbound; "unknown" without one). An inbound's authorization decides
// on the connection before anything is dialled: a denied connection is
// closed without a byte reaching the app. It returns when both
// directions have ended.
func (p *Proxy) Forward(client net.Conn, buffered []byte, c *plan.Cluster, peer string) {
	log := p.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	start := time.Now()
	up, ep, merr := p.dial(c, plan.ConnFrom(peer))
	if merr != nil {
		c.Metrics().MeshError(merr.Reason)
		refused(log, c, peer, merr)
		c.RecordConn(plan.Conn{Start: start, End: time.Now(), Err: merr, Source: client.RemoteAddr(), Peer: peer})
		return
	}
	defer ep.ReleaseConn()
	defer up.Close()
	m := c.Metrics().TCPFrom(peer) // (a connection refused makes no series)
	m.Opened()
	defer m.Closed()
	idle, rx, tx := p.Pipe(client, buffered, up, m)
	if idle {
		m.IdleTimeout()
		log.Debug("TCP connection idle, closed", "service", c.Service, "instance", ep.Instance, "after", p.IdleTimeout)
	}
	c.RecordConn(plan.Conn{Start: start, End: time.Now(), Endpoint: ep, Received: rx, Sent: tx, Idle: idle, Source: client.RemoteAddr(), Peer: peer})
}

// refused logs a connection that reached no instance: denied by the
// inbound's authorization (with the decision and the peer), or for want
// of an instance.
func refused(log *slog.Logger, c *plan.Cluster, peer string, merr *plan.MeshError) {
	if merr.Reason != plan.ReasonDenied {
		log.Warn("TCP connection refused: "+merr.Message, "service", c.Service, "reason", merr.Reason)
		return
	}
	if peer == "" {
		peer = plan.UnknownSource
	}
	log.Warn("TCP connection denied, closed: "+merr.Message, "service", c.Service, "reason", merr.Reason,
		"peer", peer, "authorization", merr.Authorization())
}

// Dial connects to an instance of c through its plan: a connect failure
// moves to another instance, as on the HTTP path, and so does an instance
// at circuitBreaker.maxConnections (after waiting for one of its
// connections to close, as the plan's ConnLimit allows). A connection
// counts as an attempt until it is made (its latency is the connect
// time). The caller closes the connection and then calls the endpoint's
// ReleaseConn.
func (p *Proxy) Dial(c *plan.Cluster) (net.Conn, *plan.Endpoint, *plan.MeshError) {
	return p.dial(c, request.None)
}

// dial is Dial of a connection whose view is v (plan.ConnFrom): the
// plan's first step authorizes it on an inbound.
func (p *Proxy) dial(c *plan.Cluster, v request.View) (net.Conn, *plan.Endpoint, *plan.MeshError) {
	var k plan.Call
	k.Init(c, v, time.Time{})
	for ep := k.Next(); ep != nil; ep = k.Next() {
		if err := ep.AcquireConn(k.ConnLimit()); err != nil {
			k.Overflowed(err)
			continue
		}
		nc, err := conn.DialPeer(ep.Address, ep.TLS(), conn.ALPNMeshTCP)
		if err == nil {
			k.OK()
			return nc, ep, nil
		}
		ep.ReleaseConn()
		k.Failed(endpoint.ConnectFailed, err)
		if !k.Again(false) {
			break
		}
	}
	return nil, nil, k.Result()
}

// Pipe copies both ways until both directions end, half-closing each
// side's write half when the other side's stream ends. It reports whether
// it stopped because the connection idled out, and the bytes received
// from the client and sent back to it.
func (p *Proxy) Pipe(client net.Conn, buffered []byte, up net.Conn, m *plan.TCPMetrics) (idle bool, rx, tx int64) {
	act := &activity{idle: p.IdleTimeout}
	act.watch(client, up)
	defer act.stop()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		received := func(n int) { rx += int64(n); m.Received(n) }
		if len(buffered) > 0 {
			if _, err := up.Write(buffered); err != nil {
				act.abort(client, up)
				return
			}
			received(len(buffered))
		}
		act.copy(up, client, received, client, up)
	}()
	act.copy(client, up, func(n int) { tx += int64(n); m.Sent(n) }, client, up)
	wg.Wait() // (rx is the goroutine's until here)
	return act.idledOut.Load(), rx, tx
}

// activity is what both directions of one piped connection share: when a
// byte last moved, and the idle timer.
//
// One timer per pair enforces the idle timeout, rather than read and write
// deadlines on both sockets kept moving with the traffic: a connection
// then costs one timer instead of four. When the timer finds that no byte
// moved either way for the whole timeout, it marks the pair idled out and
// sets both sockets' deadlines in the past, which ends every read and
// write of both directions, blocked or not; otherwise it fires again when
// the timeout counted from the last byte would end.
type activity struct {
	idle     time.Duration
	last     atomic.Int64 // unix nanoseconds
	idledOut atomic.Bool
	timer    *time.Timer
	ended    atomic.Bool // the pair is done: the timer must not re-arm
}

func (a *activity) touch() { a.last.Store(time.Now().UnixNano()) }

// watch starts the idle timer (none when the timeout is 0).
func (a *activity) watch(client, up net.Conn) {
	a.touch()
	if a.idle <= 0 {
		return
	}
	// Armed far in the future, then set: the callback reads a.timer, which
	// must be assigned before the callback can run.
	a.timer = time.AfterFunc(time.Duration(math.MaxInt64), func() { a.expire(client, up) })
	a.timer.Reset(a.idle)
}

func (a *activity) expire(client, up net.Conn) {
	if a.ended.Load() {
		return
	}
	if left := a.idle - time.Since(time.Unix(0, a.last.Load())); left > 0 {
		a.timer.Reset(left)
		return
	}
	a.idledOut.Store(true)
	past := time.Unix(1, 0)
	client.SetDeadline(past)
	up.SetDeadline(past)
}

func (a *activity) stop() {
	a.ended.Store(true)
	if a.timer != nil {
		a.timer.Stop()
	}
}

// abort ends both sides: the other direction's copy ends too. It does
// not wait for that copy, which may hold a socket inside its session
// (closeNow).
func (a *activity) abort(client, up net.Conn) {
	conn.CloseNow(client)
	conn.CloseNow(up)
}

// tcpBufSize is the copy buffer of one direction.
const tcpBufSize = 32 << 10

var tcpBufs = sync.Pool{New: func() any { b := make([]byte, tcpBufSize); return &b }}

// copy moves bytes from src to dst until src ends, then half-closes dst.
// An error other than the end of stream (the idle timer's deadline
// included) closes both sides.
func (a *activity) copy(dst, src net.Conn, count func(int), client, up net.Conn) {
	bp := tcpBufs.Get().(*[]byte)
	defer tcpBufs.Put(bp)
	buf := *bp
	var w io.Writer = dst
	if s := conn.NewSock(dst); s != nil {
		w = s
	}
	if s := conn.NewSock(src); s != nil {
		a.copySession(w, s, buf, count, dst, client, up)
		return
	}
	for {
		n, err := src.Read(buf)
		if n > 0 {
			a.touch()
			if _, werr := w.Write(buf[:n]); werr != nil {
				a.abort(client, up)
				return
			}
			a.touch()
			count(n)
		}
		switch {
		case err == nil:
			continue
		case errors.Is(err, io.EOF):
			conn.CloseWrite(dst)
			return
		}
		a.abort(client, up) // idle, reset, or closed by the other direction
		return
	}
}

// copySession is copy for a plain TCP source: its reads are the socket's
// own system calls, made inside one wait on the socket
// (syscall.RawConn.Read), so they skip the runtime's system-call
// bookkeeping (see rawio.go). Unlike the HTTP session it reads again after
// every read: a short read does not say the peer's end of stream is not
// waiting, and a half-close must reach the other side at once.
func (a *activity) copySession(w io.Writer, src *conn.Sock, buf []byte, count func(int), dst, client, up net.Conn) {
	var eof bool
	step := func(fd uintptr) bool {
		src.FD = int(fd)
		defer func() { src.FD = -1 }()
		for {
			n, err := src.Read(buf)
			switch {
			case err == conn.ErrWouldBlock:
				return false
			case err == io.EOF:
				eof = true
				return true
			case err != nil:
				return true
			}
			a.touch()
			if _, err := w.Write(buf[:n]); err != nil {
				return true
			}
			a.touch()
			count(n)
		}
	}
	src.RC.Read(step)
	if eof {
		conn.CloseWrite(dst)
		return
	}
	a.abort(client, up) // idle, reset, or closed by the other direction
}
