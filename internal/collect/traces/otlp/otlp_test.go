package otlp

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	oteltrace "go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/internal/collect/traces"
	"github.com/weftmesh/weft/internal/collect/traces/tracestest"
)

func TestSDKExporterSpansLandInTheStore(t *testing.T) {
	for _, compression := range []otlptracehttp.Compression{otlptracehttp.NoCompression, otlptracehttp.GzipCompression} {
		t.Run(map[otlptracehttp.Compression]string{otlptracehttp.NoCompression: "plain", otlptracehttp.GzipCompression: "gzip"}[compression], func(t *testing.T) {
			s, _ := newStore(t, nil)
			mux := http.NewServeMux()
			mux.Handle("POST /v1/traces", &Handler{Store: s})
			srv := httptest.NewServer(mux)
			defer srv.Close()

			ctx := context.Background()
			exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(srv.URL+"/v1/traces"), otlptracehttp.WithCompression(compression))
			if err != nil {
				t.Fatal(err)
			}
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp),
				sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "web"))))
			tr := tp.Tracer("test")
			ctx, root := tr.Start(ctx, "GET /", oteltrace.WithSpanKind(oteltrace.SpanKindServer))
			cctx, client := tr.Start(ctx, "GET catalog", oteltrace.WithSpanKind(oteltrace.SpanKindClient), oteltrace.WithAttributes(attribute.Int("http.response.status_code", 200)))
			_, inner := tr.Start(cctx, "dial")
			inner.End()
			client.End()
			root.End()
			if err := tp.Shutdown(context.Background()); err != nil {
				t.Fatalf("exporter: %v", err)
			}

			id := root.SpanContext().TraceID().String()
			tree, ok, err := s.Trace(id)
			if !ok || err != nil {
				t.Fatalf("trace %s: got ok=%v err=%v, want it stored", id, ok, err)
			}
			if len(tree.Roots) != 1 || tree.Spans != 3 {
				t.Fatalf("got %d roots, %d spans; want 1 root, 3 spans", len(tree.Roots), tree.Spans)
			}
			r := tree.Roots[0]
			if r.SpanID != root.SpanContext().SpanID().String() || r.Service != "web" || r.Kind != "server" || len(r.Children) != 1 {
				t.Fatalf("root: got %+v", r.Span)
			}
			c := r.Children[0]
			if c.SpanID != client.SpanContext().SpanID().String() || c.Kind != "client" || len(c.Children) != 1 ||
				c.Children[0].SpanID != inner.SpanContext().SpanID().String() {
				t.Errorf("client span: got %+v with %d children, want the dial span below it", c.Span, len(c.Children))
			}
			if len(c.Attributes) != 1 || c.Attributes[0] != (traces.Attribute{Key: "http.response.status_code", Value: "200"}) {
				t.Errorf("client attributes: got %v", c.Attributes)
			}
		})
	}
}

