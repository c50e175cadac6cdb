package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	oteltrace "go.opentelemetry.io/otel/trace"

	"github.com/weftmesh/weft/internal/meshtest"
)

// tracerFor is an OpenTelemetry SDK exporting by OTLP/HTTP to the
// control plane at addr, as service; spans go out as they end.
func tracerFor(t *testing.T, addr, service string) (oteltrace.Tracer, func()) {
	t.Helper()
	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpoint(addr), otlptracehttp.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", service))))
	return tp.Tracer("e2e"), func() {
		if err := tp.Shutdown(context.Background()); err != nil {
			t.Errorf("exporter of %s: %v", service, err)
		}
	}
}

func TestTracesFromOTLP(t *testing.T) {
	t.Parallel()
	m := meshtest.New(t)
	cp := m.Control("--trace-max-traces", "100")

	// A request through web, catalog and ratings, each service exporting
	// its own spans, as their sidecars would; ratings fails.
	web, stopWeb := tracerFor(t, cp.Addr, "web")
	catalog, stopCatalog := tracerFor(t, cp.Addr, "catalog")
	ratings, stopRatings := tracerFor(t, cp.Addr, "ratings")
	t0 := time.Now().Add(-time.Minute)
	at := func(ms int) oteltrace.SpanStartEventOption {
		return oteltrace.WithTimestamp(t0.Add(time.Duration(ms) * time.Millisecond))
	}
	end := func(ms int) oteltrace.SpanEndOption {
		return oteltrace.WithTimestamp(t0.Add(time.Duration(ms) * time.Millisecond))
	}
	server, client := oteltrace.WithSpanKind(oteltrace.SpanKindServer), oteltrace.WithSpanKind(oteltrace.SpanKindClient)

	ctx, root := web.Start(context.Background(), "GET /", server, at(0))
	ctx, toCatalog := web.Start(ctx, "GET catalog", client, at(2))
	ctx, inCatalog := catalog.Start(ctx, "GET /items", server, at(4))
	ctx, toRatings := catalog.Start(ctx, "GET ratings", client, at(6))
	_, inRatings := ratings.Start(ctx, "GET /", server, at(8))
	inRatings.SetStatus(codes.Error, "no ratings")
	inRatings.End(end(18))
	toRatings.End(end(20))
	inCatalog.End(end(30))
	toCatalog.End(end(32))
	root.End(end(40))
	stopWeb()
	stopCatalog()
	stopRatings()
	id := root.SpanContext().TraceID().String()

	out, errOut, code := m.Weft("traces", "--control", cp.Addr)
	line := regexp.MustCompile(`(?m)^` + id + `\s+web GET /\s+5\s+catalog,ratings,web\s+40ms\s+\d\d:\d\d:\d\d\.\d{3}$`)
	if code != 0 || !strings.HasPrefix(out, "TRACE ID") || !line.MatchString(out) {
		t.Fatalf("weft traces: exit %d, want a line for %s, web GET /, 5 spans, 40ms:\n%s%s", code, id, out, errOut)
	}
	for _, c := range []struct {
		args []string
		want bool
	}{
		{[]string{"--service", "ratings"}, true},
		{[]string{"--service", "ledger"}, false},
		{[]string{"--min-duration", "40ms"}, true},
		{[]string{"--min-duration", "41ms"}, false},
	} {
		out, errOut, code := m.Weft(append([]string{"traces", "--control", cp.Addr}, c.args...)...)
		if code != 0 || strings.Contains(out, id) != c.want {
			t.Errorf("weft traces %v: exit %d, want the trace listed: %v:\n%s%s", c.args, code, c.want, out, errOut)
		}
	}

	out, errOut, code = m.Weft("traces", "--control", cp.Addr, id)
	if code != 0 {
		t.Fatalf("weft traces %s: exit %d\n%s%s", id, code, out, errOut)
	}
	want := []string{
		`^trace ` + id + `: 5 spans across catalog, ratings, web, 40ms, started `,
		`^SPAN +SERVICE +KIND +OFFSET +DURATION +STATUS`,
		`^GET / +web +server +\+0s +40ms +unset +\|={40}\|$`,
		`^  GET catalog +web +client +\+2ms +30ms +unset +\|  =+ +\|$`,
		`^    GET /items +catalog +server +\+4ms +26ms +unset +\|`,
		`^      GET ratings +catalog +client +\+6ms +14ms +unset +\|`,
		`^        GET / +ratings +server +\+8ms +10ms +error: no ratings +\|        ={10} {22}\|$`,
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("weft traces %s: got %d lines, want %d:\n%s", id, len(lines), len(want), out)
	}
	for i, re := range want {
		if !regexp.MustCompile(re).MatchString(lines[i]) {
			t.Errorf("weft traces %s, line %d: got %q, want it to match %q", id, i+1, lines[i], re)
		}
	}

	out, _, code = m.Weft("traces", "--control", cp.Addr, "-o", "json", id)
	if code != 0 || !strings.Contains(out, `"parentSpanId": "`+toRatings.SpanContext().SpanID().String()+`"`) {
		t.Errorf("weft traces -o json %s: exit %d, want ratings' span with the catalog's client span as its parent:\n%s", id, code, out)
	}
	_, errOut, code = m.Weft("traces", "--control", cp.Addr, strings.Repeat("0f", 16))
	if code != 1 || !strings.Contains(errOut, "trace "+strings.Repeat("0f", 16)+" not found") {
		t.Errorf("weft traces of an unknown id: exit %d, want 1 and not found:\n%s", code, errOut)
	}

	// A flood of traces: the control plane keeps the last 100 and counts
	// what it let go (the first trace, 5 spans, and 50 of one span).
	flood, stopFlood := tracerFor(t, cp.Addr, "flood")
	for i := range 150 {
		_, sp := flood.Start(context.Background(), fmt.Sprintf("GET /%d", i))
		sp.End()
	}
	stopFlood()
	out, _, _ = m.Weft("traces", "--control", cp.Addr, "--limit", "1000", "-o", "json")
	if n := strings.Count(out, `"traceId"`); n != 100 {
		t.Errorf("after 151 traces with --trace-max-traces 100: %d listed, want 100", n)
	}
	_, metrics := meshtest.Get("http://" + cp.Addr + "/metrics")
	for _, want := range []string{"weft_traces_traces 100", `weft_traces_dropped_spans_total{reason="evicted"} 55`, "weft_traces_received_spans_total 155"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("control plane /metrics: want %s", want)
		}
	}
}
