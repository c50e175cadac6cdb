package traces

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/weftmesh/weft/internal/collect/traces/tracestest"
)

var t0 = tracestest.T0

var (
	tid   = tracestest.TID
	sid   = tracestest.SID
	pspan = tracestest.Span
	of    = tracestest.Of
	str   = tracestest.Str
)

func newStore(t *testing.T, edit func(*Limits)) (*Store, *prometheus.Registry) {
	t.Helper()
	lim := DefaultLimits()
	if edit != nil {
		edit(&lim)
	}
	reg := prometheus.NewRegistry()
	s, err := New(lim, reg)
	if err != nil {
		t.Fatal(err)
	}
	return s, reg
}

func hexID(n uint64) string { return traceID(tid(n)).String() }

// addDemoTrace stores trace tr: web's server span, its client span, the
// catalog's server span and the ratings' server span below it.
func addDemoTrace(s *Store, tr uint64, at, length time.Duration) {
	// The way spans come: children first, each service in its own export.
	s.Add(of("ratings", pspan(tr, 4, 3, "GET /", at+length/2, at+length*3/4)))
	s.Add(of("catalog", pspan(tr, 3, 2, "GET /items", at+length/4, at+length*7/8)))
	client := pspan(tr, 2, 1, "GET catalog", at+length/8, at+length*15/16)
	client.Kind = tracepb.Span_SPAN_KIND_CLIENT
	s.Add(of("web", client, pspan(tr, 1, 0, "GET /", at, at+length)))
}