func TestHandlerAnswers(t *testing.T) {
	okBody, _ := proto.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: of("web", pspan(1, 1, 0, "GET /", 0, 1))})
	badIDs, _ := proto.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: of("web", &tracepb0)})
	jsonBody := `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"catalog"}}]},
		"scopeSpans":[{"spans":[{"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"eee19b7ec3c1b174","parentSpanId":"eee19b7ec3c1b173",
		"name":"GET /items","kind":2,"startTimeUnixNano":"1544712660000000000","endTimeUnixNano":1544712661000000000,
		"status":{"code":2,"message":"boom"}}]}]}]}`
	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(b)
		zw.Close()
		return buf.Bytes()
	}
	cases := []struct {
		name, contentType, encoding string
		body                        []byte
		wantCode                    int
		wantInBody                  string // in the google.rpc.Status message, or the partial success
		wantSpans                   int
	}{
		{"protobuf", "application/x-protobuf", "", okBody, 200, "", 1},
		{"protobuf, gzip", "application/x-protobuf", "gzip", gz(okBody), 200, "", 1},
		{"json with hex ids", "application/json; charset=utf-8", "", []byte(jsonBody), 200, "", 1},
		{"json, gzip", "application/json", "gzip", gz([]byte(jsonBody)), 200, "", 1},
		{"bad ids: partial success", "application/x-protobuf", "", badIDs, 200, "1 spans without a valid trace or span id", 0},
		{"bad protobuf", "application/x-protobuf", "", []byte{0xff, 0xff, 0xff}, 400, "not an ExportTraceServiceRequest", 0},
		{"bad json", "application/json", "", []byte(`{"resourceSpans":`), 400, "not an ExportTraceServiceRequest", 0},
		{"json of another shape", "application/json", "", []byte(`{"resourceSpans":{"x":1}}`), 400, "not an ExportTraceServiceRequest", 0},
		{"bad gzip", "application/x-protobuf", "gzip", []byte("not gzip"), 400, "gzip", 0},
		{"unknown encoding", "application/x-protobuf", "br", okBody, 415, `Content-Encoding "br"`, 0},
		{"unknown type", "text/plain", "", okBody, 415, `Content-Type "text/plain"`, 0},
		{"no type", "", "", okBody, 415, `Content-Type ""`, 0},
		{"too large", "application/x-protobuf", "", bytes.Repeat([]byte{0}, 2000), 413, "over 1000 bytes", 0},
		{"too large once gunzipped", "application/x-protobuf", "gzip", gz(bytes.Repeat([]byte{0}, 100_000)), 413, "decompressed past 1000 bytes", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, _ := newStore(t, nil)
			srv := httptest.NewServer(&Handler{Store: s, MaxBody: 1000})
			defer srv.Close()
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/traces", bytes.NewReader(c.body))
			req.Header.Set("Content-Type", c.contentType)
			req.Header.Set("Content-Encoding", c.encoding)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.wantCode {
				t.Fatalf("status: got %d, want %d; body %q", resp.StatusCode, c.wantCode, body)
			}
			msg := decodeAnswer(t, resp.Header.Get("Content-Type"), c.wantCode, body)
			if !strings.Contains(msg, c.wantInBody) || (c.wantInBody == "" && msg != "") {
				t.Errorf("answer: got %q, want it to say %q", msg, c.wantInBody)
			}
			if n, _, _ := s.Held(); n != c.wantSpans {
				t.Errorf("spans stored: got %d, want %d", n, c.wantSpans)
			}
		})
	}

	s, _ := newStore(t, nil)
	srv := httptest.NewServer(&Handler{Store: s})
	defer srv.Close()
	resp, err := http.Post(srv.URL, "application/json", strings.NewReader(jsonBody))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	tree, ok, _ := s.Trace("5b8efff798038103d269b633813fc60c")
	if !ok || tree.Roots[0].SpanID != "eee19b7ec3c1b174" || tree.Roots[0].ParentSpanID != "eee19b7ec3c1b173" ||
		tree.Roots[0].Status != "error" || tree.Roots[0].Duration.Seconds() != 1 || tree.Roots[0].Service != "catalog" {
		t.Errorf("span from OTLP JSON: got %+v (found %v)", tree.Roots, ok)
	}
}

// tracepb0 is a span with no ids.
var tracepb0 = *pspan(1, 1, 0, "x", 0, 1)

func init() { tracepb0.TraceId, tracepb0.SpanId = nil, nil }

// decodeAnswer decodes an OTLP/HTTP answer: its partial success's
// message for 200, the google.rpc.Status's message otherwise, or the
// text of a 415 to an unknown type.
func decodeAnswer(t *testing.T, contentType string, code int, body []byte) string {
	t.Helper()
	var m proto.Message
	if code == 200 {
		m = &coltracepb.ExportTraceServiceResponse{}
	} else {
		m = &statuspb.Status{}
	}
	var err error
	switch contentType {
	case typeProtobuf:
		err = proto.Unmarshal(body, m)
	case typeJSON:
		err = unmarshalJSON(body, m)
	default:
		return string(body)
	}
	if err != nil {
		t.Fatalf("answer as %s: %v", contentType, err)
	}
	switch x := m.(type) {
	case *coltracepb.ExportTraceServiceResponse:
		return x.GetPartialSuccess().GetErrorMessage()
	case *statuspb.Status:
		return x.GetMessage()
	}
	return ""
}

var (
	pspan = tracestest.Span
	of    = tracestest.Of
)

func newStore(t *testing.T, edit func(*traces.Limits)) (*traces.Store, *prometheus.Registry) {
	t.Helper()
	lim := traces.DefaultLimits()
	if edit != nil {
		edit(&lim)
	}
	reg := prometheus.NewRegistry()
	s, err := traces.New(lim, reg)
	if err != nil {
		t.Fatal(err)
	}
	return s, reg
}
