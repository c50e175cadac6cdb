package control

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/internal/collect/traces"
	"github.com/weftmesh/weft/internal/collect/traces/otlp"
	"github.com/weftmesh/weft/internal/telemetry"
)

// MaxTraceList is the most traces GET /v1/traces returns at once.
const MaxTraceList = 1000

// newTraceStore is the store of recent traces, bounded as cfg says.
func newTraceStore(cfg Config, reg prometheus.Registerer) (*traces.Store, error) {
	lim := traces.DefaultLimits()
	lim.MaxSpans, lim.MaxTraces = cfg.TraceMaxSpans, cfg.TraceMaxTraces
	return traces.New(lim, reg)
}

// mountTraces serves the trace store: spans in by OTLP/HTTP (what the
// sidecars export by default), traces out for weft traces.
func (c *Control) mountTraces(mux *http.ServeMux) {
	mux.Handle("POST /v1/traces", &otlp.Handler{Store: c.traces})
	mux.HandleFunc("GET /v1/traces", c.listTraces)
	mux.HandleFunc("GET /v1/traces/{id}", c.getTrace)
}

// listTraces is GET /v1/traces?service=&minDuration=&limit=: the traces
// held, newest first.
func (c *Control) listTraces(w http.ResponseWriter, r *http.Request) {
	f, err := traceFilter(r)
	if err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	list := c.traces.List(f)
	if list == nil {
		list = []traces.Summary{}
	}
	telemetry.WriteJSON(w, http.StatusOK, list)
}

func traceFilter(r *http.Request) (traces.Filter, error) {
	q := r.URL.Query()
	f := traces.Filter{Service: q.Get("service"), Limit: traces.DefaultLimit}
	if s := q.Get("minDuration"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return f, fmt.Errorf("minDuration=%q: want a duration such as 100ms or 1.5s", s)
		}
		f.MinDuration = d
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxTraceList {
			return f, fmt.Errorf("limit=%q: want a number from 1 to %d", s, MaxTraceList)
		}
		f.Limit = n
	}
	return f, nil
}

// getTrace is GET /v1/traces/{id}: one trace as a tree of spans.
func (c *Control) getTrace(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	tree, ok, err := c.traces.Trace(id)
	switch {
	case err != nil:
		fail(w, http.StatusBadRequest, err)
	case !ok:
		lim := c.traces.Limits()
		fail(w, http.StatusNotFound, errors.New("trace "+id+" not found: the control plane holds the spans of its last "+
			strconv.Itoa(lim.MaxTraces)+" traces (at most "+strconv.Itoa(lim.MaxSpans)+" spans), so it may have been evicted, or its spans not exported yet"))
	default:
		telemetry.WriteJSON(w, http.StatusOK, tree)
	}
}
