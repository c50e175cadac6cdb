package conn

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

// ClientIdleTimeout is how long a client connection may stay silent
// between requests (or, on HTTP/2, without an open stream).
const ClientIdleTimeout = 5 * time.Minute

// Client connection states, for a shutdown that closes only idle ones.
const (
	stateActive int32 = iota
	stateIdle
	stateClosed
)

// Client is an accepted client connection as the listener hands it to an
// engine: the connection, its buffers, the client's address, whether it
// is serving something, and its read deadline. Engines keep their own
// per-connection state beside it (the HTTP/1.1 fast path embeds it).
type Client struct {
	// Conn is what the connection is read and written through (the TLS
	// connection, once terminated).
	Conn net.Conn
	// Raw is the accepted connection, which Shutdown and Close close
	// from other goroutines.
	Raw net.Conn
	// RawBR, under TLS, is the reader of Raw, feeding the TLS layer.
	RawBR *bufio.Reader
	// BR and BW buffer Conn (pooled: see Buffers).
	BR *bufio.Reader
	BW *bufio.Writer
	// IP is the client's address, for X-Forwarded-For.
	IP []byte
	// DL is Conn's read deadline.
	DL Deadline
	// Sock reads and writes the socket directly (nil under TLS).
	Sock *Sock
	// HandedOff: net/http owns the connection now; the listener must not
	// close it.
	HandedOff bool
	// Peer is the service of the peer sidecar at the other end, as its
	// certificate proves it ("": not a mutual-TLS connection).
	Peer string

	state  atomic.Int32
	goAway atomic.Pointer[func()]
}

// Activate marks an idle connection active (it serves something now);
// false when it is not idle (closed by a shutdown).
func (c *Client) Activate() bool { return c.state.CompareAndSwap(stateIdle, stateActive) }

// Active reports whether the connection serves something.
func (c *Client) Active() bool { return c.state.Load() == stateActive }

// Idle marks the connection idle: a shutdown may close it.
func (c *Client) Idle() { c.state.Store(stateIdle) }

// CloseIfIdle marks an idle connection closed and reports whether it was
// idle (the caller then closes Raw).
func (c *Client) CloseIfIdle() bool { return c.state.CompareAndSwap(stateIdle, stateClosed) }

// MarkClosed marks the connection closed, whatever it was doing.
func (c *Client) MarkClosed() { c.state.Store(stateClosed) }

// SetGoAway registers how an engine that multiplexes the connection
// (HTTP/2) ends it gracefully: a shutdown calls f instead of closing.
func (c *Client) SetGoAway(f func()) { c.goAway.Store(&f) }

// GoAway calls the function given to SetGoAway, if any, and reports
// whether there was one.
func (c *Client) GoAway() bool {
	f := c.goAway.Load()
	if f == nil {
		return false
	}
	(*f)()
	return true
}

// Deadline sets a connection's read deadline only when the one in force
// is not close enough to what is asked: a timer update per request is a
// measurable share of the fast path's CPU.
type Deadline struct{ at time.Time } // zero: none in force

// Set asks for a deadline at now+after, accepting one up to slack earlier.
func (d *Deadline) Set(c net.Conn, now time.Time, after, slack time.Duration) {
	want := now.Add(after)
	if d.at.IsZero() || d.at.After(want) || d.at.Before(want.Add(-slack)) {
		d.at = want
		c.SetReadDeadline(want)
	}
}

// Clear removes the deadline.
func (d *Deadline) Clear(c net.Conn) {
	if !d.at.IsZero() {
		d.at = time.Time{}
		c.SetReadDeadline(time.Time{})
	}
}

// Buffered is a connection read through R (a reader holding bytes
// already read from it, then the rest).
type Buffered struct {
	net.Conn
	R io.Reader
}

// Read reads from R.
func (c *Buffered) Read(p []byte) (int, error) { return c.R.Read(p) }

// H2Preface starts every HTTP/2 connection with prior knowledge.
var H2Preface = []byte(http2.ClientPreface)

// IsH2Preface reports whether the buffered start of the connection is the
// HTTP/2 preface. It reads more only while what it has matches, so an
// HTTP/1 request (which differs by its second byte at the latest) is never
// delayed.
func IsH2Preface(br *bufio.Reader) bool {
	for n := 1; n <= len(H2Preface); n++ {
		b, err := br.Peek(n)
		if err != nil || !bytes.Equal(b, H2Preface[:n]) {
			return false
		}
	}
	return true
}

// CloseNow ends a connection at once without waiting. Closing a socket
// waits until nothing uses it, and a session (the HTTP/1.1 fast path's)
// uses it for as long as an exchange with an upstream takes. So the
// connection's write half is shut first, which the peer sees at once, and
// the close runs on its own: it wakes whatever waits on the socket with an
// error at once, and releases the descriptor when the session lets go of
// it. (Not a read shutdown: a copy would take that for the peer's end of
// stream.)
func CloseNow(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
		go tc.Close()
		return
	}
	c.Close()
}
