package http1

import (
	"bufio"
	"bytes"
	"errors"
	"net/http"
	"os"
	"time"

	"github.com/weftmesh/weft/internal/h1"
	"github.com/weftmesh/weft/internal/proxy/conn"
)

// A session serves a plain TCP client connection's requests inside one
// wait on its socket (syscall.RawConn.Read), for as long as each request
// needs nothing from the client but its head:
//
//	head buffered?  no  -> read the socket (skipped when the last read
//	                       emptied it: wait for the poller instead)
//	                yes -> serve it: the exchange with the upstream and
//	                       the response, then back to the top
//
// The poller's readiness is reset once, when the session begins, and
// every read of the socket happens inside it. So after a read that
// emptied the socket, any byte the client sends later is reported by the
// poller: waiting without reading first loses nothing, and saves the read
// that would only say EAGAIN (one per request on a keep-alive connection,
// since the next request is never there the moment the response is out).
// Only the client's close can hide: when it came with the last request,
// the poller reported both at once. So a wait without a read lasts at most
// ProbeAfter; then a new session starts, with a read.
//
// A request with a body still to come, an upgrade or a tunnel reads more
// from the client than its head; the session ends with it read
// (sessionHeadRead) and the ordinary path serves it. A body of a fixed
// length that arrived with its head is served in the session. The HTTP/2
// preface, or a head larger than the buffer, ends the session unread
// (sessionRead): readRequest answers them.
type sessionState struct {
	result   sessionResult
	skipRead bool // the last read emptied the socket, within this session
	probing  bool // waiting without a read, for at most ProbeAfter
	begun    bool // the next request's first bytes have arrived
}

type sessionResult int

const (
	sessionClosed   sessionResult = iota // the connection is done
	sessionHeadRead                      // cc.req is read: serveRequest serves it
	sessionRead                          // readRequest reads the next request
)

// session runs a session and says how it ended.
func (e *Engine) session(cc *Conn) sessionResult {
	if cc.onSession == nil {
		cc.onSession = func(fd uintptr) bool { return e.sessionStep(cc, fd) }
	}
	// The wait must not start with a deadline already past (the head
	// timeout of a request read on the ordinary path, which an exchange
	// can outlast): the read would fail before it began.
	cc.sess = sessionState{}
	e.sessionDeadline(cc)
	for {
		cc.sess = sessionState{result: sessionClosed}
		err := cc.Sock.RC.Read(cc.onSession)
		if err == nil {
			return cc.sess.result
		}
		if !cc.sess.probing || !errors.Is(err, os.ErrDeadlineExceeded) {
			return sessionClosed // closed, idle or slow too long, or closed by Shutdown
		}
		// A wait without a read found nothing within ProbeAfter: a new
		// session, which starts with a read, sees a close that came
		// with the last request. It waits with the idle timeout (the
		// probe's deadline has passed, and would fail it at once).
		e.sessionDeadline(cc)
	}
}

// sessionStep is the body of the wait: it returns false to wait for the
// poller, true when the session ends (with cc.sess.result set).
func (e *Engine) sessionStep(cc *Conn, fd uintptr) bool {
	cc.Sock.FD = int(fd)
	defer func() { cc.Sock.FD = -1 }()
	st := &cc.sess
	for {
		if !headBuffered(cc.BR) {
			if cc.BR.Buffered() >= conn.ReadBufSize {
				st.result = sessionRead // readRequest answers a head too large
				return true
			}
			if !st.begun && cc.BR.Buffered() > 0 {
				// A partial head (left over from the last read, or from
				// detection) has begun: the head timeout runs from now.
				st.begun = true
				cc.start = time.Now()
			}
			if st.skipRead && !st.begun { // (a partial head waits with its head timeout)
				st.skipRead = false
				st.probing = true
				cc.DL.Set(cc.Conn, time.Now(), ProbeAfter, ProbeAfter/16)
				return false
			}
			st.probing = false
			_, err := cc.BR.Peek(cc.BR.Buffered() + 1)
			if err == conn.ErrWouldBlock {
				e.sessionDeadline(cc)
				return false
			}
			if err != nil {
				st.result = sessionClosed // the client left
				return true
			}
			st.skipRead = cc.Sock.Drained
			continue // (the top of the loop marks the head begun)
		}
		if b, _ := cc.BR.Peek(4); bytes.Equal(b, conn.H2Preface[:4]) {
			st.result = sessionRead // the HTTP/2 preface
			return true
		}
		if !st.begun { // bytes left over from the last request
			cc.start = time.Now()
		}
		if !cc.Activate() {
			st.result = sessionClosed // Shutdown closed it
			return true
		}
		if err := h1.ReadRequestHead(cc.BR, &cc.req); err != nil {
			e.badRequest(cc, err)
			st.result = sessionClosed
			return true
		}
		st.begun = false
		if needsClient(&cc.req) && !bodyInBuffer(&cc.req, cc.BR) || e.handOff != nil && isH2CUpgrade(&cc.req) {
			st.result = sessionHeadRead
			return true
		}
		if !e.serveRequest(cc) {
			st.result = sessionClosed
			return true
		}
	}
}

// sessionDeadline bounds the wait: the head timeout once a request has
// begun, the idle timeout between requests.
func (e *Engine) sessionDeadline(cc *Conn) {
	if cc.sess.begun {
		cc.DL.Set(cc.Conn, cc.start, e.headTimeout, time.Second)
	} else {
		cc.DL.Set(cc.Conn, time.Now(), conn.ClientIdleTimeout, time.Minute)
	}
}

// bodyInBuffer: the request's whole body (a fixed length) has arrived with
// its head, so serving it reads nothing more from the socket. It is not a
// request whose body waits for 100 Continue, an upgrade or a tunnel.
func bodyInBuffer(req *h1.Head, br *bufio.Reader) bool {
	return !req.Chunked && req.ContentLength > 0 && !req.ExpectContinue && len(req.Upgrade()) == 0 &&
		!req.IsMethod(http.MethodConnect) && int64(br.Buffered()) >= req.ContentLength
}
