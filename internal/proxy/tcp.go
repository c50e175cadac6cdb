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
	Log         *slog.Logger  // connections refused for want of an instance are logged here
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
		if conn, err = dial(ep.Address); err != nil {
			ep.connectFailed()
			return &MeshError{Status: http.StatusBadGateway, Reason: ReasonConnectFailed, Service: c.Service, Instance: ep.Instance,
				Message: fmt.Sprintf("%s at %s: %v", ep.Instance, ep.Address, err)}, true
		}
		ep.connected()
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

// busy reports whether a byte moved, either way, within the idle timeout.
func (a *activity) busy() bool { return time.Since(time.Unix(0, a.last.Load())) < a.idle }

// abort ends both sides: the other direction's copy ends too. It does
// not wait for that copy, which may hold a socket inside its session
// (closeNow).
func (a *activity) abort(client, up net.Conn) {
	closeNow(client)
	closeNow(up)
}

// idleDeadline keeps a read or a write deadline at the pair's last
// activity plus the idle timeout. It moves the deadline only when it has
// fallen behind by more than an eighth of the timeout, or has passed: a
// timer update per read would cost more than the copy.
type idleDeadline struct {
	at  time.Time
	set func(time.Time) error
}

func (d *idleDeadline) update(a *activity) {
	if a.idle <= 0 {
		return
	}
	want := time.Unix(0, a.last.Load()).Add(a.idle)
	if d.at.IsZero() || d.at.Before(want.Add(-a.idle/8)) || !d.at.After(time.Now()) {
		d.at = want
		d.set(want)
	}
}

// retry reports whether err is an idle deadline that fired while the pair
// was not idle (the other direction moved bytes meanwhile): the copy goes
// on with a new deadline. A deadline that fired on an idle pair marks it
// idled out.
func (a *activity) retry(err error) bool {
	if a.idle <= 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	if a.busy() {
		return true
	}
	a.idledOut.Store(true)
	return false
}

// tcpBufSize is the copy buffer of one direction.
const tcpBufSize = 32 << 10

var tcpBufs = sync.Pool{New: func() any { b := make([]byte, tcpBufSize); return &b }}

// copy moves bytes from src to dst until src ends, then half-closes dst.
// Reads and writes both have idle deadlines, so a pair ends when no byte
// moved either way for the idle timeout, even while one side has stopped
// reading. An error other than the end of stream closes both sides.
func (a *activity) copy(dst, src net.Conn, count func(int), client, up net.Conn) {
	bp := tcpBufs.Get().(*[]byte)
	defer tcpBufs.Put(bp)
	buf := *bp
	rd := idleDeadline{set: src.SetReadDeadline}
	wd := idleDeadline{set: dst.SetWriteDeadline}
	var w io.Writer = dst
	if s := newSockIO(dst); s != nil {
		w = s
	}
	if s := newSockIO(src); s != nil {
		a.copySession(w, s, buf, &rd, &wd, count, dst, client, up)
		return
	}
	for {
		rd.update(a)
		n, err := src.Read(buf)
		if n > 0 {
			a.touch()
			if werr := a.write(w, &wd, buf[:n]); werr != nil {
				a.abort(client, up)
				return
			}
			count(n)
		}
		switch {
		case err == nil:
			continue
		case errors.Is(err, io.EOF):
			closeWrite(dst)
			return
		}
		if a.retry(err) {
			continue
		}
		a.abort(client, up) // idle, reset, or closed by the other direction
		return
	}
}

// write writes all of p, with an idle deadline: a peer that stops reading
// ends the pair once nothing has moved either way for the idle timeout.
func (a *activity) write(dst io.Writer, wd *idleDeadline, p []byte) error {
	for len(p) > 0 {
		wd.update(a)
		n, err := dst.Write(p)
		if n > 0 {
			a.touch()
			p = p[n:]
		}
		if err == nil {
			continue
		}
		if !a.retry(err) {
			return err
		}
	}
	return nil
}

// copySession is copy for a plain TCP source: its reads are the socket's
// own system calls, made inside one wait on the socket
// (syscall.RawConn.Read), so they skip the runtime's system-call
// bookkeeping (see rawio.go). Unlike the HTTP session it reads again after
// every read: a short read does not say the peer's end of stream is not
// waiting, and a half-close must reach the other side at once.
func (a *activity) copySession(w io.Writer, src *sockIO, buf []byte, rd, wd *idleDeadline, count func(int), dst, client, up net.Conn) {
	var eof bool
	var ioErr error
	step := func(fd uintptr) bool {
		src.fd = int(fd)
		defer func() { src.fd = -1 }()
		for {
			n, err := src.Read(buf)
			switch {
			case err == errWouldBlock:
				rd.update(a)
				return false
			case err == io.EOF:
				eof = true
				return true
			case err != nil:
				ioErr = err
				return true
			}
			a.touch()
			if ioErr = a.write(w, wd, buf[:n]); ioErr != nil {
				return true
			}
			count(n)
		}
	}
	for {
		rd.update(a)
		err := src.rc.Read(step)
		switch {
		case eof:
			closeWrite(dst)
			return
		case ioErr == nil && a.retry(err):
			continue
		}
		a.abort(client, up) // idle, reset, or closed by the other direction
		return
	}
}
