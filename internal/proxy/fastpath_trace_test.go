package proxy

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/weftmesh/weft/internal/h1"
	"github.com/weftmesh/weft/internal/proxy/plan"
	"github.com/weftmesh/weft/internal/proxy/stdhttp"
)

// fastPairTraced is fastPairWith with both hops tracing at ratio (spans
// recorded in memory).
func fastPairTraced(tb testing.TB, app string, ratio float64) string {
	return fastPairTracedTo(tb, app, ratio, tracetest.NewSpanRecorder())
}

// fastPairTracedTo is fastPairTraced with the spans recorded in rec.
func fastPairTracedTo(tb testing.TB, app string, ratio float64, rec *tracetest.SpanRecorder) string {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tb.Cleanup(func() { tp.Shutdown(tb.Context()) })
	return fastPairTracing(tb, app, plan.NewTracer(tp.Tracer("bench"), ratio))
}

// fastPairTracing is the traced pair's setup (the outbound names its
// source) with both hops tracing by tr (nil: no tracer).
func fastPairTracing(tb testing.TB, app string, tr *plan.Tracer) string {
	reg := prometheus.NewRegistry()
	m := plan.NewMetrics(reg)
	m.Source = "client"
	serve := func(cfg Config) string { return serveProxy(tb, cfg) }
	in := stdhttp.NewInbound("svc", "svc-1", app, stdhttp.NewTransport(), m)
	in.TraceWith(tr)
	inAddr := serve(Config{Resolve: in.Resolve, Metrics: m, Log: discard})
	table := plan.NewTable(m, plan.Policy{Source: "client"})
	table.SetTracer(tr)
	updateTable(table, map[string][]EndpointSpec{"svc": {{Instance: "svc-1", Address: inAddr}}})
	out := stdhttp.NewOutbound(table, stdhttp.NewTransport(), stdhttp.NewTransport(), m, discard)
	return serve(Config{Resolve: out.Resolve, Connect: true, Metrics: m, Log: discard})
}

// BenchmarkFastPathPairTraced is BenchmarkFastPathPair with tracing on
// at 1%, as the sidecars run by default: what the spans cost per request.
func BenchmarkFastPathPairTraced(b *testing.B) { benchPair(b, fastPairTraced(b, rawBackend(b), 0.01)) }

// BenchmarkFastPathPairUnsampled is BenchmarkFastPathPair with tracing
// on and no request sampled: what every request not sampled costs (the
// outbound begins a trace and sends it on unsampled, the inbound
// follows).
func BenchmarkFastPathPairUnsampled(b *testing.B) { benchPair(b, fastPairTraced(b, rawBackend(b), 0)) }

// BenchmarkFastPathPairNoTracer is the traced pair's setup with no
// tracer: what the two benchmarks above are to be compared with.
func BenchmarkFastPathPairNoTracer(b *testing.B) {
	benchPair(b, fastPairTracing(b, rawBackend(b), nil))
}

// traceApp answers every request and sends what trace headers it came
// with on heads, one line per field ("name: value").
func traceApp(tb testing.TB, heads chan<- []string) string {
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	return scriptedApp(tb, func(c net.Conn, br *bufio.Reader) {
		var h h1.Head
		for h1.ReadRequestHead(br, &h) == nil {
			var got []string
			for i := range h.NumFields() {
				name, value := h.FieldAt(i)
				if n := strings.ToLower(string(name)); n == "traceparent" || n == "tracestate" || strings.HasPrefix(n, "x-b3-") || n == "b3" {
					got = append(got, n+": "+string(value))
				}
			}
			heads <- got
			if _, err := c.Write(resp); err != nil {
				return
			}
		}
	})
}

