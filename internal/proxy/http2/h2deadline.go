package http2

import (
	"fmt"
	"time"

	"github.com/weftmesh/weft/internal/endpoint"
	"github.com/weftmesh/weft/internal/proxy/plan"
)

// The plan's head timeout on the HTTP/2 engine, kept per client
// connection rather than per stream: a stream whose request has gone in
// full joins its connection's list of streams waiting for a response
// head (intrusive, so joining and leaving allocate nothing), and one
// timer per connection fires at the earliest deadline on the list. A
// timer per stream would cost an allocation and two timer-heap updates
// on every call; this costs a list link. The caller's grpc-timeout keeps
// a timer of its own (armTimer), as only calls that set one pay for it.

// headWait is a client connection's list of streams waiting for a head.
// Guarded by the connection's w.mu.
type headWait struct {
	first, last *h2Stream
	timer       *time.Timer // made on first use, then Reset
	at          time.Time   // when it fires (zero: stopped)
}

// headClock starts the plan's bound on the wait for the response head,
// and the hedge's delay if the plan hedges the request, once the
// attempt's request has gone in full (upDone). Called under mu.
func (s *h2Stream) headClock() {
	s.armHedge()
	t := s.k.TryTimeout()
	if t <= 0 || s.gotFinal || s.frontClosed || !s.headBy.IsZero() {
		return
	}
	s.headBy = time.Now().Add(t)
	h := s.front
	h.w.mu.Lock()
	h.heads.add(s, s.headBy, h)
	h.w.mu.Unlock()
}

// headDone takes the stream off its connection's list: a head came, the
// attempt ended, or the stream closed. Called under mu.
func (s *h2Stream) headDone() {
	if s.headBy.IsZero() {
		return
	}
	s.headBy = time.Time{}
	h := s.front
	h.w.mu.Lock()
	h.heads.remove(s)
	h.w.mu.Unlock()
}

// add links s, due at at, and makes sure the timer fires by then. Under
// the connection's w.mu.
func (q *headWait) add(s *h2Stream, at time.Time, h *h2Client) {
	s.headDue, s.headNext, s.headPrev, s.headListed = at, nil, q.last, true
	if q.last != nil {
		q.last.headNext = s
	} else {
		q.first = s
	}
	q.last = s
	switch {
	case q.timer == nil:
		q.timer = time.AfterFunc(time.Until(at), h.headSweep)
		q.at = at
	case q.at.IsZero() || at.Before(q.at):
		q.timer.Reset(time.Until(at))
		q.at = at
	}
}

// remove unlinks s. Under the connection's w.mu.
func (q *headWait) remove(s *h2Stream) {
	if !s.headListed {
		return
	}
	if s.headPrev != nil {
		s.headPrev.headNext = s.headNext
	} else {
		q.first = s.headNext
	}
	if s.headNext != nil {
		s.headNext.headPrev = s.headPrev
	} else {
		q.last = s.headPrev
	}
	s.headNext, s.headPrev, s.headListed = nil, nil, false
}

// stop stops the timer for good (the connection ended). Under w.mu.
func (q *headWait) stop() {
	if q.timer != nil {
		q.timer.Stop()
	}
	q.at = time.Time{}
	q.first, q.last = nil, nil
}

// headSweep is the connection's head timer: it takes the streams whose
// deadline has passed off the list, sets the timer for the earliest one
// left, and answers each expired stream with the timeout.
func (h *h2Client) headSweep() {
	now := time.Now()
	var expired []*h2Stream
	h.w.mu.Lock()
	var next time.Time
	for s := h.heads.first; s != nil; {
		n := s.headNext
		if !now.Before(s.headDue) {
			h.heads.remove(s)
			expired = append(expired, s)
		} else if next.IsZero() || s.headDue.Before(next) {
			next = s.headDue
		}
		s = n
	}
	h.heads.at = next
	if !next.IsZero() && h.heads.timer != nil {
		h.heads.timer.Reset(next.Sub(now))
	}
	h.w.mu.Unlock()
	for _, s := range expired {
		s.headExpired(now)
	}
}

// headExpired answers a stream whose response head did not come in time,
// if it is still waiting for one (lock order: the stream, then writers).
func (s *h2Stream) headExpired(now time.Time) {
	var b h2Batch
	defer b.flush()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gotFinal || s.frontClosed || s.downDone || s.headBy.IsZero() || now.Before(s.headBy) {
		return
	}
	s.headBy = time.Time{}
	s.meshError(s.k.Failed(endpoint.Timeout, fmt.Errorf("%w within %s", plan.ErrHeadTimeout, s.cluster.Timeout)), &b)
}
