package dashboard

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/weftmesh/weft/internal/api"
)

// streamPages are the pages an event stream serves.
var streamPages = map[string]bool{"overview": true, "service": true, "alarms": true, "live": true}

// events is GET /ui/events?page=PAGE[&name=NAME][&window=...]: the
// page's figures as server-sent events, one "update" at once and then
// one every Config.Interval, until the page goes away or the control
// plane stops. A page whose figures cannot be had gets a "problem"
// event with the error, and the stream goes on.
func (h *Handler) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page := q.Get("page")
	if !streamPages[page] {
		refuse(w, http.StatusBadRequest, fmt.Sprintf("page=%q: want overview, service, alarms or live", page))
		return
	}
	b, err := h.builder(page, q.Get("name"), q)
	if err != nil {
		h.fail(w, err)
		return
	}
	if n := h.streams.Add(1); n > int64(h.cfg.MaxStreams) {
		h.streams.Add(-1)
		w.Header().Set("Retry-After", "5")
		refuse(w, http.StatusServiceUnavailable, fmt.Sprintf("too many dashboard pages open at once (%d): close some", h.cfg.MaxStreams))
		return
	}
	defer h.streams.Add(-1)

	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	ctx := r.Context()
	tick := time.NewTicker(h.cfg.Interval)
	defer tick.Stop()
	var buf bytes.Buffer
	buf.WriteString("retry: 2000\n\n")
	for {
		v, err := b(ctx)
		if ctx.Err() != nil {
			return
		}
		event := "update"
		if err != nil {
			event, v = "problem", api.Error{Error: err.Error()}
		}
		data, err := json.Marshal(v)
		if err != nil {
			event, data = "problem", []byte(`{"error":"the figures could not be written as JSON"}`)
		}
		fmt.Fprintf(&buf, "event: %s\ndata: %s\n\n", event, data)
		if _, err := w.Write(buf.Bytes()); err != nil {
			return // the page went away
		}
		buf.Reset()
		if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-h.done:
			return
		case <-tick.C:
		}
	}
}
