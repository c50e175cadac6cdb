package proxy

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// TCPProxy forwards whole connections as bytes, for services that do not
// speak HTTP (legacy RPC, databases) and for traffic the listener could not
// identify. A connection is balanced as one unit:
//
//	pick     -> an instance of the cluster, round robin over those in rotation
//	dial     -> a connect failure ejects the instance and moves to the next
//	pipe     -> bytes both ways; each side's end of stream half-closes the other
//	idle     -> no byte either way for IdleTimeout closes both sides
type TCPProxy struct {
	IdleTimeout time.Duration // 0: none
	Log         *slog.Logger
}

// DefaultTCPIdleTimeout is Envoy's tcp_proxy default.
const DefaultTCPIdleTimeout = time.Hour

// Forward serves one client connection: buffered holds the bytes already
// read from it (by protocol detection). It returns when both directions
// have ended.
func (p *TCPProxy) Forward(client net.Conn, buffered []byte, c *Cluster) {
	log := p.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := c.metrics.tcpMetrics()
	up, ep, merr := p.dial(c)
	if merr != nil {
		c.metrics.meshError(merr.Reason)
		log.Warn("TCP connection refused: "+merr.Message, "service", c.Service, "reason", merr.Reason)
		return
	}
	defer up.Close()
	m.opened()
	defer m.closed()
	if idle := p.pipe(client, buffered, up, m); idle {
		m.idleTimeout()
		log.Debug("TCP connection idle, closed", "service", c.Service, "instance", ep.Instance, "after", p.IdleTimeout)
	}
}

// dial connects to an instance of c, moving to another one when a connect
// fails, as the HTTP path does.
func (p *TCPProxy) dial(c *Cluster) (net.Conn, *Endpoint, *MeshError) {
	var conn net.Conn
	var picked *Endpoint
	merr := c.tryEndpoints(func(ep *Endpoint, _ int) (*MeshError, bool) {
		var err error
		if conn, err = dialer.Dial("tcp", ep.Address); err != nil {
			ep.connectFailed()
			return &MeshError{Status: http.StatusBadGateway, Reason: ReasonConnectFailed, Service: c.Service, Instance: ep.Instance,
				Message: fmt.Sprintf("%s at %s: %v", ep.Instance, ep.Address, err)}, true
		}
		ep.connected()
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetNoDelay(true)
		}
		picked = ep
		return nil, false
	})
	return conn, picked, merr
}

// pipe copies both ways until both directions end, half-closing each
// side's write half when the other side's stream ends. It reports whether
// it stopped because the connection idled out.
func (p *TCPProxy) pipe(client net.Conn, buffered []byte, up net.Conn, m *tcpMetrics) (idle bool) {
	act := &activity{idle: p.IdleTimeout}
	act.touch()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if len(buffered) > 0 {
			if _, err := up.Write(buffered); err != nil {
				act.abort(client, up)
				return
			}
			m.received(len(buffered))
		}
		act.copy(up, client, m.received, client, up)
	}()
	act.copy(client, up, m.sent, client, up)
	wg.Wait()
	return act.idledOut.Load()
}

// activity is what both directions of one piped connection share: when a
// byte last moved, and whether the pair was closed for idling.
type activity struct {
	idle     time.Duration
	last     atomic.Int64 // unix nanoseconds
	idledOut atomic.Bool
}

func (a *activity) touch() { a.last.Store(time.Now().UnixNano()) }

// abort closes both sides: the other direction's copy ends too.
func (a *activity) abort(client, up net.Conn) {
	client.Close()
	up.Close()
}

// tcpBufSize is the copy buffer of one direction.
const tcpBufSize = 32 << 10

var tcpBufs = sync.Pool{New: func() any { b := make([]byte, tcpBufSize); return &b }}

// copy moves bytes from src to dst until src ends, then half-closes dst.
// A read that waits longer than the idle timeout ends the pair unless the
// other direction moved bytes meanwhile. An error other than the end of
// stream closes both sides.
func (a *activity) copy(dst, src net.Conn, count func(int), client, up net.Conn) {
	bp := tcpBufs.Get().(*[]byte)
	defer tcpBufs.Put(bp)
	buf := *bp
	var dl lazyDeadline
	for {
		if a.idle > 0 {
			dl.set(src, time.Unix(0, a.last.Load()), a.idle, a.idle/8)
		}
		n, err := src.Read(buf)
		if n > 0 {
			a.touch()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				a.abort(client, up)
				return
			}
			count(n)
		}
		if err == nil {
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) && a.idle > 0 {
			if time.Since(time.Unix(0, a.last.Load())) < a.idle {
				continue // the other direction is busy: the pair is not idle
			}
			a.idledOut.Store(true)
			a.abort(client, up)
			return
		}
		if errors.Is(err, io.EOF) {
			closeWrite(dst)
			return
		}
		a.abort(client, up) // reset, or closed by the other direction
		return
	}
}
