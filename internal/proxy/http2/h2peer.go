package http2

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/weftmesh/weft/internal/endpoint"
	"github.com/weftmesh/weft/internal/proxy/conn"
	"github.com/weftmesh/weft/internal/proxy/plan"
)

// h2Peer is a connection from the HTTP/2 engine to one instance (a peer
// sidecar's inbound listener, or an h2c app), shared by the streams of
// every client connection that go there. Its own goroutine reads the
// instance's frames and passes them to the client streams they belong to.
type h2Peer struct {
	h2Conn
	ep *plan.Endpoint
	fr *http2.Framer

	// under w.mu:
	streams map[uint32]*h2Stream
	nextID  uint32
	set     h2Settings
	blocked []*h2Stream
	closed  bool // takes no new streams

	settled chan struct{} // closed once the peer's first SETTINGS are in force (or the connection ended)
	once    sync.Once

	// Health check (checkAlive): when the last read brought bytes, and
	// (under w.mu) when the PING still unanswered went out (0: none) and
	// whether the reader has finished.
	lastRead    atomic.Int64 // sinceStart() of the last read that brought bytes
	pingSent    int64
	ended       bool
	alive       *time.Timer
	pingIdle    time.Duration // h2PingIdle and h2PingTimeout when it was dialled
	pingTimeout time.Duration
}

// An instance connection's health check, as x/net/http2's ReadIdleTimeout
// and PingTimeout and gRPC's keepalive do it: after h2PingIdle without a
// frame from the instance the engine sends a PING, and when nothing comes
// back within h2PingTimeout it takes the connection for dead and closes
// it. Its streams then fail at once (502 upstream-reset, naming the
// instance) and the next ones go on a new connection, instead of waiting
// for TCP keepalive or a write to notice a peer that vanished. Atomic,
// so that tests can shorten them; a connection keeps the values it was
// dialled with.
var h2PingIdle, h2PingTimeout atomic.Int64 // nanoseconds

func init() {
	h2PingIdle.Store(int64(30 * time.Second))
	h2PingTimeout.Store(int64(15 * time.Second))
}

// SetPingTimes sets the health check's idle time and timeout for the
// instance connections dialled from now on, and returns what puts the
// previous ones back: for tests, which cannot wait 45 s for a dead peer.
func SetPingTimes(idle, timeout time.Duration) (restore func()) {
	oldIdle, oldTimeout := h2PingIdle.Swap(int64(idle)), h2PingTimeout.Swap(int64(timeout))
	return func() {
		h2PingIdle.Store(oldIdle)
		h2PingTimeout.Store(oldTimeout)
	}
}

// sinceStart is a monotonic clock for the health check: the wall clock
// may step.
func sinceStart() int64 { return int64(time.Since(processStart)) }

var processStart = time.Now()

// stampReads records, in lastRead, when a read from the instance brought
// bytes, whatever frame they belong to.
type stampReads struct {
	net.Conn
	last *atomic.Int64
}

func (r stampReads) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	if n > 0 {
		r.last.Store(sinceStart())
	}
	return n, err
}

// errPingTimeout ends a connection whose instance did not answer a PING.
var errPingTimeout = errors.New("no answer to PING")

// errPeerDone closes a connection whose last stream has ended after a
// GOAWAY.
var errPeerDone = errors.New("connection done")

// errPoolClosed: the endpoint left the routing table while a stream was
// on its way to it.
var errPoolClosed = errors.New("the instance left the mesh")

// h2Slot holds each endpoint's HTTP/2 engine pool.
var h2Slot = endpoint.NewSlot(func(*endpoint.Endpoint) endpoint.Local { return &h2Pool{} })

// h2PoolOf is the HTTP/2 engine's connection pool of ep.
func h2PoolOf(ep *plan.Endpoint) *h2Pool { return ep.Local(h2Slot).(*h2Pool) }