func TestListFiltersAndOrders(t *testing.T) {
	s, _ := newStore(t, nil)
	addDemoTrace(s, 1, 0, 40*time.Millisecond)
	addDemoTrace(s, 2, time.Second, 10*time.Millisecond)
	s.Add(of("ledger", pspan(3, 9, 0, "BALANCE", 2*time.Second, 2*time.Second+time.Millisecond)))
	// A trace whose root has not come: its duration is its extent.
	s.Add(of("catalog", pspan(4, 5, 77, "GET /items", 500*time.Millisecond, 530*time.Millisecond)))

	ids := func(list []Summary) []string {
		var out []string
		for _, x := range list {
			out = append(out, x.TraceID)
		}
		return out
	}
	cases := []struct {
		name string
		f    Filter
		want []string
	}{
		{"all, newest first", Filter{}, []string{hexID(3), hexID(2), hexID(4), hexID(1)}},
		{"service", Filter{Service: "ratings"}, []string{hexID(2), hexID(1)}},
		{"service of a child only", Filter{Service: "catalog"}, []string{hexID(2), hexID(4), hexID(1)}},
		{"unknown service", Filter{Service: "nobody"}, nil},
		{"min duration", Filter{MinDuration: 20 * time.Millisecond}, []string{hexID(4), hexID(1)}},
		{"min duration and service", Filter{Service: "web", MinDuration: 20 * time.Millisecond}, []string{hexID(1)}},
		{"limit", Filter{Limit: 2}, []string{hexID(3), hexID(2)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := ids(s.List(c.f))
			if strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}

	list := s.List(Filter{Service: "web"})
	first := list[len(list)-1]
	if first.RootService != "web" || first.RootName != "GET /" || !first.HasRoot || first.Spans != 4 ||
		first.Duration != 40*time.Millisecond || !first.Start.Equal(t0) ||
		strings.Join(first.Services, ",") != "catalog,ratings,web" {
		t.Errorf("summary of trace 1: got %+v", first)
	}
	partial := s.List(Filter{Service: "catalog", MinDuration: 25 * time.Millisecond})[0]
	if partial.HasRoot || partial.RootService != "catalog" || partial.Duration != 30*time.Millisecond {
		t.Errorf("summary of a trace without its root: got %+v, want HasRoot false, catalog, 30ms", partial)
	}
}

func TestTreeHasParentsAndOrder(t *testing.T) {
	s, _ := newStore(t, nil)
	addDemoTrace(s, 1, 0, 80*time.Millisecond)
	// A second child of web's root, earlier than the client span, and a
	// span whose parent never came.
	s.Add(of("web", pspan(1, 8, 1, "auth", time.Millisecond, 2*time.Millisecond), pspan(1, 6, 99, "late", 3*time.Millisecond, 4*time.Millisecond)))

	tree, ok, err := s.Trace(strings.ToUpper(hexID(1)))
	if err != nil || !ok {
		t.Fatalf("Trace: got ok=%v err=%v, want the trace", ok, err)
	}
	var lines []string
	var walk func(n *Node, depth int)
	walk = func(n *Node, depth int) {
		lines = append(lines, strings.Repeat(" ", depth)+n.Service+":"+n.Name+":"+n.Kind)
		for _, c := range n.Children {
			if c.ParentSpanID != n.SpanID {
				t.Errorf("%s under %s: its parent is %s", c.SpanID, n.SpanID, c.ParentSpanID)
			}
			walk(c, depth+1)
		}
	}
	for _, r := range tree.Roots {
		walk(r, 0)
	}
	want := []string{
		"web:GET /:server",
		" web:auth:server",
		" web:GET catalog:client",
		"  catalog:GET /items:server",
		"   ratings:GET /:server",
		"web:late:server",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("tree:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if tree.Roots[0].ParentMissing || !tree.Roots[1].ParentMissing {
		t.Errorf("ParentMissing: got %v and %v, want false and true", tree.Roots[0].ParentMissing, tree.Roots[1].ParentMissing)
	}
	if tree.Spans != 6 || tree.Duration != 80*time.Millisecond {
		t.Errorf("tree summary: got %d spans %s, want 6 spans 80ms", tree.Spans, tree.Duration)
	}

	if _, ok, err := s.Trace(hexID(2)); ok || err != nil {
		t.Errorf("unknown trace: got ok=%v err=%v, want not found", ok, err)
	}
	for _, bad := range []string{"", "abc", strings.Repeat("g", 32), strings.Repeat("0", 32), hexID(1) + "00"} {
		if _, _, err := s.Trace(bad); err == nil || !strings.Contains(err.Error(), "32 hex digits") {
			t.Errorf("Trace(%q): got %v, want an error asking for 32 hex digits", bad, err)
		}
	}
}

func TestTreeBreaksParentLoops(t *testing.T) {
	s, _ := newStore(t, nil)
	s.Add(of("a", pspan(1, 1, 2, "x", 0, time.Millisecond), pspan(1, 2, 1, "y", time.Millisecond, 2*time.Millisecond)))
	tree, _, _ := s.Trace(hexID(1))
	n := 0
	var walk func(*Node)
	walk = func(x *Node) {
		n++
		for _, c := range x.Children {
			walk(c)
		}
	}
	for _, r := range tree.Roots {
		walk(r)
	}
	if n != 2 || len(tree.Roots) != 1 || !tree.Roots[0].ParentMissing {
		t.Errorf("two spans naming each other as parent: got %d spans under %d roots, want 2 under 1", n, len(tree.Roots))
	}
}

func TestFloodStaysBounded(t *testing.T) {
	const maxSpans, maxTraces = 10_000, 2_000
	s, reg := newStore(t, func(l *Limits) { l.MaxSpans, l.MaxTraces = maxSpans, maxTraces })
	// 1,000,000 spans in exports of 1,000: traces of 4 spans, then traces
	// of 1, so that both limits are reached in turn.
	const offered, perExport = 1_000_000, 1_000
	batch := make([]*tracepb.Span, perExport)
	for i := range batch {
		batch[i] = pspan(0, uint64(i+1), 0, "flood", 0, time.Millisecond)
	}
	res := of("flood", batch...)
	for n := 0; n < offered; n += perExport {
		per := uint64(4)
		if n >= offered/2 {
			per = 1
		}
		for i, sp := range batch {
			binary.BigEndian.PutUint64(sp.TraceId[8:], uint64(n+i)/per+1)
		}
		if rejected, reason := s.Add(res); rejected != 0 {
			t.Fatalf("export %d: %d rejected (%s), want none", n/perExport, rejected, reason)
		}
		spans, traces, bytes := s.Held()
		if spans > maxSpans || traces > maxTraces || bytes > s.Limits().MaxBytes {
			t.Fatalf("after %d spans: holding %d spans in %d traces (%d bytes), want at most %d in %d", n+perExport, spans, traces, bytes, maxSpans, maxTraces)
		}
	}
	spans, traces, _ := s.Held()
	if spans != maxTraces || traces != maxTraces {
		t.Errorf("at the end (traces of one span): holding %d spans in %d traces, want %d in %d", spans, traces, maxTraces, maxTraces)
	}
	evicted := metric(t, reg, "weft_traces_dropped_spans_total", reasonEvicted)
	if int(evicted)+spans != offered {
		t.Errorf("evicted %v + held %d: want the %d offered", evicted, spans, offered)
	}
	if got := metric(t, reg, "weft_traces_received_spans_total", ""); got != offered {
		t.Errorf("received: got %v, want %d", got, offered)
	}
	// The newest are kept: the last trace sent is listed first.
	if list := s.List(Filter{Limit: 1}); len(list) != 1 || list[0].TraceID != hexID(offered) {
		t.Errorf("newest trace: got %+v, want %s", list, hexID(offered))
	}
	if got := metric(t, reg, "weft_traces_spans", ""); got != float64(spans) {
		t.Errorf("weft_traces_spans: got %v, want %d", got, spans)
	}
	if got := metric(t, reg, "weft_traces_traces", ""); got != float64(traces) {
		t.Errorf("weft_traces_traces: got %v, want %d", got, traces)
	}
}

func TestBytesBound(t *testing.T) {
	const maxBytes = 64 << 10
	s, _ := newStore(t, func(l *Limits) { l.MaxBytes = maxBytes })
	big := strings.Repeat("x", 1000)
	for i := range 1000 {
		sp := pspan(uint64(i+1), 1, 0, "big", 0, time.Millisecond)
		for k := range 10 {
			sp.Attributes = append(sp.Attributes, str("k"+string(rune('a'+k%26))+big[:k], big))
		}
		s.Add(of("svc", sp))
		if _, _, bytes := s.Held(); bytes > maxBytes {
			t.Fatalf("after %d spans: %d bytes held, want at most %d", i+1, bytes, maxBytes)
		}
	}
	spans, _, bytes := s.Held()
	if spans < 10 || bytes < maxBytes/2 {
		t.Errorf("holding %d spans, %d bytes: want the budget used (more than 10 spans, half the bytes)", spans, bytes)
	}
}

func TestOneTraceCannotTakeMoreThanTheBudget(t *testing.T) {
	s, reg := newStore(t, func(l *Limits) { l.MaxSpans = 10 })
	s.Add(of("a", pspan(1, 1, 0, "old", 0, 1)))
	var spans []*tracepb.Span
	for i := range 15 {
		spans = append(spans, pspan(2, uint64(i+1), 0, "x", 0, 1))
	}
	rejected, reason := s.Add(of("a", spans...))
	if rejected != 5 || !strings.Contains(reason, "5 spans over the store's budget for one trace") {
		t.Errorf("15 spans of one trace, 10 allowed: got %d rejected (%q), want 5", rejected, reason)
	}
	if n, traces, _ := s.Held(); n != 10 || traces != 1 {
		t.Errorf("holding %d spans in %d traces, want 10 in 1 (the old trace evicted)", n, traces)
	}
	if got := metric(t, reg, "weft_traces_dropped_spans_total", reasonTraceFull); got != 5 {
		t.Errorf("trace_full drops: got %v, want 5", got)
	}
}

func TestSpanFieldsAreCapped(t *testing.T) {
	s, _ := newStore(t, func(l *Limits) { l.MaxAttributes, l.MaxEvents, l.MaxValueLen = 3, 1, 10 })
	sp := pspan(1, 1, 0, "a name longer than ten", 0, time.Millisecond)
	sp.Attributes = []*commonpb.KeyValue{
		str("http.method", "GET"),
		str("long", "ééééééé"), // 14 bytes: cut to 10, on a character boundary
		{Key: "n", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: 42}}},
		str("dropped", "x"),
	}
	sp.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: "upstream reset"}
	sp.Events = []*tracepb.Span_Event{{Name: "retry", TimeUnixNano: sp.StartTimeUnixNano}, {Name: "dropped"}}
	s.Add(of("svc", sp))
	tree, _, _ := s.Trace(hexID(1))
	got := tree.Roots[0].Span
	want := []Attribute{{"http.method", "GET"}, {"long", "ééééé"}, {"n", "42"}}
	if len(got.Attributes) != 3 || got.Attributes[0] != want[0] || got.Attributes[1] != want[1] || got.Attributes[2] != want[2] {
		t.Errorf("attributes: got %v, want %v", got.Attributes, want)
	}
	if got.DroppedAttributes != 1 || got.DroppedEvents != 1 || len(got.Events) != 1 || got.Events[0].Name != "retry" {
		t.Errorf("dropped attributes %d, events %d (%v): want 1, 1 and the retry event", got.DroppedAttributes, got.DroppedEvents, got.Events)
	}
	if got.Name != "a name lon" || got.Status != "error" || got.StatusMessage != "upstream r" || got.Service != "svc" {
		t.Errorf("span: got name %q status %q %q service %q", got.Name, got.Status, got.StatusMessage, got.Service)
	}
	if tree.Errors != 1 {
		t.Errorf("errors: got %d, want 1", tree.Errors)
	}
}

