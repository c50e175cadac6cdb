package plan

import (
	"bufio"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	oteltrace "go.opentelemetry.io/otel/trace"

	"github.com/weftmesh/weft/internal/endpoint"
	"github.com/weftmesh/weft/internal/h1"
	"github.com/weftmesh/weft/internal/request"
)

// traced is a request with headers, as bytes (no allocation per lookup).
type traced struct {
	request.View
	headers map[string][]byte
}

// tracedScan is a traced view that gives its trace fields in one pass
// (TraceFields), as the HTTP/1.1 fast path's view does.
type tracedScan struct{ traced }

func (v tracedScan) TraceFields() (h TraceHeaders) {
	for k, val := range v.headers {
		h.Field([]byte(k), val)
	}
	return h
}

var tracedGET, tracedSvc, tracedPath = []byte("GET"), []byte("svc"), []byte("/items")

func (v traced) Method() []byte    { return tracedGET }
func (v traced) Authority() []byte { return tracedSvc }
func (v traced) Path() []byte      { return tracedPath }
func (v traced) GRPC() bool        { return false }
func (v traced) Header(n string) []byte {
	for k, val := range v.headers {
		if strings.EqualFold(k, n) {
			return val
		}
	}
	return nil
}

func tracedCluster(t *testing.T, ratio float64, server bool) (*Cluster, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(t.Context()) })
	eps := []*Endpoint{endpoint.New("svc", "svc-1", "127.0.0.1:1", nil), endpoint.New("svc", "svc-2", "127.0.0.1:2", nil)}
	c := NewCluster("svc", eps, 0, nil)
	c.Server = server
	c.SetTracer(NewTracer(tp.Tracer("test"), ratio))
	return c, rec
}

func attr(s sdktrace.ReadOnlySpan, key string) (attribute.Value, bool) {
	for _, a := range s.Attributes() {
		if string(a.Key) == key {
			return a.Value, true
		}
	}
	return attribute.Value{}, false
}

// A sampled request: one client span per attempt, children of the
// caller's span, the retry's with http.request.resend_count; each try
// carries its own span on.
func TestSpansPerAttempt(t *testing.T) {
	c, rec := tracedCluster(t, 0, false) // ratio 0: the caller's sampled flag decides
	const parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	var k Call
	k.Init(c, traced{headers: map[string][]byte{"traceparent": []byte(parent), "tracestate": []byte("vendor=x")}}, time.Now())
	k.SetRoute("HTTPRoute/svc", "/items")
	var buf [TraceParentLen]byte
	if k.Next() == nil {
		t.Fatal("no endpoint")
	}
	first := string(k.TraceParent(&buf))
	k.Failed(endpoint.ConnectFailed, errors.New("refused"))
	if k.Next() == nil {
		t.Fatal("no second endpoint")
	}
	second := string(k.TraceParent(&buf))
	k.OK()
	k.End(Result{Status: 200}, time.Now())
	k.End(Result{Status: 200}, time.Now()) // (a second End does nothing)

	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("got %d spans, want 2 (one per attempt)", len(spans))
	}
	for i, s := range spans {
		if s.Name() != "GET /items" || s.SpanKind() != oteltrace.SpanKindClient {
			t.Errorf("span %d: %q kind %v, want \"GET /items\" client", i, s.Name(), s.SpanKind())
		}
		if got := s.Parent().SpanID().String(); got != "b7ad6b7169203331" || s.SpanContext().TraceID().String() != "0af7651916cd43dd8448eb211c80319c" {
			t.Errorf("span %d: parent %s trace %s, want the caller's", i, got, s.SpanContext().TraceID())
		}
		if ts := s.SpanContext().TraceState().Get("vendor"); ts != "x" {
			t.Errorf("span %d: tracestate vendor=%q, want x (passed on)", i, ts)
		}
		want := "00-" + s.SpanContext().TraceID().String() + "-" + s.SpanContext().SpanID().String() + "-01"
		if got := []string{first, second}[i]; got != want {
			t.Errorf("try %d sent traceparent %s, want %s (its own span)", i, got, want)
		}
		if v, _ := attr(s, "http.route"); v.AsString() != "/items" {
			t.Errorf("span %d: http.route %q, want /items", i, v.AsString())
		}
	}
	if v, ok := attr(spans[0], "error.type"); !ok || v.AsString() != endpoint.ConnectFailed.String() || spans[0].Status().Code != codes.Error {
		t.Errorf("first try: error.type %q status %v, want %q, Error", v.AsString(), spans[0].Status().Code, endpoint.ConnectFailed)
	}
	if _, ok := attr(spans[0], "http.request.resend_count"); ok {
		t.Error("first try has http.request.resend_count, want none")
	}
	if v, _ := attr(spans[1], "http.request.resend_count"); v.AsInt64() != 1 {
		t.Errorf("second try: resend_count %d, want 1", v.AsInt64())
	}
	if v, _ := attr(spans[1], "http.response.status_code"); v.AsInt64() != 200 || spans[1].Status().Code == codes.Error {
		t.Errorf("second try: status %d (%v), want 200 and no error", v.AsInt64(), spans[1].Status().Code)
	}
}

