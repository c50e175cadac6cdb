package telemetry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	oteltrace "go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Spans the SDK ends reach an OTLP/HTTP receiver as one
// ExportTraceServiceRequest a standard decoder reads: resource, parents,
// kinds, attributes and status as they were.
func TestOTLPHTTPExporter(t *testing.T) {
	var mu sync.Mutex
	var got []*coltracepb.ExportTraceServiceRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" || proto.Unmarshal(b, &req) != nil {
			http.Error(w, "bad export", http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, &req)
		mu.Unlock()
	}))
	defer srv.Close()

	tp, err := NewTracerProvider(context.Background(), Tracing{Endpoint: srv.URL, Service: "web", Instance: "web-1"})
	if err != nil {
		t.Fatal(err)
	}
	tr := tp.Tracer("weft")
	ctx, parent := tr.Start(context.Background(), "GET /", oteltrace.WithSpanKind(oteltrace.SpanKindServer))
	_, child := tr.Start(ctx, "GET /items", oteltrace.WithSpanKind(oteltrace.SpanKindClient),
		oteltrace.WithAttributes(attribute.String("url.path", "/items"), attribute.Int("http.response.status_code", 503)))
	child.SetStatus(codes.Error, "503")
	child.End()
	parent.End()
	if err := tp.Shutdown(context.Background()); err != nil { // (sends what is queued)
		t.Fatalf("Shutdown: %v", err)
	}

	mu.Lock()
	defer mu.Unlock()
	var spans []*tracepb.Span
	for _, req := range got {
		for _, rs := range req.ResourceSpans {
			if v := rs.GetResource().GetAttributes(); len(v) != 2 {
				t.Errorf("resource attributes %v, want service.name and service.instance.id", v)
			}
			for _, ss := range rs.ScopeSpans {
				if ss.GetScope().GetName() != "weft" {
					t.Errorf("scope %q, want weft", ss.GetScope().GetName())
				}
				spans = append(spans, ss.Spans...)
			}
		}
	}
	if len(spans) != 2 {
		t.Fatalf("got %d spans, want 2", len(spans))
	}
	c, p := spans[0], spans[1]
	if string(c.ParentSpanId) != string(p.SpanId) || string(c.TraceId) != string(p.TraceId) || len(p.ParentSpanId) != 0 {
		t.Errorf("child's parent %x (trace %x), parent %x (trace %x, parent %x): want one trace, child below parent",
			c.ParentSpanId, c.TraceId, p.SpanId, p.TraceId, p.ParentSpanId)
	}
	if c.Kind != tracepb.Span_SPAN_KIND_CLIENT || p.Kind != tracepb.Span_SPAN_KIND_SERVER || c.Name != "GET /items" {
		t.Errorf("kinds %v %v, name %q: want client GET /items under a server span", c.Kind, p.Kind, c.Name)
	}
	if c.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_ERROR || c.GetStatus().GetMessage() != "503" {
		t.Errorf("child status %v, want ERROR 503", c.GetStatus())
	}
	if a := c.Attributes; len(a) != 2 || a[1].GetValue().GetIntValue() != 503 || a[0].GetValue().GetStringValue() != "/items" {
		t.Errorf("child attributes %v, want url.path /items and status 503", a)
	}
	if c.StartTimeUnixNano == 0 || c.EndTimeUnixNano < c.StartTimeUnixNano {
		t.Errorf("child times %d..%d", c.StartTimeUnixNano, c.EndTimeUnixNano)
	}
}
