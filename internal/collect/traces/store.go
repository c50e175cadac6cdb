// Package traces keeps the spans of recent traces in bounded memory and
// answers queries over them (weft traces, GET /v1/traces). Spans come in
// by OTLP/HTTP, as the sidecars (or anything else with an OpenTelemetry
// SDK) export them:
//
//	POST /v1/traces (protobuf or JSON, maybe gzip)
//	    --> Handler: decode, convert (attributes capped, strings cut)
//	    --> Store.Add: grouped by trace id, oldest traces evicted past the limits
//	    --> Store.List, Store.Trace: summaries newest first, one trace as a span tree
//
// The limits are on spans, traces and (approximate) bytes held; what is
// evicted or refused is counted in weft_traces_dropped_spans_total.
package traces

import (
	"errors"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Limits bound what a Store holds.
type Limits struct {
	// MaxSpans is the most spans held, all traces together (default 100,000).
	MaxSpans int
	// MaxTraces is the most traces held (default 10,000).
	MaxTraces int
	// MaxBytes bounds the approximate memory the spans take: their
	// strings and fixed fields, not the Go runtime's overhead (default
	// 256 MiB).
	MaxBytes int64
	// MaxAttributes is the most attributes kept of a span, and MaxEvents
	// the most events (defaults 32 and 8); an event keeps at most 8
	// attributes. What is left out is counted on the span.
	MaxAttributes, MaxEvents int
	// MaxValueLen is the most bytes kept of an attribute's value, a
	// span's name or status message (default 256); keys keep at most 64.
	MaxValueLen int
}

// DefaultLimits returns the documented defaults.
func DefaultLimits() Limits {
	return Limits{MaxSpans: 100_000, MaxTraces: 10_000, MaxBytes: 256 << 20, MaxAttributes: 32, MaxEvents: 8, MaxValueLen: 256}
}

// Validate checks Limits, naming the field at fault.
func (l Limits) Validate() error {
	switch {
	case l.MaxSpans < 1:
		return fmt.Errorf("MaxSpans %d: must be at least 1", l.MaxSpans)
	case l.MaxTraces < 1:
		return fmt.Errorf("MaxTraces %d: must be at least 1", l.MaxTraces)
	case l.MaxBytes < 1<<10:
		return fmt.Errorf("MaxBytes %d: must be at least 1024", l.MaxBytes)
	case l.MaxAttributes < 0:
		return fmt.Errorf("MaxAttributes %d: must not be negative", l.MaxAttributes)
	case l.MaxEvents < 0:
		return fmt.Errorf("MaxEvents %d: must not be negative", l.MaxEvents)
	case l.MaxValueLen < 8:
		return fmt.Errorf("MaxValueLen %d: must be at least 8", l.MaxValueLen)
	}
	return nil
}

// Reasons a span is dropped, the reason label of weft_traces_dropped_spans_total.
const (
	reasonEvicted   = "evicted"    // held, then pushed out by newer traces
	reasonTraceFull = "trace_full" // its trace alone holds the whole budget
	reasonInvalid   = "invalid"    // no valid trace or span id
)

// Store holds the spans of recent traces. It is safe for concurrent use.
type Store struct {
	lim Limits

	mu     sync.Mutex
	byID   map[traceID]*trace
	oldest *trace // first seen: evicted first
	newest *trace
	spans  int
	bytes  int64

	received prometheus.Counter
	dropped  *prometheus.CounterVec
}

// New returns an empty Store with its metrics registered on reg.
func New(lim Limits, reg prometheus.Registerer) (*Store, error) {
	if err := lim.Validate(); err != nil {
		return nil, fmt.Errorf("trace store: %w", err)
	}
	if reg == nil {
		return nil, errors.New("trace store: a Prometheus registry is required")
	}
	s := &Store{
		lim:  lim,
		byID: make(map[traceID]*trace),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_traces_received_spans_total",
			Help: "Spans received by the control plane's trace store.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_traces_dropped_spans_total",
			Help: "Spans the trace store let go: evicted (pushed out by newer traces), trace_full (one trace held the whole budget), invalid (no valid trace or span id).",
		}, []string{"reason"}),
	}
	for _, r := range []string{reasonEvicted, reasonTraceFull, reasonInvalid} {
		s.dropped.WithLabelValues(r) // every series from the start, at 0
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 {
			s.mu.Lock()
			defer s.mu.Unlock()
			return f()
		})
	}
	for _, c := range []prometheus.Collector{
		s.received, s.dropped,
		gauge("weft_traces_spans", "Spans the trace store holds now.", func() float64 { return float64(s.spans) }),
		gauge("weft_traces_traces", "Traces the trace store holds now.", func() float64 { return float64(len(s.byID)) }),
		gauge("weft_traces_bytes", "Approximate bytes of the spans the trace store holds now.", func() float64 { return float64(s.bytes) }),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("trace store: register metrics: %w", err)
		}
	}
	return s, nil
}

