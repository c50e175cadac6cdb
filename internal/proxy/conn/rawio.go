package conn

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// Sock reads and writes a TCP connection with the socket's own system
// calls, made inside the poller's callbacks (syscall.RawConn). It saves
// the fast path two things a net.Conn costs on every request:
//
//   - the read that is bound to fail: net.Conn.Read always tries read(2)
//     before it waits for the poller, and the answer to a request just
//     sent (or the client's next request, just after the response) is
//     never there yet: EAGAIN, then the wait, then the read again.
//     AwaitAfter writes and then waits for the poller without that read;
//   - the runtime's system-call bookkeeping, which on an idle process
//     wakes the runtime's monitor thread for every request: the reads and
//     writes here cannot block (the socket is non-blocking), so they are
//     made as raw system calls.
//
// Skipping the first read is only safe when nothing can be waiting in the
// socket that the poller has already reported: see AwaitAfter.
//
// Outside a read callback (FD < 0), Read is the connection's own.
type Sock struct {
	conn net.Conn
	// RC is the socket's raw connection: a session runs its reads inside
	// RC.Read, setting FD for as long as its callback runs.
	RC syscall.RawConn
	// FD is the socket, while a read callback runs; -1 otherwise.
	FD int
	// Drained: the last read there returned less than it could take, so
	// the socket had nothing more at that moment.
	Drained bool
	// Writes counts Write calls: tells whether a request went out in parts.
	Writes uint64

	// The callbacks and their state live here, bound once, so that a
	// request costs no allocation.
	onWrite, onAwait func(uintptr) bool
	onPeek           func(uintptr)
	wbuf             []byte
	wn               int
	werr             error
	peekErr          error
	br               *bufio.Reader
	bw               *bufio.Writer
	sent             bool
	sendErr, readErr error
}

// NewSock returns c's raw reads and writes; nil for connections that are
// not plain TCP (TLS).
func NewSock(c net.Conn) *Sock {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	s := &Sock{conn: c, RC: rc, FD: -1}
	s.onWrite, s.onAwait, s.onPeek = s.writeSome, s.awaitSome, s.peekSome
	return s
}

// ErrWouldBlock: inside a read callback, the socket has nothing more now.
var ErrWouldBlock = errors.New("read would block")

// Read reads with read(2) inside a read callback (ErrWouldBlock when the
// socket has nothing now), and with the connection's own Read outside one.
func (s *Sock) Read(p []byte) (int, error) {
	if s.FD < 0 {
		return s.conn.Read(p)
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		r, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(s.FD), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch {
		case e == syscall.EINTR:
			continue
		case e == syscall.EAGAIN:
			return 0, ErrWouldBlock
		case e != 0:
			return 0, s.opError("read", e)
		case r == 0:
			return 0, io.EOF
		}
		s.Drained = int(r) < len(p)
		return int(r), nil
	}
}

// Write writes all of p with write(2). It waits for the poller only when the socket's
// buffer is full; the write deadline applies.
func (s *Sock) Write(p []byte) (int, error) {
	s.Writes++
	s.wbuf, s.wn, s.werr = p, 0, nil
	err := s.RC.Write(s.onWrite)
	n, werr := s.wn, s.werr
	s.wbuf, s.werr = nil, nil
	if werr == nil {
		werr = err
	}
	return n, werr
}

func (s *Sock) writeSome(fd uintptr) bool {
	p := s.wbuf
	for s.wn < len(p) {
		r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[s.wn])), uintptr(len(p)-s.wn))
		switch {
		case e == syscall.EINTR:
			continue
		case e == syscall.EAGAIN:
			return false
		case e != 0:
			s.werr = s.opError("write", e)
			return true
		}
		s.wn += int(r)
	}
	return true
}

func (s *Sock) opError(op string, e syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Source: s.conn.LocalAddr(), Addr: s.conn.RemoteAddr(), Err: os.NewSyscallError(op, e)}
}

// AwaitAfter flushes bw (a request, or a response), then waits until br
// has bytes to read, or the read deadline passes.
//
// The poller's readiness is reset when the wait begins, so the first read
// is skipped only when the flush came after that: whatever the peer sends in
// answer then arrives after the reset and wakes the wait. What was
// already in the socket before (bytes the peer sent unasked, or its close)
// would not wake it; callers use AwaitAfter only where the peer has no
// reason to send first: br is empty and no request or response is
// outstanding. A peer that closed sees the next write fail, and its reset
// wakes the wait.
//
// sendErr is the flush's error (nothing was waited for); readErr the read's.
func (s *Sock) AwaitAfter(br *bufio.Reader, bw *bufio.Writer) (sendErr, readErr error) {
	s.br, s.bw, s.sent, s.sendErr, s.readErr = br, bw, false, nil, nil
	err := s.RC.Read(s.onAwait)
	if !s.sent && err != nil {
		// The wait failed before it began (a deadline already past, or a
		// closed connection): flush the ordinary way, and report the wait's error.
		s.sendErr = bw.Flush()
		s.readErr = err
	}
	sendErr, readErr = s.sendErr, s.readErr
	s.br, s.bw, s.sendErr, s.readErr = nil, nil, nil, nil
	if sendErr == nil && readErr == nil {
		readErr = err
	}
	return sendErr, readErr
}

func (s *Sock) awaitSome(fd uintptr) bool {
	if !s.sent {
		s.sent = true
		if s.sendErr = s.bw.Flush(); s.sendErr != nil {
			return true
		}
		return false // nothing can have arrived yet: wait for the poller
	}
	s.FD = int(fd)
	_, s.readErr = s.br.Peek(1)
	s.FD = -1
	if s.readErr == ErrWouldBlock {
		s.readErr = nil
		return false
	}
	return true
}

// PeekNow reads into br, if it is empty, what the socket holds right now,
// without waiting and whatever the read deadline: nil when br has bytes,
// ErrWouldBlock when the socket had none, else the read's error (io.EOF
// for the peer's end of stream). An idle pooled connection is checked so,
// and a wait that saw nothing, before its silence is taken for a timeout.
func (s *Sock) PeekNow(br *bufio.Reader) error {
	if br.Buffered() > 0 {
		return nil
	}
	s.br, s.peekErr = br, nil
	err := s.RC.Control(s.onPeek)
	perr := s.peekErr
	s.br, s.peekErr = nil, nil
	if err != nil {
		return err
	}
	return perr
}

func (s *Sock) peekSome(fd uintptr) {
	s.FD = int(fd)
	_, s.peekErr = s.br.Peek(1)
	s.FD = -1
}