// h2Pool holds an endpoint's HTTP/2 connections. Dials are shared: the
// streams that find no connection while one is being made wait for it.
type h2Pool struct {
	mu     sync.Mutex
	conns  []*h2Peer
	dial   *h2Dial
	closed bool // the endpoint left the table: a dial that finishes keeps nothing
}

type h2Dial struct {
	done chan struct{}
	p    *h2Peer
	err  error
}

// ready returns a connection with room for a stream, or nil.
func (pl *h2Pool) ready() *h2Peer {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	for _, p := range pl.conns {
		p.w.mu.Lock()
		ok := !p.closed && p.w.err == nil && uint32(len(p.streams)) < p.set.maxStreams && p.nextID <= 1<<31-1
		p.w.mu.Unlock()
		if ok {
			return p
		}
	}
	return nil
}

// get returns a connection with room for a stream, dialling one if there
// is none.
func (pl *h2Pool) get(ep *plan.Endpoint) (*h2Peer, error) {
	if p := pl.ready(); p != nil {
		return p, nil
	}
	pl.mu.Lock()
	if pl.closed {
		pl.mu.Unlock()
		return nil, errPoolClosed
	}
	d := pl.dial
	if d == nil {
		d = &h2Dial{done: make(chan struct{})}
		pl.dial = d
		go func() {
			d.p, d.err = dialH2(ep)
			pl.mu.Lock()
			if d.err == nil {
				if pl.closed {
					// The endpoint left meanwhile: nobody may use it.
					d.p.w.mu.Lock()
					d.p.closed = true
					d.p.w.closeLocked()
					d.p.w.mu.Unlock()
					d.p, d.err = nil, errPoolClosed
				} else {
					pl.conns = append(pl.conns, d.p)
				}
			}
			pl.dial = nil
			pl.mu.Unlock()
			close(d.done)
		}()
	}
	pl.mu.Unlock()
	<-d.done
	return d.p, d.err
}

// CloseIdle takes every connection out of the pool: each closes now if it
// carries no stream, else when its last stream ends.
func (pl *h2Pool) CloseIdle() {
	pl.mu.Lock()
	conns := pl.conns
	pl.conns = nil
	pl.closed = true
	pl.mu.Unlock()
	for _, p := range conns {
		p.w.mu.Lock()
		if !p.closed && p.w.err == nil {
			p.w.fr.WriteGoAway(0, http2.ErrCodeNo, nil) // this client opens no more streams here
			p.w.flushLocked()
		}
		p.closed = true
		if len(p.streams) == 0 {
			p.w.closeLocked()
		}
		p.w.mu.Unlock()
	}
}

func (pl *h2Pool) remove(p *h2Peer) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	for i, q := range pl.conns {
		if q == p {
			pl.conns = append(pl.conns[:i], pl.conns[i+1:]...)
			return
		}
	}
}

