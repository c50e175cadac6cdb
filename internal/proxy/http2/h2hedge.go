package http2

import (
	"strconv"
	"time"

	"golang.org/x/net/http2"

	"github.com/weftmesh/weft/internal/endpoint"
	"github.com/weftmesh/weft/internal/proxy/plan"
)

// Hedging on the HTTP/2 engine (plan.Call.Hedge): a stream whose first
// try has gone in full and not answered after the plan's delay opens a
// second peer half, the hedge, on a connection to another instance, and
// sends it the request again: the head, and the body kept while it
// passed (up to plan.Call.KeepBody; a longer body, or trailers, is not
// hedged). The
// first final response head wins:
//
//	first try's head -> the hedge is reset (CANCEL), dropped
//	hedge's head     -> the first try is reset; the hedge takes its
//	                    place as the stream's peer half and relays
//	first try fails  -> (reset, connection lost) the hedge takes its place
//	hedge fails      -> it is dropped; the first try goes on
//
// Frames from the hedge's connection reach the stream like the first
// try's (its peer map holds the stream under the hedge's id); isHedge
// tells them apart. When no connection to the hedge's instance is open,
// one is dialled first (hedgeConnect), as for a first try.

// h2Hedge is a stream's hedge half, while it races the first try.
type h2Hedge struct {
	peer    *h2Peer
	uid     uint32
	ep      *plan.Endpoint
	upWin   int64 // what may still be sent to the peer on the hedge's stream
	peerWin int64
	timer   *time.Timer
	after   time.Duration // the delay it was sent after
}

// isHedge reports whether stream id on p is the stream's hedge. Called
// under mu.
func (s *h2Stream) isHedge(p *h2Peer, id uint32) bool {
	return s.hedge.peer == p && s.hedge.uid == id && p != nil
}

// keepBody keeps request body bytes to send again, to a retry or a
// hedge, while the body fits the plan's KeepBody; once the request has
// ended, the plan is told it is kept whole. Called under mu.
func (s *h2Stream) keepBody(data []byte) {
	if !s.keep {
		return
	}
	if int64(len(s.kept)+len(data)) > s.keepMax {
		s.keep, s.kept = false, nil
		return
	}
	s.kept = append(s.kept, data...)
	if s.upEnd {
		s.k.Kept()
	}
}

// armHedge starts the hedge's delay once the first try's request has
// gone in full, if the plan hedges it. Called under mu.
func (s *h2Stream) armHedge() {
	if s.hedge.timer != nil || s.gotFinal {
		return
	}
	if d, ok := s.k.HedgeAfter(s.noBody || s.keep && s.upEnd); ok {
		s.hedge.after = d
		s.hedge.timer = time.AfterFunc(d, s.hedgeFire)
	}
}

// hedgeFire sends the hedge, if the first try is still waiting and the
// plan grants one.
func (s *h2Stream) hedgeFire() {
	var b h2Batch
	defer b.flush()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gotFinal || s.frontClosed || s.peerClosed || s.connecting || s.peer == nil || s.k.Attempts() != 1 {
		return
	}
	ep := s.k.Hedge(s.hedge.after)
	if ep == nil {
		return
	}
	if p := h2PoolOf(ep).ready(); p != nil {
		if !s.attachHedge(p, ep, &b) {
			s.k.HedgeLost(endpoint.Cancelled)
		}
		return
	}
	go s.hedgeConnect(ep)
}

// hedgeConnect dials (or waits for a dial of) a connection to ep and
// sends the hedge on it, if the race is still on.
func (s *h2Stream) hedgeConnect(ep *plan.Endpoint) {
	var b h2Batch
	defer b.flush()
	p, err := h2PoolOf(ep).get(ep)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !s.k.Racing(): // the first try answered, or the stream ended, meanwhile
	case err != nil:
		s.k.HedgeLost(endpoint.ConnectFailed)
	case s.gotFinal || s.frontClosed || s.peerClosed || !s.attachHedge(p, ep, &b):
		s.k.HedgeLost(endpoint.Cancelled)
	}
}