// Limits are the store's limits.
func (s *Store) Limits() Limits { return s.lim }

// Held is how many spans and traces the store holds, and their
// approximate bytes.
func (s *Store) Held() (spans, traces int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.spans, len(s.byID), s.bytes
}

// trace is the spans of one trace held, in the order they came, and its
// place in the eviction order (first seen, first out).
type trace struct {
	id         traceID
	spans      []span
	bytes      int64
	root       int   // index in spans of the earliest span without a parent; -1 when none came
	start, end int64 // earliest start and latest end, Unix ns
	services   []string
	errors     int
	prev, next *trace
}

// insert adds converted spans, evicting the oldest traces past the
// limits; it returns how many it refused (their trace was full).
func (s *Store) insert(batch []span) (refused int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range batch {
		sp := &batch[i]
		t := s.byID[sp.traceID]
		if t == nil {
			t = &trace{id: sp.traceID, root: -1, start: sp.start, end: sp.end}
			s.byID[sp.traceID] = t
			s.pushNewest(t)
		}
		size := sp.size()
		if len(t.spans) >= s.lim.MaxSpans || t.bytes+size > s.lim.MaxBytes {
			refused++
			if len(t.spans) == 0 {
				s.remove(t)
			}
			continue
		}
		t.add(sp, size)
		s.spans++
		s.bytes += size
		s.evict(t)
	}
	s.received.Add(float64(len(batch)))
	if refused > 0 {
		s.dropped.WithLabelValues(reasonTraceFull).Add(float64(refused))
	}
	return refused
}

// evict removes the oldest traces other than keep while the store holds
// more than its limits allow. keep alone is within them (insert checked).
func (s *Store) evict(keep *trace) {
	var n int
	for s.spans > s.lim.MaxSpans || len(s.byID) > s.lim.MaxTraces || s.bytes > s.lim.MaxBytes {
		t := s.oldest
		if t == keep {
			t = t.next
		}
		if t == nil {
			break
		}
		n += len(t.spans)
		s.remove(t)
	}
	if n > 0 {
		s.dropped.WithLabelValues(reasonEvicted).Add(float64(n))
	}
}

func (s *Store) pushNewest(t *trace) {
	t.prev = s.newest
	if s.newest != nil {
		s.newest.next = t
	} else {
		s.oldest = t
	}
	s.newest = t
}

func (s *Store) remove(t *trace) {
	if t.prev != nil {
		t.prev.next = t.next
	} else {
		s.oldest = t.next
	}
	if t.next != nil {
		t.next.prev = t.prev
	} else {
		s.newest = t.prev
	}
	t.prev, t.next = nil, nil
	delete(s.byID, t.id)
	s.spans -= len(t.spans)
	s.bytes -= t.bytes
}

func (t *trace) add(sp *span, size int64) {
	t.spans = append(t.spans, *sp)
	t.bytes += size
	t.start, t.end = min(t.start, sp.start), max(t.end, sp.end)
	if !sp.hasParent && (t.root < 0 || sp.start < t.spans[t.root].start) {
		t.root = len(t.spans) - 1
	}
	if sp.status == statusError {
		t.errors++
	}
	for _, sv := range t.services {
		if sv == sp.service {
			return
		}
	}
	t.services = append(t.services, sp.service)
}
