package hub

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/internal/push"
)

// Handler serves GET /v1/stream?since=REV: first what the caller lacks,
// then every change as it happens, until the caller goes away.
type Handler struct {
	Hub *Hub
	// Streams counts open streams; may be nil.
	Streams *atomic.Int64
	// OnSend is called with the number of lines written; may be nil.
	OnSend func(lines int)
	// OnPush is called with how long after the hub took in a change it
	// was written to this stream (updates only, not the first snapshot);
	// may be nil.
	OnPush func(latency time.Duration)
	// OnError is called when a stream is refused or ends because it could
	// not be written ("bad-request", "write"); may be nil.
	OnError func(reason string)
}

func (s *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	since, err := strconv.ParseInt(r.URL.Query().Get("since"), 10, 64)
	if r.URL.Query().Get("since") == "" {
		since, err = 0, nil
	}
	if err != nil || since < 0 {
		s.failed("bad-request")
		http.Error(w, "since: must be a non-negative revision", http.StatusBadRequest)
		return
	}
	select {
	case <-s.Hub.Ready():
	case <-r.Context().Done():
		return
	}
	if s.Streams != nil {
		s.Streams.Add(1)
		defer s.Streams.Add(-1)
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)

	ping := time.NewTicker(push.PingInterval)
	defer ping.Stop()
	first := true
	for {
		line, rev, changed := s.Hub.Since(since)
		if line == nil && first {
			// Already current: say so, so the client knows it is in sync.
			line = push.Encode(push.Message{Type: push.TypeUpdate, Revision: rev})
		}
		snapshot := first
		first = false
		if line != nil {
			if !s.write(w, rc, line) {
				s.failed("write")
				return
			}
			if at := s.Hub.AppliedAt(); !snapshot && s.OnPush != nil && !at.IsZero() {
				s.OnPush(time.Since(at))
			}
			since = rev
			ping.Reset(push.PingInterval)
		}
		select {
		case <-r.Context().Done():
			return
		case <-changed:
		case <-ping.C:
			if !s.write(w, rc, push.PingLine) {
				s.failed("write")
				return
			}
		}
	}
}

func (s *Handler) failed(reason string) {
	if s.OnError != nil {
		s.OnError(reason)
	}
}

func (s *Handler) write(w http.ResponseWriter, rc *http.ResponseController, line []byte) bool {
	_ = rc.SetWriteDeadline(time.Now().Add(2 * push.PingInterval))
	if _, err := w.Write(line); err != nil {
		return false
	}
	if err := rc.Flush(); err != nil {
		return false
	}
	if s.OnSend != nil {
		s.OnSend(1)
	}
	return true
}