func TestInvalidSpansAreRejected(t *testing.T) {
	s, _ := newStore(t, nil)
	bad := pspan(1, 1, 0, "short id", 0, 1)
	bad.TraceId = bad.TraceId[:8]
	zero := pspan(1, 1, 0, "zero span id", 0, 1)
	zero.SpanId = make([]byte, 8)
	rejected, reason := s.Add(of("a", bad, zero, pspan(1, 2, 0, "good", 0, 1)))
	if rejected != 2 || !strings.Contains(reason, "valid trace or span id") {
		t.Errorf("got %d rejected (%q), want 2 for their ids", rejected, reason)
	}
	if n, _, _ := s.Held(); n != 1 {
		t.Errorf("holding %d spans, want the 1 good one", n)
	}
	noName := &tracepb.ResourceSpans{ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{pspan(5, 1, 0, "x", 0, 1)}}}}
	s.Add([]*tracepb.ResourceSpans{noName})
	if tr, _, _ := s.Trace(hexID(5)); tr.RootService != "unknown_service" {
		t.Errorf("a resource without service.name: got service %q, want unknown_service", tr.RootService)
	}
}

func TestLimitsValidate(t *testing.T) {
	cases := []struct {
		edit func(*Limits)
		want string
	}{
		{func(l *Limits) { l.MaxSpans = 0 }, "MaxSpans 0"},
		{func(l *Limits) { l.MaxTraces = -1 }, "MaxTraces -1"},
		{func(l *Limits) { l.MaxBytes = 10 }, "MaxBytes 10"},
		{func(l *Limits) { l.MaxValueLen = 1 }, "MaxValueLen 1"},
	}
	for _, c := range cases {
		l := DefaultLimits()
		c.edit(&l)
		if _, err := New(l, prometheus.NewRegistry()); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("got %v, want an error naming %s", err, c.want)
		}
	}
}

// metric is the value of the series of name on reg whose reason label
// is reason ("" for a series without labels).
func metric(t *testing.T, reg *prometheus.Registry, name, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.Metric {
			got := ""
			for _, l := range m.Label {
				if l.GetName() == "reason" {
					got = l.GetValue()
				}
			}
			if got != reason {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	t.Fatalf("no series %s{reason=%q}", name, reason)
	return 0
}