// Through the fast path's two hops, the trace context goes on as
// docs/observability.md says: a trace begun at the outbound and not
// sampled reaches the app as one new unsampled traceparent; a caller's
// unsampled one is passed on as it came; a sampled caller's (W3C, in
// any case, or B3) is followed, and the app sees the inbound's span as
// its parent.
func TestFastPathTracePropagation(t *testing.T) {
	checkGoroutines(t)
	const caller = "0af7651916cd43dd8448eb211c80319c"
	for _, tc := range []struct {
		name    string
		ratio   float64
		fields  string
		spans   int
		check   func(t *testing.T, got []string)
		traceID string // of the spans and the traceparent sent ("": a new one)
	}{
		{"begins here, not sampled", 0, "", 0, func(t *testing.T, got []string) {
			if len(got) != 1 || !strings.HasPrefix(got[0], "traceparent: 00-") || !strings.HasSuffix(got[0], "-00") || len(got[0]) != len("traceparent: ")+plan.TraceParentLen {
				t.Errorf("app got %q, want one new unsampled traceparent", got)
			}
		}, ""},
		{"caller not sampled", 1, "Traceparent: 00-" + caller + "-b7ad6b7169203331-00\r\nTracestate: v=1\r\n", 0, func(t *testing.T, got []string) {
			if want := []string{"traceparent: 00-" + caller + "-b7ad6b7169203331-00", "tracestate: v=1"}; strings.Join(got, "|") != strings.Join(want, "|") {
				t.Errorf("app got %q, want %q (passed on as it came)", got, want)
			}
		}, caller},
		{"caller sampled, name in capitals", 0, "TRACEPARENT: 00-" + caller + "-b7ad6b7169203331-01\r\n", 2, nil, caller},
		{"b3 sampled", 0, "X-B3-TraceId: " + caller + "\r\nX-B3-SpanId: b7ad6b7169203331\r\nX-B3-Sampled: 1\r\n", 2, func(t *testing.T, got []string) {
			if len(got) != 4 || got[0] != "x-b3-traceid: "+caller || got[3] == "" || !strings.HasPrefix(got[3], "traceparent: 00-"+caller+"-") {
				t.Errorf("app got %q, want the B3 fields as they came and a traceparent of the caller's trace", got)
			}
		}, caller},
	} {
		t.Run(tc.name, func(t *testing.T) {
			heads := make(chan []string, 4)
			rec := tracetest.NewSpanRecorder()
			outAddr := fastPairTracedTo(t, traceApp(t, heads), tc.ratio, rec)
			c, err := net.Dial("tcp", outAddr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			br := bufio.NewReader(c)
			var resp h1.Head
			var got [2][]string
			for i := range got { // twice: a new trace each time, or the caller's each time
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.Write([]byte("GET /items HTTP/1.1\r\nHost: svc\r\n" + tc.fields + "\r\n")); err != nil {
					t.Fatal(err)
				}
				if err := h1.ReadResponseHead(br, &resp); err != nil || resp.Status != 200 {
					t.Fatalf("response: %v (status %d), want 200", err, resp.Status)
				}
				br.Discard(int(resp.ContentLength))
				select {
				case got[i] = <-heads:
				case <-time.After(5 * time.Second):
					t.Fatal("the app got no request")
				}
			}
			if tc.check != nil {
				tc.check(t, got[0])
			}
			if tc.traceID == "" && strings.Join(got[0], "") == strings.Join(got[1], "") {
				t.Errorf("two requests sent the same new trace %q, want one each", got[0])
			}
			deadline := time.Now().Add(5 * time.Second) // (a span ends once the answer is relayed)
			for len(rec.Ended()) < 2*tc.spans && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			spans := rec.Ended()
			if len(spans) != 2*tc.spans {
				t.Fatalf("got %d spans, want %d", len(spans), 2*tc.spans)
			}
			for _, s := range spans {
				if id := s.SpanContext().TraceID().String(); id != tc.traceID {
					t.Errorf("span %q in trace %s, want the caller's %s", s.Name(), id, tc.traceID)
				}
			}
			if tc.spans > 0 { // the app's parent is the inbound's server span of its request
				var server string
				for _, s := range spans[:tc.spans] {
					if s.SpanKind().String() == "server" {
						server = s.SpanContext().SpanID().String()
					}
				}
				var sent string
				for _, f := range got[0] {
					if strings.HasPrefix(f, "traceparent: ") {
						sent = f
					}
				}
				if want := "traceparent: 00-" + tc.traceID + "-" + server + "-01"; sent != want {
					t.Errorf("app got %q, want %q (the inbound's server span)", sent, want)
				}
			}
		})
	}
}