// The sampling decision: a caller's flag is followed; a trace that
// begins here is drawn at the ratio, and one not sampled still carries a
// context on, unsampled, so that the next hops follow.
func TestSpanSampling(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ratio   float64
		headers map[string][]byte
		spans   int
		sent    string // "caller": its own passed on; "unsampled": a new one, flags 00; "span": the try's
	}{
		{"caller not sampled", 1, map[string][]byte{"traceparent": []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00")}, 0, "caller"},
		{"caller sampled", 0, map[string][]byte{"traceparent": []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")}, 1, "span"},
		{"b3 single sampled", 0, map[string][]byte{"b3": []byte("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")}, 1, "span"},
		{"b3 multi sampled", 0, map[string][]byte{"x-b3-traceid": []byte("463ac35c9f6413ad"), "x-b3-spanid": []byte("a2fb4a1d1a96d312"), "x-b3-sampled": []byte("1")}, 1, "span"},
		{"b3 not sampled", 1, map[string][]byte{"b3": []byte("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-0")}, 0, "caller"},
		{"begins here, ratio 1", 1, nil, 1, "span"},
		{"begins here, ratio 0", 0, nil, 0, "unsampled"},
		{"malformed traceparent begins here", 0, map[string][]byte{"traceparent": []byte("00-zzf7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")}, 0, "unsampled"},
		{"all-zero trace id begins here", 0, map[string][]byte{"traceparent": []byte("00-00000000000000000000000000000000-b7ad6b7169203331-01")}, 0, "unsampled"},
		{"upper-case hex begins here", 0, map[string][]byte{"traceparent": []byte("00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01")}, 0, "unsampled"},
		{"name in capitals", 0, map[string][]byte{"TraceParent": []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")}, 1, "span"},
		{"traceparent before b3", 0, map[string][]byte{"traceparent": []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"),
			"b3": []byte("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")}, 0, "caller"},
		{"malformed traceparent, b3 sampled", 0, map[string][]byte{"traceparent": []byte("00-zz"),
			"b3": []byte("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")}, 1, "span"},
		{"b3 multi debug flag", 0, map[string][]byte{"X-B3-TraceId": []byte("463ac35c9f6413ad"), "X-B3-SpanId": []byte("a2fb4a1d1a96d312"), "X-B3-Flags": []byte("1")}, 1, "span"},
		{"b3 multi without span id begins here", 0, map[string][]byte{"x-b3-traceid": []byte("463ac35c9f6413ad"), "x-b3-sampled": []byte("1")}, 0, "unsampled"},
	} {
		for _, scan := range []bool{false, true} {
			name := tc.name
			var view request.View = traced{headers: tc.headers}
			if scan {
				name += "/one pass"
				view = tracedScan{traced{headers: tc.headers}}
			}
			t.Run(name, func(t *testing.T) { checkSampling(t, tc.ratio, view, tc.spans, tc.sent) })
		}
	}
}

// checkSampling sends one request of view through a cluster tracing at
// ratio and checks its spans and the traceparent its try sends (want:
// "caller", its own passed on; "unsampled", a new one, flags 00;
// "span", the try's).
func checkSampling(t *testing.T, ratio float64, view request.View, spans int, want string) {
	c, rec := tracedCluster(t, ratio, false)
	var k Call
	k.Init(c, view, time.Now())
	k.Next()
	var buf [TraceParentLen]byte
	sent := k.TraceParent(&buf)
	k.OK()
	k.End(Result{Status: 200}, time.Now())
	if n := len(rec.Ended()); n != spans {
		t.Errorf("got %d spans, want %d", n, spans)
	}
	id, traced := k.TraceID()
	if !traced {
		t.Errorf("the request has no trace id, want one (sampled or not: the access log shows it)")
	}
	if sent != nil {
		if sc, ok := parseTraceParent(sent); !ok || sc.TraceID() != id {
			t.Errorf("sent %q, want a traceparent of the request's trace %s", sent, id)
		}
	}
	switch want {
	case "caller":
		if sent != nil {
			t.Errorf("sent %s, want the caller's passed on", sent)
		}
	case "unsampled":
		if sc, ok := parseTraceParent(sent); !ok || sc.IsSampled() {
			t.Errorf("sent %q, want a new unsampled traceparent", sent)
		}
	case "span":
		sc, ok := parseTraceParent(sent)
		if !ok || !sc.IsSampled() || len(rec.Ended()) == 0 || sc.SpanID() != rec.Ended()[0].SpanContext().SpanID() {
			t.Errorf("sent %q, want the span's", sent)
		}
	}
	if v := view.Header("x-b3-traceid"); len(v) == 16 && len(rec.Ended()) == 1 {
		if got := rec.Ended()[0].SpanContext().TraceID().String(); got != "0000000000000000"+string(v) {
			t.Errorf("trace id %s, want the 64-bit B3 id widened", got)
		}
	}
}

// The inbound's attempt is the server span; 4xx is no error there.
func TestServerSpan(t *testing.T) {
	c, rec := tracedCluster(t, 1, true)
	var k Call
	k.Init(c, traced{}, time.Now())
	k.Next()
	k.OK()
	k.End(Result{Status: 404}, time.Now())
	spans := rec.Ended()
	if len(spans) != 1 || spans[0].SpanKind() != oteltrace.SpanKindServer || spans[0].Status().Code == codes.Error {
		t.Fatalf("spans %v, want one server span without error", spans)
	}
	if spans[0].Parent().IsValid() {
		t.Errorf("a trace begun here has a parent: %v", spans[0].Parent())
	}
}

// A request that is not sampled costs no allocation.
func TestUnsampledAllocates(t *testing.T) {
	c, _ := tracedCluster(t, 0, false)
	v := traced{headers: map[string][]byte{"traceparent": []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00")}}
	none := traced{}
	var buf [TraceParentLen]byte
	for _, view := range []request.View{&v, &none, &tracedScan{v}, &tracedScan{none}} {
		var k Call
		if n := testing.AllocsPerRun(100, func() {
			k.Init(c, view, time.Time{}) // (a pointer: the interface holds it without allocating)
			k.Next()
			k.TraceParent(&buf)
			k.OK()
			k.End(Result{Status: 200}, time.Time{})
		}); n != 0 {
			t.Errorf("an unsampled request allocates %v times, want 0", n)
		}
	}
}

// The traceparent written is the ids in lower-case hex, whatever their
// bytes.
func TestFormatTraceParent(t *testing.T) {
	ids := [][24]byte{{}, {0x09, 0x0a, 0x0f, 0x10, 0x90, 0x99, 0x9a, 0xa9, 0xff, 0x01}}
	for i := range 100 {
		var id [24]byte
		for j := range id {
			id[j] = byte(rand.Uint32())
		}
		id[i%24] = 0xff
		ids = append(ids, id)
	}
	for _, id := range ids {
		var tid oteltrace.TraceID
		var sid oteltrace.SpanID
		copy(tid[:], id[:16])
		copy(sid[:], id[16:])
		var buf [TraceParentLen]byte
		for _, sampled := range []bool{false, true} {
			want := "00-" + hex.EncodeToString(tid[:]) + "-" + hex.EncodeToString(sid[:]) + map[bool]string{false: "-00", true: "-01"}[sampled]
			if got := string(formatTraceParent(&buf, tid, sid, sampled)); got != want {
				t.Errorf("got %s, want %s", got, want)
			}
		}
	}
}

// unhex takes lower-case hex digits only, at every position and every
// length that trace ids and flags have, and decodes them as
// encoding/hex does.
func TestUnhex(t *testing.T) {
	valid := func(src []byte) bool {
		for _, c := range src {
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
		return true
	}
	check := func(src []byte) {
		dst := make([]byte, len(src)/2)
		ok := unhex(dst, src)
		want, err := hex.DecodeString(string(src))
		if ok != valid(src) || ok && (err != nil || string(dst) != string(want)) {
			t.Errorf("unhex(%q) = %x, %v; want %x, %v", src, dst, ok, want, valid(src))
		}
	}
	for _, n := range []int{2, 8, 16, 32} {
		for range 50 {
			src := make([]byte, n)
			for i := range src {
				src[i] = "0123456789abcdef"[rand.IntN(16)]
			}
			check(src)
			for c := range 256 { // each byte value in each place
				i := rand.IntN(n)
				was := src[i]
				src[i] = byte(c)
				check(src)
				src[i] = was
			}
		}
	}
}

// A traceparent is read digit by digit as the spec says: any byte in
// any place that is not a lower-case hex digit makes it invalid, and the
// ids read are the hex of the ones written.
func TestParseTraceParentEveryByte(t *testing.T) {
	const base = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	for i := range len(base) {
		if base[i] == '-' {
			continue
		}
		for c := range 256 {
			v := []byte(base)
			v[i] = byte(c)
			sc, ok := parseTraceParent(v)
			want := '0' <= c && c <= '9' || 'a' <= c && c <= 'f'
			if ok != want {
				t.Errorf("%q: valid %v, want %v", v, ok, want)
				continue
			}
			flags, _ := hex.DecodeString(string(v[53:55]))
			if ok && (sc.TraceID().String() != string(v[3:35]) || sc.SpanID().String() != string(v[36:52]) || sc.IsSampled() != (flags[0]&1 == 1)) {
				t.Errorf("%q: read %s %s sampled %v", v, sc.TraceID(), sc.SpanID(), sc.IsSampled())
			}
		}
	}
	for _, bad := range []string{"ff" + base[2:], "00" + base[2:] + "-x", "01" + base[2:] + "x", base[:54]} {
		if _, ok := parseTraceParent([]byte(bad)); ok {
			t.Errorf("%q: valid, want invalid", bad)
		}
	}
	if _, ok := parseTraceParent([]byte("01" + base[2:] + "-later")); !ok {
		t.Errorf("a later version with more fields: invalid, want read as 00")
	}
}

// A trace header's name is known in any case, and only its own.
func TestTraceHeadersField(t *testing.T) {
	for _, tc := range []struct {
		name string
		want uint8
	}{
		{"traceparent", hasTraceParent}, {"TraceParent", hasTraceParent}, {"TRACEPARENT", hasTraceParent},
		{"tracestate", hasTraceState}, {"TraceState", hasTraceState}, {"b3", hasB3}, {"B3", hasB3},
		{"x-b3-traceid", hasB3TraceID}, {"X-B3-TraceId", hasB3TraceID},
		{"traceparens", 0}, {"uraceparent", 0}, {"trace-parent", 0}, {"traceparent_", 0}, {"x-b3-spanid", 0},
		{"x_b3_traceid", 0}, {"x-b4-traceid", 0}, {"x-request-id", 0}, {"User-Agent", 0}, {"c3", 0}, {"b4", 0}, {"", 0},
	} {
		var h TraceHeaders
		h.Field([]byte(tc.name), []byte("v"))
		if h.present != tc.want {
			t.Errorf("%q: found %04b, want %04b", tc.name, h.present, tc.want)
		}
		if (h.traceparent != nil) != (tc.want == hasTraceParent) {
			t.Errorf("%q: traceparent %q", tc.name, h.traceparent)
		}
	}
	var h TraceHeaders // the first traceparent counts
	h.Field([]byte("traceparent"), []byte("first"))
	h.Field([]byte("Traceparent"), []byte("second"))
	if string(h.traceparent) != "first" {
		t.Errorf("two traceparents: kept %q, want the first", h.traceparent)
	}
}

func FuzzParseTraceParent(f *testing.F) {
	f.Add("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	f.Add("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra")
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		sc, ok := parseTraceParent([]byte(v))
		if !ok {
			return
		}
		var buf [TraceParentLen]byte
		again, ok2 := parseTraceParent(formatTraceParent(&buf, sc.TraceID(), sc.SpanID(), sc.IsSampled()))
		if !ok2 || again.TraceID() != sc.TraceID() || again.SpanID() != sc.SpanID() || again.IsSampled() != sc.IsSampled() {
			t.Errorf("%q: parsed %v, formatted and parsed again %v", v, sc, again)
		}
	})
}

// headView is a request head as the HTTP/1.1 fast path holds it
// (h1.Head: each lookup a scan of its fields).
type headView struct {
	request.View
	h h1.Head
}

func (v *headView) Method() []byte         { return v.h.Method() }
func (v *headView) Authority() []byte      { return v.h.Host() }
func (v *headView) Path() []byte           { return v.h.Target() }
func (v *headView) GRPC() bool             { return false }
func (v *headView) Header(n string) []byte { return v.h.Get(n) }

// scannedView is a headView that gives its trace fields in one pass,
// as the HTTP/1.1 fast path's view does.
type scannedView struct{ headView }

func (v *scannedView) TraceFields() (h TraceHeaders) {
	for i := range v.h.NumFields() {
		h.Field(v.h.FieldAt(i))
	}
	return h
}

func parsedHead(tb testing.TB, head string) *headView {
	v := &headView{}
	if err := h1.ReadRequestHead(bufio.NewReader(strings.NewReader(head)), &v.h); err != nil {
		tb.Fatal(err)
	}
	return v
}

// BenchmarkCallTrace is one request's plan (Init to Clear, one try that
// writes its traceparent), without a tracer and with one: a trace begun
// here and not sampled (an outbound's request from its app), a caller's
// unsampled context (an inbound's), and the sidecars' default of 1%.
// The view gives its trace fields in one pass, as the HTTP/1.1 fast
// path's does; ", lookups" is a view that is asked header by header.
func BenchmarkCallTrace(b *testing.B) {
	const app = "GET /items HTTP/1.1\r\nHost: svc\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"
	const peer = "GET /items HTTP/1.1\r\nHost: svc\r\nUser-Agent: bench\r\nAccept: */*\r\nX-Forwarded-For: 127.0.0.1\r\n" +
		"X-Request-Id: 0af7651916cd43dd8448eb211c80319c\r\nX-Weft-Source: web\r\n" +
		"Traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00\r\n\r\n"
	for _, bc := range []struct {
		name   string
		tracer bool
		ratio  float64
		head   string
	}{
		{"no tracer", false, 0, app},
		{"begins here unsampled", true, 0, app},
		{"caller unsampled", true, 1, peer},
		{"begins here at 1%", true, 0.01, app},
	} {
		for _, lookups := range []bool{false, true} {
			name := bc.name
			if lookups {
				name += ", lookups"
			}
			b.Run(name, func(b *testing.B) {
				rec := tracetest.NewSpanRecorder()
				tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
				b.Cleanup(func() { tp.Shutdown(b.Context()) })
				c := NewCluster("svc", []*Endpoint{endpoint.New("svc", "svc-1", "127.0.0.1:1", nil)}, 0, nil)
				if bc.tracer {
					c.SetTracer(NewTracer(tp.Tracer("bench"), bc.ratio))
				}
				var view request.View = &scannedView{*parsedHead(b, bc.head)}
				if lookups {
					view = parsedHead(b, bc.head)
				}
				var k Call
				var buf [TraceParentLen]byte
				now := time.Now()
				b.ReportAllocs()
				for b.Loop() {
					k.Init(c, view, now)
					k.SetRoute("HTTPRoute/svc", "/items")
					k.Next()
					k.TraceParent(&buf)
					k.OKLater()
					k.Finish(now)
					k.End(Result{Status: 200}, now)
					k.Clear()
				}
			})
		}
	}
}