// attachHedge opens the hedge's stream on p and sends it the whole
// request; false if p has no room for it (streams or windows). Called
// under mu.
func (s *h2Stream) attachHedge(p *h2Peer, ep *plan.Endpoint, b *h2Batch) bool {
	if s.timeout >= 0 {
		s.req[s.timeout].Value = plan.FormatGRPCTimeout(max(time.Until(s.expires), 0))
	}
	if s.hopTimeout >= 0 {
		if t, pass := s.k.HedgeHopTimeout(); pass {
			s.req[s.hopTimeout].Value = string(plan.AppendTimeoutHeader(nil, t))
		}
	}
	n := int64(len(s.kept))
	p.w.mu.Lock()
	defer p.w.mu.Unlock()
	if p.closed || p.w.err != nil || uint32(len(p.streams)) >= p.set.maxStreams || p.nextID > 1<<31-1 ||
		n > int64(p.set.initWin) || n > p.sendWin {
		return false
	}
	uid := p.nextID
	p.nextID += 2
	p.streams[uid] = s
	p.w.headers(uid, s.req, n == 0)
	for off := 0; off < len(s.kept); {
		m := min(len(s.kept)-off, p.w.maxFrame)
		p.w.fr.WriteData(uid, off+m == len(s.kept), s.kept[off:off+m])
		off += m
	}
	p.sendWin -= n
	b.add(&p.w)
	s.hedge.peer, s.hedge.uid, s.hedge.ep = p, uid, ep
	s.hedge.upWin, s.hedge.peerWin = int64(p.set.initWin)-n, h2StreamWindow
	return true
}

// hedgeHead is a header block on the hedge's stream. A final response
// head wins the race: the hedge takes the first try's place and the head
// is relayed; an interim one is dropped (the first try's were relayed).
// Called under mu.
func (s *h2Stream) hedgeHead(f *http2.MetaHeadersFrame, b *h2Batch) {
	status, err := strconv.Atoi(f.PseudoValue("status"))
	switch {
	case err != nil || status < 100 || status > 999 || f.Truncated || status < 200 && f.StreamEnded():
		s.hedgeFailed(endpoint.Reset, http2.ErrCodeProtocol, b)
	case status < 200:
	default:
		s.promoteHedge(http2.ErrCodeCancel, b)
		s.responseHead(f, b)
	}
}

// promoteHedge makes the hedge the stream's peer half: it answered
// first, or the first try failed (recorded already). The first try's
// stream is reset with code (0: it ended already). Called under mu.
func (s *h2Stream) promoteHedge(code http2.ErrCode, b *h2Batch) {
	h := s.hedge
	s.stopHedgeTimer()
	s.k.HedgeWon()
	if !s.peerClosed {
		closeHalf(s.peer, s.uid, code, b)
	}
	s.hedge = h2Hedge{timer: h.timer}
	s.peer, s.uid, s.ep = h.peer, h.uid, h.ep
	s.upWin, s.peerWin = h.upWin, h.peerWin
	s.upPend.reset()
	s.upEnd, s.upDone, s.upTrail = true, true, nil
	s.peerClosed, s.peerEnd, s.peerOwed = false, false, 0
}

// hedgeFailed drops a hedge that failed with class, resetting its
// stream with code (0: it ended already). Called under mu.
func (s *h2Stream) hedgeFailed(class endpoint.Class, code http2.ErrCode, b *h2Batch) {
	if s.hedge.peer == nil {
		s.k.HedgeLost(class) // a hedge still connecting, if any
		return
	}
	closeHalf(s.hedge.peer, s.hedge.uid, code, b)
	s.hedge.peer, s.hedge.uid, s.hedge.ep = nil, 0, nil
	s.k.HedgeLost(class)
}

// dropHedge resets and forgets the hedge, if one races: the first try
// answered (class Outrun), or the stream ends (Cancelled). Called under
// mu.
func (s *h2Stream) dropHedge(class endpoint.Class, b *h2Batch) {
	s.stopHedgeTimer()
	s.hedgeFailed(class, http2.ErrCodeCancel, b)
}

func (s *h2Stream) stopHedgeTimer() {
	if s.hedge.timer != nil {
		s.hedge.timer.Stop()
	}
}

// firstTryFailed hands the stream to its hedge when the first try fails
// while one races (true); false when none does. Called under mu.
func (s *h2Stream) firstTryFailed(class endpoint.Class, err error, code http2.ErrCode, b *h2Batch) bool {
	if s.hedge.peer == nil || s.gotFinal {
		return false
	}
	s.k.Failed(class, err)
	s.promoteHedge(code, b)
	return true
}

// hedgeReset is the hedge's stream reset by its instance, or its
// connection lost. Called under mu.
func (s *h2Stream) hedgeReset(code http2.ErrCode, b *h2Batch) {
	class := endpoint.Reset
	if code == http2.ErrCodeRefusedStream {
		class = endpoint.Refused
	}
	s.hedgeFailed(class, 0, b)
}

// closeHalf ends one peer stream: RST_STREAM with code (0: none), and
// out of its connection's map. Called under the stream's mu.
func closeHalf(p *h2Peer, uid uint32, code http2.ErrCode, b *h2Batch) {
	if p == nil {
		return
	}
	p.w.mu.Lock()
	if code != 0 && p.w.err == nil {
		p.w.fr.WriteRSTStream(uid, code)
	}
	delete(p.streams, uid)
	if p.closed && len(p.streams) == 0 {
		p.w.closeLocked()
	}
	p.w.mu.Unlock()
	b.add(&p.w)
}