// dialH2 connects to ep, sends the preface and SETTINGS, and starts the
// connection's reader.
func dialH2(ep *plan.Endpoint) (*h2Peer, error) {
	nc, err := conn.DialPeer(ep.Address, ep.TLS(), conn.ALPNMeshH2)
	if err != nil {
		return nil, err
	}
	p := &h2Peer{ep: ep, streams: map[uint32]*h2Stream{}, nextID: 1,
		set: h2Settings{initWin: h2StreamWindow, maxStreams: 100}, settled: make(chan struct{})}
	p.w.init(nc)
	p.w.wake = p.resume
	p.sendWin = h2StreamWindow
	p.recvWin = h2ConnWindow
	br := bufio.NewReaderSize(stampReads{nc, &p.lastRead}, 32<<10)
	p.fr = http2.NewFramer(nil, br)
	p.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	p.fr.MaxHeaderListSize = h2MaxHeaderList
	p.fr.SetReuseFrames()
	p.fr.SetMaxReadFrameSize(h2MaxFrame)
	p.w.mu.Lock()
	p.w.out = append(p.w.out, http2.ClientPreface...)
	p.w.fr.WriteSettings(
		http2.Setting{ID: http2.SettingEnablePush, Val: 0},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: h2MaxHeaderList},
	)
	p.w.fr.WriteWindowUpdate(0, h2ConnWindow-h2StreamWindow)
	p.w.flushLocked()
	err = p.w.err
	p.w.mu.Unlock()
	if err != nil {
		nc.Close()
		return nil, err
	}
	p.lastRead.Store(sinceStart())
	p.pingIdle, p.pingTimeout = time.Duration(h2PingIdle.Load()), time.Duration(h2PingTimeout.Load())
	// Armed far ahead, then set: the callback reads p.alive.
	p.alive = time.AfterFunc(time.Duration(math.MaxInt64), p.checkAlive)
	p.alive.Reset(p.pingIdle)
	go p.read(br)
	// Streams wait for the peer's SETTINGS, so none is opened beyond its
	// MAX_CONCURRENT_STREAMS (it would be refused, and a request with a
	// body cannot be sent again). One round trip per new connection.
	t := time.NewTimer(conn.DialTimeout)
	defer t.Stop()
	select {
	case <-p.settled:
	case <-t.C:
		p.w.mu.Lock()
		p.w.fail(errors.New("no SETTINGS from the peer"))
		p.w.mu.Unlock()
		return nil, fmt.Errorf("%s: no HTTP/2 SETTINGS within %s", ep.Address, conn.DialTimeout)
	}
	p.w.mu.Lock()
	closed := p.closed || p.w.err != nil
	p.w.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("%s: the connection ended before its HTTP/2 SETTINGS", ep.Address)
	}
	return p, nil
}

// read passes the instance's frames on until the connection ends.
func (p *h2Peer) read(br *bufio.Reader) {
	var b h2Batch
	err := p.readFrames(br, &b)
	p.w.mu.Lock()
	p.ended = true
	if errors.Is(p.w.err, errPingTimeout) {
		err = p.w.err // the reason, rather than the read on a closed socket
	}
	p.w.mu.Unlock()
	p.alive.Stop()
	p.end(err, &b)
	p.once.Do(func() { close(p.settled) })
	b.flush()
	p.w.conn.Close()
}

func (p *h2Peer) readFrames(br *bufio.Reader, b *h2Batch) error {
	for {
		if b.frames++; br.Buffered() == 0 || b.frames >= h2BatchFrames {
			b.flush()
		}
		f, err := p.fr.ReadFrame()
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				p.streamError(se.StreamID, se.Code, b)
				continue
			}
			return err
		}
		if err := p.frame(f, b); err != nil {
			return err
		}
	}
}

func (p *h2Peer) frame(f http2.Frame, b *h2Batch) error {
	switch f := f.(type) {
	case *http2.MetaHeadersFrame:
		if s := p.stream(f.StreamID); s != nil {
			s.mu.Lock()
			switch {
			case s.isHedge(p, f.StreamID):
				s.hedgeHead(f, b)
			case !s.peerClosed:
				s.responseHead(f, b)
			}
			s.mu.Unlock()
		}
	case *http2.DataFrame:
		return p.data(f, b)
	case *http2.RSTStreamFrame:
		if s := p.stream(f.StreamID); s != nil {
			s.mu.Lock()
			switch {
			case s.isHedge(p, f.StreamID):
				s.hedgeReset(f.ErrCode, b)
			case !s.peerClosed:
				s.peerReset(f.ErrCode, f.ErrCode == http2.ErrCodeRefusedStream, nil, b)
			}
			s.mu.Unlock()
		}
	case *http2.WindowUpdateFrame:
		return p.windowUpdate(f, b)
	case *http2.SettingsFrame:
		return p.settings(f, b)
	case *http2.PingFrame:
		if !f.IsAck() {
			p.w.mu.Lock()
			p.w.fr.WritePing(true, f.Data)
			p.w.mu.Unlock()
			b.add(&p.w)
		}
	case *http2.GoAwayFrame:
		p.goAway(f.LastStreamID, b)
	case *http2.PushPromiseFrame:
		return connErr{http2.ErrCodeProtocol, "PUSH_PROMISE, which this client disabled"}
	}
	return nil
}

