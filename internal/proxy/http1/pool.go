package http1

import (
	"bufio"
	"net"
	"sync"
	"time"

	"github.com/weftmesh/weft/internal/endpoint"
	"github.com/weftmesh/weft/internal/proxy/conn"
	"github.com/weftmesh/weft/internal/proxy/plan"
)

// upConn is one connection to an upstream, with its buffers.
type upConn struct {
	net.Conn
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time
	reused    bool // it served a request before this one
	dl        conn.Deadline
	sock      *conn.Sock         // the socket's own reads and writes (nil: through Conn)
	ep        *endpoint.Endpoint // counts the connection open until close
}

func (u *upConn) close() {
	u.Conn.Close()
	conn.PutBuffers(u.br, u.bw)
	u.br, u.bw = nil, nil
	if u.ep != nil {
		u.ep.ReleaseConn()
		u.ep = nil
	}
}

// h1Slot holds each endpoint's HTTP/1.1 pool.
var h1Slot = endpoint.NewSlot(func(e *endpoint.Endpoint) endpoint.Local { return &pool{ep: e, addr: e.Address} })

// h1Pool is the HTTP/1.1 connection pool of ep.
func h1Pool(ep *plan.Endpoint) *pool { return ep.Local(h1Slot).(*pool) }

// pool keeps idle keep-alive connections to one address, newest first.
type pool struct {
	ep   *endpoint.Endpoint
	addr string
	mu   sync.Mutex
	idle []*upConn
}

const (
	maxIdlePerPool = 512
	idleTimeout    = 90 * time.Second
	// ProbeAfter: a connection idle longer than this is checked for a
	// close by the peer before it is used (apps often close idle
	// keep-alive connections after a few seconds).
	ProbeAfter = time.Second
)

// get returns an idle connection that still looks open, or dials (always
// dials when fresh). now is the request's start: close enough, and free.
// With lim.Max connections open, it waits for one to go idle or close
// (endpoint.AwaitConn); an error wrapping endpoint.ErrConnLimit says it
// could not.
func (p *pool) get(fresh bool, now time.Time, lim endpoint.ConnLimit) (*upConn, error) {
	if !fresh {
		if c := p.idleConn(now); c != nil {
			return c, nil
		}
	}
	if !p.ep.TakeConn(lim.Max) {
		var c *upConn
		err := p.ep.AwaitConn(lim, func() bool {
			if c = p.idleConn(time.Now()); c != nil {
				return true
			}
			return p.ep.TakeConn(lim.Max)
		})
		if err != nil || c != nil {
			return c, err
		}
	}
	nc, err := conn.DialPeer(p.addr, p.ep.TLS(), conn.ALPNMeshHTTP1)
	if err != nil {
		p.ep.ReleaseConn()
		return nil, err
	}
	uc := &upConn{Conn: nc, ep: p.ep}
	uc.sock, uc.br, uc.bw = conn.Buffers(nc)
	return uc, nil
}

// idleConn takes the newest idle connection that still looks open, or nil.
func (p *pool) idleConn(now time.Time) *upConn {
	for {
		p.mu.Lock()
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			return nil
		}
		c := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		idle := now.Sub(c.idleSince)
		if idle > idleTimeout || idle > ProbeAfter && !c.alive() {
			c.close()
			continue
		}
		c.reused = true
		return c
	}
}

// alive reports whether the peer has not closed the connection: a read
// that would block means nothing (no end of stream, no stray bytes) is
// waiting. (Every pooled connection is TCP, so it has sock.)
func (u *upConn) alive() bool {
	return u.sock == nil || u.sock.PeekNow(u.br) == conn.ErrWouldBlock
}

// put returns a connection for reuse; now is the request's start (idle
// times come out a little long, which only makes probing more careful).
func (p *pool) put(c *upConn, now time.Time) {
	c.idleSince = now
	p.mu.Lock()
	if len(p.idle) < maxIdlePerPool {
		p.idle = append(p.idle, c)
		c = nil
	}
	p.mu.Unlock()
	if c != nil {
		c.close()
		return
	}
	p.ep.ConnFreed()
}

// CloseIdle closes every idle connection.
func (p *pool) CloseIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
}
