package http2

import (
	"bytes"
	"net"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/weftmesh/weft/internal/proxy/conn"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Settings of Weft's own HTTP/2 engine (h2front.go, h2peer.go), the same
// on both sides of a hop.
const (
	// MaxStreams is the SETTINGS_MAX_CONCURRENT_STREAMS a client gets.
	MaxStreams = 256
	// h2StreamWindow is the receive window of a stream: the protocol's
	// default, so no SETTINGS_INITIAL_WINDOW_SIZE is sent. A hop buffers
	// at most this much per stream for a receiver slower than its sender.
	h2StreamWindow = 65535
	// h2ConnWindow is the receive window of a connection. Its credit is
	// returned as bytes arrive (streams' windows bound the buffering), so
	// one stalled stream cannot starve the others.
	h2ConnWindow = 1 << 20
	// h2StreamCredit: a stream's credit goes back to its sender once this
	// many of its bytes have been passed on (one WINDOW_UPDATE per 16 KiB,
	// not per frame). Below the window, so a sender never stalls on it.
	h2StreamCredit = 16 << 10
	// h2ConnCredit is the same for the connection.
	h2ConnCredit = h2ConnWindow / 4
	// h2MaxHeaderList bounds a decoded header list (SETTINGS_MAX_HEADER_LIST_SIZE).
	h2MaxHeaderList = 1 << 20
	// h2MaxUnwritten: a connection whose unwritten frames pass this (its
	// reader stopped reading) is closed. Flow control bounds DATA well
	// below it.
	h2MaxUnwritten = 16 << 20
	// h2MaxFrame is the frame size both sides may send (the protocol's
	// default; no SETTINGS_MAX_FRAME_SIZE is sent).
	h2MaxFrame = 16384
	// Backlog: while a connection's socket is full and this much waits
	// to be written, no more DATA is queued for it; the streams wait as
	// for window (their senders' credit waits with them) until the
	// backlog has gone out. So what a hop holds for a slow reader is
	// bounded by about twice this per connection (the buffer being
	// written and the one gathering) and a window per stream, whatever
	// windows the reader advertises.
	Backlog = 256 << 10
	// h2WriteTimeout ends a connection whose socket took nothing for this
	// long while frames waited.
	h2WriteTimeout = 30 * time.Second
	// CloseWait bounds how long a connection closed gracefully waits
	// for its peer's end after its own.
	CloseWait = time.Second
	// h2FlushAt: DATA queued for one connection in one go (a window
	// update that releases many streams) is written out every this many
	// bytes, not gathered whole.
	h2FlushAt = 64 << 10
	// h2KeepBuf: drain keeps a buffer it has written out for the next
	// batch while its capacity is at most this. DATA stops gathering at
	// Backlog while a drain writes, so a buffer grows to at most twice
	// that; dropping the ones above Backlog made every batch of a busy
	// TLS connection (which always drains) regrow its buffer from
	// nothing, a third of a provider's CPU on a gRPC stream.
	h2KeepBuf = 2 * Backlog
)

// h2Writer is the sending half of one HTTP/2 connection: frames are
// appended to a buffer under mu, and a flush writes what has gathered
// with one system call, so the frames of many streams leave together.
// A flush never blocks its caller: if the socket cannot take everything,
// the rest goes out from a goroutine started for that, and frames keep
// gathering behind it. So a peer that stops reading holds up no one but
// itself (flow control bounds what it can be sent).
//
// mu also guards the connection-level state of its owner (h2Client,
// h2Peer). Lock order: a stream's mu before a writer's mu, and never two
// writers' mu at once.
type h2Writer struct {
	mu       sync.Mutex
	conn     net.Conn
	rc       syscall.RawConn // nil: not plain TCP; every flush goes through drain
	fr       *http2.Framer   // writes into out
	enc      *hpack.Encoder  // into hbuf
	hbuf     bytes.Buffer
	out      []byte // frames not yet written
	spare    []byte // drain's other buffer
	draining bool   // a goroutine is writing out
	closing  bool   // close once out has been written
	err      error  // sticky: the connection failed or was closed
	maxFrame int    // the peer's SETTINGS_MAX_FRAME_SIZE
	// wake, set by the owner, resumes the streams that waited for the
	// backlog (or for connection window); drain calls it without mu.
	wake    func(*h2Batch)
	onWrite func(uintptr) bool
	wn      int
	werr    syscall.Errno
}

// backlogged reports whether DATA should wait: the socket is full and
// Backlog waits behind it. Called under mu.
func (w *h2Writer) backlogged() bool { return w.draining && len(w.out) >= Backlog }

func (w *h2Writer) init(c net.Conn) {
	w.conn = c
	if tc, ok := c.(*net.TCPConn); ok {
		w.rc, _ = tc.SyscallConn()
	}
	w.fr = http2.NewFramer(w, nil)
	w.enc = hpack.NewEncoder(&w.hbuf)
	w.maxFrame = h2MaxFrame
	w.onWrite = w.writeSome
}

// Write appends a frame; the Framer calls it under mu.
func (w *h2Writer) Write(p []byte) (int, error) {
	if w.err == nil {
		w.out = append(w.out, p...)
		if len(w.out) > h2MaxUnwritten {
			w.fail(errTooMuchUnwritten)
		}
	}
	return len(p), nil
}

var errTooMuchUnwritten = &net.OpError{Op: "write", Net: "tcp", Err: syscall.ENOBUFS}

// fail marks the connection broken and closes it, which ends its reader.
// Called under mu.
func (w *h2Writer) fail(err error) {
	if w.err == nil {
		w.err = err
		w.out = nil
		conn.CloseNow(w.conn)
	}
}

// closeLocked closes the connection gracefully: once what is written has
// gone out, its write half is shut, and its reader gets a short while to
// see the peer's end (closing a socket with unread bytes would reset it,
// and the peer could lose the last frames). Called under mu.
func (w *h2Writer) closeLocked() {
	if w.err != nil || w.closing {
		return
	}
	w.closing = true
	w.flushLocked()
	if !w.draining {
		w.finishClose()
	}
}

func (w *h2Writer) finishClose() {
	if w.err == nil {
		w.err = errPeerDone
		w.out = nil
		if tc, ok := w.conn.(*net.TCPConn); ok {
			tc.CloseWrite()
			tc.SetReadDeadline(time.Now().Add(CloseWait))
			return
		}
		w.conn.Close()
	}
}

// headers writes a header block as HEADERS and CONTINUATION frames.
// Called under mu.
func (w *h2Writer) headers(id uint32, fields []hpack.HeaderField, end bool) {
	w.hbuf.Reset()
	for _, f := range fields {
		w.enc.WriteField(f)
	}
	block := w.hbuf.Bytes()
	first := true
	for first || len(block) > 0 {
		n := min(len(block), w.maxFrame)
		frag := block[:n]
		block = block[n:]
		if first {
			w.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: frag, EndStream: end, EndHeaders: len(block) == 0})
			first = false
		} else {
			w.fr.WriteContinuation(id, len(block) == 0, frag)
		}
	}
}