// checkAlive runs on the health-check timer: it sends a PING once the
// instance has been silent for pingIdle, and closes the connection when
// nothing has come back pingTimeout after that PING. Any frame counts as
// an answer.
func (p *h2Peer) checkAlive() {
	now := sinceStart()
	last := p.lastRead.Load()
	p.w.mu.Lock()
	defer p.w.mu.Unlock()
	if p.ended || p.w.err != nil {
		return
	}
	if p.pingSent != 0 && last < p.pingSent {
		if left := time.Duration(p.pingSent + int64(p.pingTimeout) - now); left > 0 {
			p.alive.Reset(left)
			return
		}
		p.w.fail(fmt.Errorf("%w within %s", errPingTimeout, p.pingTimeout))
		return
	}
	p.pingSent = 0
	if idle := time.Duration(now - last); idle < p.pingIdle {
		p.alive.Reset(p.pingIdle - idle)
		return
	}
	p.pingSent = now
	p.w.fr.WritePing(false, [8]byte{'w', 'e', 'f', 't'})
	p.w.flushLocked()
	p.alive.Reset(p.pingTimeout)
}

// peerStream is a stream under its id on a peer connection (the first
// try's, or its hedge's).
type peerStream struct {
	id uint32
	s  *h2Stream
}

func (p *h2Peer) stream(id uint32) *h2Stream {
	p.w.mu.Lock()
	s := p.streams[id]
	p.w.mu.Unlock()
	return s
}

