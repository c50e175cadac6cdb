package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	oteltrace "go.opentelemetry.io/otel/trace"

	"github.com/weftmesh/weft/internal/collect/traces"
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

// TestTracesThroughTheDemo sends one request to the demo's web through
// web's sidecar, inside a trace the test begins, and finds it in the
// control plane as one trace: the sidecars' spans of web, catalog and
// ratings, each below the span of the call that led to it and starting
// after it.
func TestTracesThroughTheDemo(t *testing.T) {
	t.Parallel()
	m := meshtest.New(t)
	p := m.Start("demo", m.Bins.Weft, []string{"TMPDIR=" + t.TempDir()},
		"demo", "--listen", "127.0.0.1:0", "--outbound", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--load-interval", "0")
	outbound := p.WaitLog(t, regexp.MustCompile(`curl -x http://(\S+) http://catalog/items`), 60*time.Second)[1]
	control := p.WaitLog(t, regexp.MustCompile(`a control plane at (\S+),`), time.Second)[1]
	m.Eventually(20*time.Second, func() (bool, string) {
		resp, body, err := meshtest.Via(outbound, "web", "/")
		if err != nil {
			return false, err.Error()
		}
		return resp.StatusCode == 200 && strings.Contains(body, "got the catalog from catalog-v"), body
	})

	// The request, in a trace begun (and sampled) here.
	client, stop := tracerFor(t, control, "e2e-client")
	ctx, sp := client.Start(context.Background(), "GET http://web/", oteltrace.WithSpanKind(oteltrace.SpanKindClient))
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://web/", nil)
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(req.Header))
	resp, body, err := meshtest.ViaRequest(outbound, req)
	sp.End()
	stop()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET http://web/ through web's sidecar: %v %s", err, body)
	}
	id := sp.SpanContext().TraceID().String()

	// The sidecars export in batches, each on its own: wait until every
	// service's spans have come and no span waits for its parent.
	var tree traces.Tree
	m.Eventually(30*time.Second, func() (bool, string) {
		out, errOut, code := m.Weft("traces", "--control", control, "-o", "json", id)
		if code != 0 {
			return false, out + errOut
		}
		tree = traces.Tree{}
		if err := json.Unmarshal([]byte(out), &tree); err != nil {
			return false, err.Error()
		}
		for _, sv := range []string{"web", "catalog", "ratings"} {
			if !slices.Contains(tree.Services, sv) {
				return false, out
			}
		}
		return len(tree.Roots) == 1, out
	})

	// One root, the test's span; below it, a chain of calls down to
	// ratings' server span.
	if len(tree.Roots) != 1 || tree.Roots[0].Service != "e2e-client" {
		b, _ := json.MarshalIndent(tree, "", " ")
		t.Fatalf("trace %s: want one root, the test's span; got:\n%s", id, b)
	}
	var chain []string
	var walk func(n *traces.Node, parent *traces.Node) bool
	walk = func(n *traces.Node, parent *traces.Node) bool {
		// A span may end after its parent (a client span ends at the
		// answer's headers, the server's once the body is written), but
		// it starts after it.
		if parent != nil && n.Start.Before(parent.Start) {
			t.Errorf("%s %s %q starts at %s, before its parent %s %q at %s", n.Service, n.Kind, n.Name, n.Start,
				parent.Service, parent.Name, parent.Start)
		}
		chain = append(chain, n.Service+"/"+n.Kind)
		if n.Service == "ratings" && n.Kind == "server" {
			return true
		}
		for _, c := range n.Children {
			if walk(c, n) {
				return true
			}
		}
		chain = chain[:len(chain)-1]
		return false
	}
	if !walk(tree.Roots[0], nil) {
		b, _ := json.MarshalIndent(tree, "", " ")
		t.Fatalf("trace %s: no ratings server span below the root:\n%s", id, b)
	}
	// The mesh's hops in order: web's sidecar takes the call in, catalog's,
	// then ratings'; each service's server span below a client span.
	var order []string
	for i, hop := range chain {
		if strings.HasSuffix(hop, "/server") {
			order = append(order, strings.TrimSuffix(hop, "/server"))
			if i == 0 || !strings.HasSuffix(chain[i-1], "/client") {
				t.Errorf("path to ratings %v: %s's server span is not below a client span", chain, hop)
			}
		}
	}
	if strings.Join(order, ",") != "web,catalog,ratings" {
		t.Errorf("path to ratings %v: server spans of %v, want web, catalog, ratings in that order", chain, order)
	}

	out, errOut, code := m.Weft("traces", "--control", control, "--service", "ratings")
	if code != 0 || !regexp.MustCompile(`(?m)^`+id+`\s+e2e-client GET http://web/\s+\d+\s+catalog,e2e-client,ratings,web\s`).MatchString(out) {
		t.Errorf("weft traces --service ratings: exit %d, want %s rooted at the test's span across catalog, e2e-client, ratings, web:\n%s%s", code, id, out, errOut)
	}
	out, _, _ = m.Weft("traces", "--control", control, id)
	t.Logf("weft traces %s:\n%s", id, out)
}