// flushLocked starts writing what has gathered. Called under mu.
func (w *h2Writer) flushLocked() {
	if w.draining || len(w.out) == 0 || w.err != nil {
		return
	}
	if w.rc != nil {
		w.wn, w.werr = 0, 0
		if err := w.rc.Write(w.onWrite); err != nil {
			w.fail(err)
			return
		}
		switch {
		case w.wn == len(w.out):
			if cap(w.out) > 256<<10 {
				w.out = nil
			} else {
				w.out = w.out[:0]
			}
			return
		case w.werr != 0 && w.werr != syscall.EAGAIN:
			w.fail(&net.OpError{Op: "write", Net: "tcp", Err: w.werr})
			return
		}
		w.out = w.out[:copy(w.out, w.out[w.wn:])]
	}
	w.draining = true
	go w.drain()
}

// writeSome writes as much of out as the socket takes now, with raw
// system calls on the non-blocking socket (as sockIO does).
func (w *h2Writer) writeSome(fd uintptr) bool {
	for w.wn < len(w.out) {
		r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&w.out[w.wn])), uintptr(len(w.out)-w.wn))
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			w.werr = e
			break
		}
		w.wn += int(r)
	}
	return true
}

// drain writes out, blocking, until nothing is left; then it resumes the
// streams that waited for the backlog, and finishes a graceful close.
func (w *h2Writer) drain() {
	var b h2Batch
	w.mu.Lock()
	for len(w.out) > 0 && w.err == nil {
		out := w.out
		w.out = w.spare[:0]
		w.spare = nil
		w.mu.Unlock()
		w.conn.SetWriteDeadline(time.Now().Add(h2WriteTimeout))
		_, err := w.conn.Write(out)
		if err != nil {
			w.mu.Lock()
			w.fail(err)
			break
		}
		if w.wake != nil {
			w.wake(&b) // queues more in out, under mu, if streams were waiting
			b.flushOthers(w)
		}
		w.mu.Lock()
		if cap(out) <= h2KeepBuf {
			w.spare = out[:0]
		}
	}
	w.draining = false
	w.conn.SetWriteDeadline(time.Time{})
	if w.closing {
		w.finishClose()
	}
	w.mu.Unlock()
	b.flushOthers(w)
}

