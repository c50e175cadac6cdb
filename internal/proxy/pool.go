package proxy

import (
	"bufio"
	"io"
	"net"
	"sync"
	"time"

	"github.com/weftmesh/weft/internal/endpoint"
)

// upConn is one connection to an upstream, with its buffers.
type upConn struct {
	net.Conn
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time
	reused    bool // it served a request before this one
	dl        lazyDeadline
	sock      *sockIO // the socket's own reads and writes (nil: through Conn)
}

// Buffer sizes of the fast path. A head line longer than the read buffer
// is refused (431), so it is sized for large cookies.
const (
	readBufSize  = 16 << 10
	writeBufSize = 16 << 10
)

var (
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufSize) }}
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, writeBufSize) }}
)

func getReader(c io.Reader) *bufio.Reader {
	br := readers.Get().(*bufio.Reader)
	br.Reset(c)
	return br
}

func getWriter(c io.Writer) *bufio.Writer {
	bw := writers.Get().(*bufio.Writer)
	bw.Reset(c)
	return bw
}

func putBuffers(br *bufio.Reader, bw *bufio.Writer) {
	if br != nil {
		br.Reset(nil)
		readers.Put(br)
	}
	if bw != nil {
		bw.Reset(nil)
		writers.Put(bw)
	}
}

func (u *upConn) close() {
	u.Conn.Close()
	putBuffers(u.br, u.bw)
	u.br, u.bw = nil, nil
}

// h1Slot holds each endpoint's HTTP/1.1 pool.
var h1Slot = endpoint.NewSlot(func(e *endpoint.Endpoint) endpoint.Local { return &pool{addr: e.Address} })

// h1Pool is the HTTP/1.1 connection pool of ep.
func h1Pool(ep *Endpoint) *pool { return ep.Local(h1Slot).(*pool) }

// pool keeps idle keep-alive connections to one address, newest first.
type pool struct {
	addr string
	mu   sync.Mutex
	idle []*upConn
}

const (
	maxIdlePerPool = 512
	idleTimeout    = 90 * time.Second
	dialTimeout    = 2 * time.Second
	// probeAfter: a connection idle longer than this is checked for a
	// close by the peer before it is used (apps often close idle
	// keep-alive connections after a few seconds).
	probeAfter = time.Second
)

// dialers: TCP keep-alive probes find dead peers across the network; on
// loopback (the local app) they would only cost four system calls per
// connection. Go sets TCP_NODELAY on every TCP connection already.
var (
	dialer         = &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	loopbackDialer = &net.Dialer{Timeout: dialTimeout, KeepAlive: -1}
)

// dial connects to addr with the dialer that suits it. Not
// Dialer.DialTCP with an address parsed once: with no local address it
// binds the socket to 0.0.0.0:0 before connecting, and bind's search for a
// port does not reuse TIME_WAIT ports as connect's does. Under connection
// churn (bench/tcpbench) that made a new connection cost 1.9× the CPU per
// hop, more than the resolver's parsing it saves.
func dial(addr string) (net.Conn, error) {
	if IsLoopback(addr) {
		return loopbackDialer.Dial("tcp", addr)
	}
	return dialer.Dial("tcp", addr)
}

// IsLoopback reports whether a host:port names this host's loopback.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	return host == "localhost"
}

// get returns an idle connection that still looks open, or dials (always
// dials when fresh). now is the request's start: close enough, and free.
func (p *pool) get(fresh bool, now time.Time) (*upConn, error) {
	for !fresh {
		p.mu.Lock()
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			break
		}
		c := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		idle := now.Sub(c.idleSince)
		if idle > idleTimeout || idle > probeAfter && !c.alive() {
			c.close()
			continue
		}
		c.reused = true
		return c, nil
	}
	conn, err := dial(p.addr)
	if err != nil {
		return nil, err
	}
	uc := &upConn{Conn: conn}
	uc.sock, uc.br, uc.bw = buffered(conn)
	return uc, nil
}

// buffered returns pooled buffers for c, over the socket's own reads and
// writes when c is plain TCP (sock is nil otherwise).
func buffered(c net.Conn) (sock *sockIO, br *bufio.Reader, bw *bufio.Writer) {
	var rw io.ReadWriter = c
	if sock = newSockIO(c); sock != nil {
		rw = sock
	}
	return sock, getReader(rw), getWriter(rw)
}

// alive reports whether the peer has not closed the connection: a read
// that would block means nothing (no end of stream, no stray bytes) is
// waiting. (Every pooled connection is TCP, so it has sock.)
func (c *upConn) alive() bool {
	return c.sock == nil || c.sock.peekNow(c.br) == errWouldBlock
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
	}
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