func (p *h2Peer) data(f *http2.DataFrame, b *h2Batch) error {
	if !p.takeConn(f.Length, b) {
		return connErr{http2.ErrCodeFlowControl, "DATA beyond the connection's window"}
	}
	s := p.stream(f.StreamID)
	if s == nil {
		return nil // a stream reset here: its frames may still be on the way
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.isHedge(p, f.StreamID) {
		// DATA before the hedge's response head (its head wins the race
		// and makes it the stream's peer half before any DATA).
		s.hedgeFailed(endpoint.Reset, http2.ErrCodeProtocol, b)
		return nil
	}
	if s.peerClosed {
		return nil
	}
	if int64(f.Length) > s.peerWin || s.peerEnd {
		s.peerBroke(http2.ErrCodeFlowControl, "DATA beyond the stream's window, or after its end", b)
		return nil
	}
	if !s.gotFinal {
		s.peerBroke(http2.ErrCodeProtocol, "DATA before the response head", b)
		return nil
	}
	data := f.Data()
	s.peerWin -= int64(f.Length)
	s.peerOwed += int64(f.Length) - int64(len(data))
	end := f.StreamEnded()
	if end {
		s.peerEnd = true
	}
	if s.frontClosed {
		s.peerOwed += int64(len(data))
	} else {
		s.sendDown(data, end, b)
	}
	s.creditPeer(b)
	s.settle(b)
	return nil
}

func (p *h2Peer) windowUpdate(f *http2.WindowUpdateFrame, b *h2Batch) error {
	if f.StreamID == 0 {
		return p.connWindowUpdate(f.Increment, b)
	}
	s := p.stream(f.StreamID)
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.isHedge(p, f.StreamID) {
		s.hedge.upWin += int64(f.Increment) // (its whole request has gone)
		return nil
	}
	if s.peerClosed {
		return nil
	}
	if s.upWin+int64(f.Increment) > 1<<31-1 {
		s.peerBroke(http2.ErrCodeFlowControl, "stream window above 2^31-1", b)
		return nil
	}
	s.upWin += int64(f.Increment)
	s.pushUp(b)
	s.settle(b)
	return nil
}

func (p *h2Peer) settings(f *http2.SettingsFrame, b *h2Batch) error {
	if f.IsAck() {
		return nil
	}
	p.w.mu.Lock()
	delta, err := p.w.applySettings(f, &p.set)
	var streams []*h2Stream
	if delta != 0 {
		for _, s := range p.streams {
			streams = append(streams, s)
		}
	}
	p.w.mu.Unlock()
	if err != nil {
		return err
	}
	// As h2Client.settings: windows first, then the ACK.
	for _, s := range streams {
		s.mu.Lock()
		if !s.peerClosed && s.peer == p {
			s.upWin += int64(delta)
			if s.upWin > 1<<31-1 {
				s.mu.Unlock()
				return connErr{http2.ErrCodeFlowControl, "stream window above 2^31-1"}
			}
		}
		s.mu.Unlock()
	}
	p.w.mu.Lock()
	p.w.fr.WriteSettingsAck()
	p.w.mu.Unlock()
	b.add(&p.w)
	p.once.Do(func() { close(p.settled) })
	if delta > 0 {
		for _, s := range streams {
			s.mu.Lock()
			if !s.peerClosed && s.peer == p {
				s.pushUp(b)
				s.settle(b)
			}
			s.mu.Unlock()
		}
	}
	return nil
}

// resume gives the streams that waited for the connection's window or
// its writer's backlog another go.
func (p *h2Peer) resume(b *h2Batch) {
	p.w.mu.Lock()
	blocked := p.blocked
	p.blocked = nil
	p.w.mu.Unlock()
	for _, s := range blocked {
		s.mu.Lock()
		s.upBlocked = false
		if s.peer == p {
			s.pushUp(b)
			s.settle(b)
		}
		s.mu.Unlock()
	}
}

// goAway stops new streams here; those the peer did not take go to
// another connection when they can (see peerReset).
func (p *h2Peer) goAway(last uint32, b *h2Batch) {
	h2PoolOf(p.ep).remove(p)
	p.w.mu.Lock()
	p.closed = true
	var refused []peerStream
	for id, s := range p.streams {
		if id > last {
			refused = append(refused, peerStream{id, s})
		}
	}
	if len(p.streams) == 0 {
		p.w.closeLocked()
	}
	p.w.mu.Unlock()
	for _, r := range refused {
		s := r.s
		s.mu.Lock()
		switch {
		case s.isHedge(p, r.id):
			s.hedgeReset(http2.ErrCodeRefusedStream, b)
		case !s.peerClosed:
			s.peerReset(http2.ErrCodeRefusedStream, true, errors.New("connection going away (GOAWAY)"), b)
		}
		s.mu.Unlock()
	}
}

// streamError resets a stream the peer broke.
func (p *h2Peer) streamError(id uint32, code http2.ErrCode, b *h2Batch) {
	s := p.stream(id)
	if s == nil {
		p.w.mu.Lock()
		p.w.fr.WriteRSTStream(id, code)
		p.w.mu.Unlock()
		b.add(&p.w)
		return
	}
	s.mu.Lock()
	switch {
	case s.isHedge(p, id):
		s.hedgeFailed(endpoint.Reset, code, b)
	case !s.peerClosed:
		s.peerBroke(code, fmt.Sprintf("stream error %v", code), b)
	}
	s.mu.Unlock()
}

// end fails the streams still open when the connection ends.
func (p *h2Peer) end(err error, b *h2Batch) {
	h2PoolOf(p.ep).remove(p)
	p.w.mu.Lock()
	p.closed = true
	var ce http2.ConnectionError
	if errors.As(err, &ce) && p.w.err == nil {
		p.w.fr.WriteGoAway(0, http2.ErrCode(ce), []byte(err.Error()))
		p.w.flushLocked()
	}
	streams := make([]peerStream, 0, len(p.streams))
	for id, s := range p.streams {
		streams = append(streams, peerStream{id, s})
	}
	p.w.mu.Unlock()
	for _, r := range streams {
		s := r.s
		s.mu.Lock()
		switch {
		case s.isHedge(p, r.id):
			s.hedgeReset(http2.ErrCodeInternal, b)
		case !s.peerClosed:
			s.peerReset(http2.ErrCodeInternal, false, fmt.Errorf("connection lost: %v", err), b)
		}
		s.mu.Unlock()
	}
}