// flush is flushLocked for callers that do not hold mu.
func (w *h2Writer) flush() {
	w.mu.Lock()
	w.flushLocked()
	w.mu.Unlock()
}

// h2Batch collects the writers one goroutine wrote to, so it flushes each
// once, when it has nothing more to read: the frames of everything it read
// in one go leave together.
type h2Batch struct {
	ws     []*h2Writer
	frames int // frames read since the last flush
}

// h2BatchFrames bounds a batch: a reader that always finds more to read
// (a long stream) still flushes after this many frames.
const h2BatchFrames = 32

func (b *h2Batch) add(w *h2Writer) {
	for _, x := range b.ws {
		if x == w {
			return
		}
	}
	b.ws = append(b.ws, w)
}

// flushOthers flushes every writer but w, whose drain is running.
func (b *h2Batch) flushOthers(w *h2Writer) {
	for i, x := range b.ws {
		if x != w {
			x.flush()
		}
		b.ws[i] = nil
	}
	b.ws = b.ws[:0]
}

func (b *h2Batch) flush() {
	for i, w := range b.ws {
		w.flush()
		b.ws[i] = nil
	}
	b.ws = b.ws[:0]
	b.frames = 0
}

// h2Conn is what both ends of the engine share: the writer, and the
// receive-side flow control that the reading goroutine alone touches.
type h2Conn struct {
	w       h2Writer
	recvWin int64 // connection credit the peer has left
	owed    int64 // credit taken by the peer and not yet given back
	sendWin int64 // what may still be sent on the connection (under w.mu)
}

// connWindowUpdate adds a WINDOW_UPDATE on stream 0 to the connection's
// send window and resumes the streams that waited for it.
func (c *h2Conn) connWindowUpdate(inc uint32, b *h2Batch) error {
	c.w.mu.Lock()
	if c.sendWin+int64(inc) > 1<<31-1 {
		c.w.mu.Unlock()
		return connErr{http2.ErrCodeFlowControl, "connection window above 2^31-1"}
	}
	c.sendWin += int64(inc)
	c.w.mu.Unlock()
	c.w.wake(b)
	return nil
}

// takeConn counts a DATA frame against the connection's receive window
// and gives the credit back in batches. It reports false when the peer
// sent more than it was allowed (a FLOW_CONTROL_ERROR).
func (c *h2Conn) takeConn(n uint32, b *h2Batch) bool {
	if int64(n) > c.recvWin {
		return false
	}
	c.recvWin -= int64(n)
	c.owed += int64(n)
	if c.owed >= h2ConnCredit {
		c.w.mu.Lock()
		c.w.fr.WriteWindowUpdate(0, uint32(c.owed))
		c.w.mu.Unlock()
		b.add(&c.w)
		c.recvWin += c.owed
		c.owed = 0
	}
	return true
}

// h2Settings is what one side has said of itself in SETTINGS.
type h2Settings struct {
	initWin    int32 // SETTINGS_INITIAL_WINDOW_SIZE
	maxStreams uint32
}

// applySettings applies a peer's SETTINGS frame to the writer and to s,
// and returns how much each stream's send window changes. Called under
// w.mu.
func (w *h2Writer) applySettings(f *http2.SettingsFrame, s *h2Settings) (delta int32, err error) {
	was := s.initWin
	err = f.ForeachSetting(func(st http2.Setting) error {
		if err := st.Valid(); err != nil {
			return err
		}
		switch st.ID {
		case http2.SettingInitialWindowSize:
			s.initWin = int32(st.Val)
		case http2.SettingMaxFrameSize:
			w.maxFrame = int(st.Val)
		case http2.SettingHeaderTableSize:
			w.enc.SetMaxDynamicTableSizeLimit(st.Val)
		case http2.SettingMaxConcurrentStreams:
			s.maxStreams = st.Val
		}
		return nil
	})
	return s.initWin - was, err
}
