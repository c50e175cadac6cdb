package e2e

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/meshtest"
)

// otlpSink is an OTLP receiver of the test's own, over HTTP and gRPC: it
// keeps every span with the service.name of its resource.
type otlpSink struct {
	collectortrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []sunk
}

type sunk struct {
	service string
	span    *tracepb.Span
}

func (s *otlpSink) take(req *collectortrace.ExportTraceServiceRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				service = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				s.spans = append(s.spans, sunk{service, sp})
			}
		}
	}
}

func (s *otlpSink) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	s.take(req)
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func (s *otlpSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	var req collectortrace.ExportTraceServiceRequest
	if err != nil || r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
		http.Error(w, "want an ExportTraceServiceRequest on /v1/traces", http.StatusBadRequest)
		return
	}
	s.take(&req)
	b, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(b)
}

func (s *otlpSink) get() []sunk {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sunk(nil), s.spans...)
}

// The sidecars' spans reach any OTLP receiver: the caller's sidecar
// exports by OTLP/HTTP, the callee's by OTLP/gRPC, each to a receiver
// the test runs; the two spans are one trace, the server span the child
// of the client span, and the access log names the trace.
func TestSpansToAnOTLPReceiver(t *testing.T) {
	t.Parallel()
	m := meshtest.New(t)
	cp := m.Control()

	httpSink, grpcSink := &otlpSink{}, &otlpSink{}
	hs := httptest.NewServer(httpSink)
	t.Cleanup(hs.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(gs, grpcSink)
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)

	app := m.App("echo-1")
	m.Sidecar(cp, "--service", "echo", "--id", "echo-1", "--app-port", app.Port,
		"--trace-sampling", "1", "--otlp-endpoint", "grpc://"+ln.Addr().String())
	logFile := filepath.Join(t.TempDir(), "access.log")
	consumer := m.Sidecar(cp, "--service", "client", "--trace-sampling", "1", "--access-log", logFile,
		"--otlp-endpoint", hs.URL+"/v1/traces")
	waitInstances(t, consumer, "echo", 1)

	// One more request, with an id to find it by.
	req, _ := http.NewRequest(http.MethodGet, "http://echo/traced", nil)
	req.Header.Set("X-Request-Id", "otlp-e2e-1")
	if resp, body, err := meshtest.ViaRequest(consumer.Outbound, req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET http://echo/traced: %v %s", err, body)
	}

	// The access log names the request's trace.
	var traceID string
	m.Eventually(5*time.Second, func() (bool, string) {
		b, _ := os.ReadFile(logFile)
		for _, line := range strings.Split(string(b), "\n") {
			var rec struct {
				RequestID string `json:"request_id"`
				TraceID   string `json:"trace_id"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.RequestID == "otlp-e2e-1" {
				traceID = rec.TraceID
				return len(traceID) == 32, line
			}
		}
		return false, string(b)
	})

	// Each sidecar's batch comes within its schedule (5 s).
	var client, server *tracepb.Span
	m.Eventually(20*time.Second, func() (bool, string) {
		client, server = nil, nil
		for _, s := range httpSink.get() {
			if s.service == "client" && hex.EncodeToString(s.span.GetTraceId()) == traceID && s.span.GetKind() == tracepb.Span_SPAN_KIND_CLIENT {
				client = s.span
			}
		}
		for _, s := range grpcSink.get() {
			if s.service == "echo" && hex.EncodeToString(s.span.GetTraceId()) == traceID && s.span.GetKind() == tracepb.Span_SPAN_KIND_SERVER {
				server = s.span
			}
		}
		return client != nil && server != nil, fmt.Sprintf("trace %s: client span over OTLP/HTTP %v, server span over OTLP/gRPC %v (%d and %d spans received)",
			traceID, client != nil, server != nil, len(httpSink.get()), len(grpcSink.get()))
	})
	if len(client.GetParentSpanId()) != 0 {
		t.Errorf("the client span has parent %x: want a root (the request came without a trace)", client.GetParentSpanId())
	}
	if string(server.GetParentSpanId()) != string(client.GetSpanId()) {
		t.Errorf("the server span's parent is %x, want the client span %x", server.GetParentSpanId(), client.GetSpanId())
	}
	attrs := func(sp *tracepb.Span) map[string]string {
		out := map[string]string{}
		for _, a := range sp.GetAttributes() {
			switch v := a.GetValue().GetValue().(type) {
			case *commonpb.AnyValue_IntValue:
				out[a.GetKey()] = fmt.Sprint(v.IntValue)
			case *commonpb.AnyValue_StringValue:
				out[a.GetKey()] = v.StringValue
			}
		}
		return out
	}
	for name, sp := range map[string]*tracepb.Span{"client": client, "server": server} {
		a := attrs(sp)
		if sp.GetName() != "GET" || a["http.request.method"] != "GET" || a["url.path"] != "/traced" || a["http.response.status_code"] != "200" {
			t.Errorf("%s span: name %q attributes %v, want GET, http.request.method GET, url.path /traced, status 200", name, sp.GetName(), a)
		}
	}
	if a := attrs(client); a["weft.instance"] != "echo-1" || a["server.address"] != "echo" {
		t.Errorf("client span: attributes %v, want weft.instance echo-1 and server.address echo", a)
	}
}
