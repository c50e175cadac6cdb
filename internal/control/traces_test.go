package control

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	oteltrace "go.opentelemetry.io/otel/trace"

	"github.com/weftmesh/weft/internal/collect/traces"
)

// exportSpans sends a trace of two services to the control plane's
// /v1/traces as a sidecar's SDK exporter would: web's root 30ms long,
// catalog's span below it. It returns the trace id.
func exportSpans(t *testing.T, addr string) string {
	t.Helper()
	var id string
	parent := context.Background()
	for _, service := range []string{"web", "catalog"} {
		exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpoint(addr), otlptracehttp.WithInsecure())
		if err != nil {
			t.Fatal(err)
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp),
			sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", service))))
		start := time.Now().Add(-time.Second)
		if service == "catalog" {
			start = start.Add(5 * time.Millisecond)
		}
		ctx, sp := tp.Tracer("test").Start(parent, "GET /"+service, oteltrace.WithTimestamp(start))
		if service == "web" {
			parent, id = ctx, sp.SpanContext().TraceID().String()
			sp.End(oteltrace.WithTimestamp(start.Add(30 * time.Millisecond)))
		} else {
			sp.End(oteltrace.WithTimestamp(start.Add(10 * time.Millisecond)))
		}
		if err := tp.Shutdown(context.Background()); err != nil {
			t.Fatalf("export to %s: %v", addr, err)
		}
	}
	return id
}

func TestTracesAPI(t *testing.T) {
	tc := start(t)
	id := exportSpans(t, tc.Addr())

	var list []traces.Summary
	if err := tc.api.Do(ctx(t), http.MethodGet, "/v1/traces?service=catalog&minDuration=20ms", nil, &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].TraceID != id || list[0].RootService != "web" || list[0].Spans != 2 || list[0].Duration != 30*time.Millisecond {
		t.Fatalf("GET /v1/traces?service=catalog&minDuration=20ms: got %+v, want trace %s rooted at web, 2 spans, 30ms", list, id)
	}
	var tree traces.Tree
	if err := tc.api.Do(ctx(t), http.MethodGet, "/v1/traces/"+id, nil, &tree); err != nil {
		t.Fatal(err)
	}
	if len(tree.Roots) != 1 || tree.Roots[0].Service != "web" || len(tree.Roots[0].Children) != 1 || tree.Roots[0].Children[0].Service != "catalog" {
		b, _ := json.Marshal(tree)
		t.Errorf("GET /v1/traces/%s: got %s, want web's span with catalog's below", id, b)
	}

	cases := []struct {
		path     string
		wantCode int
		want     string
	}{
		{"/v1/traces?service=nobody", 200, "[]"},
		{"/v1/traces?minDuration=31ms", 200, "[]"},
		{"/v1/traces?minDuration=soon", 400, `minDuration=\"soon\": want a duration`},
		{"/v1/traces?limit=0", 400, `limit=\"0\": want a number from 1 to 1000`},
		{"/v1/traces?limit=1001", 400, "from 1 to 1000"},
		{"/v1/traces/" + strings.Repeat("a", 32), 404, "trace " + strings.Repeat("a", 32) + " not found: the control plane holds the spans of its last 10000 traces"},
		{"/v1/traces/xyz", 400, `trace id \"xyz\": want 32 hex digits`},
	}
	for _, c := range cases {
		code, body := tc.get(t, c.path)
		if code != c.wantCode || !strings.Contains(body, c.want) {
			t.Errorf("GET %s: got %d %s, want %d with %s", c.path, code, body, c.wantCode, c.want)
		}
	}
	code, body := tc.get(t, "/metrics")
	if code != 200 || !strings.Contains(body, "weft_traces_spans 2") || !strings.Contains(body, `weft_traces_dropped_spans_total{reason="evicted"} 0`) {
		t.Errorf("/metrics: want weft_traces_spans 2 and the dropped counter")
	}
}

func TestTraceLimitsAreValidated(t *testing.T) {
	cfg := Default()
	cfg.TraceMaxSpans = 0
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--trace-max-spans 0") {
		t.Errorf("TraceMaxSpans 0: got %v, want an error naming --trace-max-spans", err)
	}
}
