package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/interop"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/proxy"
)

// TestGRPCInteropThroughTwoSidecars runs gRPC's own interop cases from a
// grpc-go client through a consumer sidecar and a provider sidecar to a
// grpc-go interop server. The client names the service in :authority
// (reverse mode); HTTP/2 stays HTTP/2 across both hops. It runs with
// each --http2-engine.
func TestGRPCInteropThroughTwoSidecars(t *testing.T) {
	t.Parallel()
	for _, engine := range []string{"weft", "x/net"} {
		t.Run(strings.ReplaceAll(engine, "/", ""), func(t *testing.T) { testGRPCInterop(t, engine) })
	}
}

func testGRPCInterop(t *testing.T, engine string) {
	m := meshtest.New(t)
	cp := m.Control()
	app := m.App("interop-1", "--grpc")
	m.Sidecar(cp, "--service", "interop", "--id", "interop-1", "--app-port", app.Port, "--app-protocol", "h2c", "--http2-engine", engine)
	consumer := m.Sidecar(cp, "--service", "client", "--http2-engine", engine)

	conn, tc := interopClient(t, m, consumer.Outbound, "interop")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Each case fails the test binary with its own message if the mesh
	// breaks it (the interop package's way).
	cases := []struct {
		name string
		run  func()
	}{
		{"empty_unary", func() { interop.DoEmptyUnaryCall(ctx, tc) }},
		{"large_unary", func() { interop.DoLargeUnaryCall(ctx, tc) }},
		{"client_streaming", func() { interop.DoClientStreaming(ctx, tc) }},
		{"server_streaming", func() { interop.DoServerStreaming(ctx, tc) }},
		{"ping_pong", func() { interop.DoPingPong(ctx, tc) }},
		{"empty_stream", func() { interop.DoEmptyStream(ctx, tc) }},
		{"cancel_after_begin", func() { interop.DoCancelAfterBegin(ctx, tc) }},
		{"cancel_after_first_response", func() { interop.DoCancelAfterFirstResponse(ctx, tc) }},
		{"timeout_on_sleeping_server", func() { interop.DoTimeoutOnSleepingServer(ctx, tc) }},
		{"custom_metadata", func() { interop.DoCustomMetadata(ctx, tc) }},
		{"status_code_and_message", func() { interop.DoStatusCodeAndMessage(ctx, tc) }},
		{"special_status_message", func() { interop.DoSpecialStatusMessage(ctx, tc) }},
		{"unimplemented_method", func() { interop.DoUnimplementedMethod(ctx, conn) }},
		{"unimplemented_service", func() { interop.DoUnimplementedService(ctx, testgrpc.NewUnimplementedServiceClient(conn)) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run() })
	}

	// The sidecars record gRPC status codes, not only HTTP ones.
	for _, code := range []string{"0", "2", "12"} { // OK, UNKNOWN (status_code_and_message), UNIMPLEMENTED
		if metricSum(consumer.Admin, "weft_requests_total", `direction="outbound"`, `destination_service="interop"`, fmt.Sprintf(`grpc_status="%s"`, code)) == 0 {
			t.Errorf("consumer metrics lack outbound requests to interop with grpc_status %s", code)
		}
	}
}

// HTTP/1.1 callers reach an HTTP/2-only app, and HTTP/2 callers an
// HTTP/1.1 app: each hop speaks what its peer needs.
func TestProtocolsMeetAcrossTheMesh(t *testing.T) {
	t.Parallel()
	m := meshtest.New(t)
	cp := m.Control()
	h2app := m.App("h2-1", "--h2c")
	m.Sidecar(cp, "--service", "h2only", "--app-port", h2app.Port, "--app-protocol", "h2c")
	h1app := m.App("h1-1")
	m.Sidecar(cp, "--service", "h1only", "--app-port", h1app.Port)
	consumer := m.Sidecar(cp, "--service", "client")
	waitInstances(t, consumer, "h1only", 1)
	m.Eventually(10*time.Second, func() (bool, string) {
		resp, body, err := meshtest.Via(consumer.Outbound, "h2only", "/proto")
		if err != nil {
			return false, err.Error()
		}
		return resp.StatusCode == 200 && body == "HTTP/2.0", fmt.Sprintf("%d %q", resp.StatusCode, body)
	})

	tr := proxy.NewH2CTransport() // an h2c client, as the sidecars use
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, "http://"+consumer.Outbound+"/proto", nil)
	req.Host = "h1only"
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.ProtoMajor != 2 || string(b) != "HTTP/1.1" {
		t.Errorf("HTTP/2 caller to an HTTP/1.1 app: got %s %q, want an HTTP/2 answer saying HTTP/1.1", resp.Proto, b)
	}

	// grpc-timeout is honoured and shortened by the time spent in the mesh.
	req, _ = http.NewRequest(http.MethodGet, "http://"+consumer.Outbound+"/headers", nil)
	req.Host = "h1only"
	req.Header.Set("Grpc-Timeout", "10S")
	resp, err = tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var seen http.Header
	if err := json.NewDecoder(resp.Body).Decode(&seen); err != nil {
		t.Fatal(err)
	}
	got := seen.Get("Grpc-Timeout")
	micros, err := strconv.ParseInt(strings.TrimSuffix(got, "u"), 10, 64)
	if err != nil || !strings.HasSuffix(got, "u") || micros >= 10_000_000 || micros < 5_000_000 {
		t.Errorf("grpc-timeout at the app: got %q, want a little less than 10 s, in microseconds", got)
	}
}

// TestSidecarStopsPromptlyWithHTTP2Clients: HTTP/2 clients keep their
// connections open between calls. On SIGTERM the sidecar sends GOAWAY and
// exits once their streams are done, not at the end of --drain-timeout.
func TestSidecarStopsPromptlyWithHTTP2Clients(t *testing.T) {
	t.Parallel()
	m := meshtest.New(t)
	cp := m.Control()
	app := m.App("interop-1", "--grpc")
	m.Sidecar(cp, "--service", "interop", "--app-port", app.Port, "--app-protocol", "h2c")
	consumer := m.Sidecar(cp, "--service", "client", "--drain-timeout", "30s")
	interopClient(t, m, consumer.Outbound, "interop") // a first call opened the HTTP/2 connection; it stays open
	start := time.Now()
	consumer.Signal(syscall.SIGTERM)
	if code := consumer.ExitCode(t, 25*time.Second); code != 0 {
		t.Fatalf("consumer exit code %d, want 0", code)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("consumer took %s to stop with an idle HTTP/2 client; want well under its 30s drain timeout", took)
	}
}

// interopClient is a gRPC interop client calling service through the
// outbound listener (reverse mode: the service is the :authority), once a
// first call has gone through.
func interopClient(t *testing.T, m *meshtest.Mesh, outbound, service string) (*grpc.ClientConn, testgrpc.TestServiceClient) {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+outbound,
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority(service))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	tc := testgrpc.NewTestServiceClient(conn)
	m.Eventually(10*time.Second, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := tc.EmptyCall(ctx, &testgrpc.Empty{})
		return err == nil, fmt.Sprint(err)
	})
	return conn, tc
}

// TestGRPCDeadlineRunsOutInTheMesh: a call whose grpc-timeout runs out
// while the mesh waits for the app gets gRPC's DEADLINE_EXCEEDED from the
// mesh, as a trailers-only answer that says the mesh made it. The caller
// here sets grpc-timeout itself and keeps no timer of its own, so only the
// mesh can end the call early.
func TestGRPCDeadlineRunsOutInTheMesh(t *testing.T) {
	t.Parallel()
	m := meshtest.New(t)
	cp := m.Control()
	app := m.App("interop-1", "--grpc")
	m.Sidecar(cp, "--service", "interop", "--app-port", app.Port, "--app-protocol", "h2c")
	consumer := m.Sidecar(cp, "--service", "client")
	interopClient(t, m, consumer.Outbound, "interop") // routed end to end

	// A server stream whose first message comes after 2 s.
	msg, err := proto.Marshal(&testgrpc.StreamingOutputCallRequest{
		ResponseParameters: []*testgrpc.ResponseParameters{{Size: 10, IntervalUs: 2_000_000}}})
	if err != nil {
		t.Fatal(err)
	}
	frame := append([]byte{0, 0, 0, 0, 0}, msg...)
	binary.BigEndian.PutUint32(frame[1:5], uint32(len(msg)))
	req, _ := http.NewRequest(http.MethodPost, "http://"+consumer.Outbound+"/grpc.testing.TestService/StreamingOutputCall", bytes.NewReader(frame))
	req.Host = "interop"
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	req.Header.Set("Grpc-Timeout", "300m")
	tr := proxy.NewH2CTransport()
	defer tr.CloseIdleConnections()
	start := time.Now()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if resp.StatusCode != 200 || resp.Header.Get("Grpc-Status") != "4" || resp.Header.Get(proxy.HeaderError) != proxy.ReasonUpstreamTimeout {
		t.Fatalf("got HTTP %d, grpc-status %q, x-weft-error %q (%q); want 200, 4 (DEADLINE_EXCEEDED), upstream-timeout",
			resp.StatusCode, resp.Header.Get("Grpc-Status"), resp.Header.Get(proxy.HeaderError), resp.Header.Get("Grpc-Message"))
	}
	if took > 1500*time.Millisecond {
		t.Errorf("the mesh answered after %s; want about the 300ms grpc-timeout, not the app's 2 s", took)
	}
	m.Eventually(5*time.Second, func() (bool, string) {
		got := metricSum(consumer.Admin, "weft_requests_total", `direction="outbound"`, `destination_service="interop"`, `grpc_status="4"`)
		return got == 1, fmt.Sprintf("consumer grpc_status=4 responses: %g, want 1", got)
	})
}

// TestHTTP2LargeBodiesAndHeadersEndToEnd: HTTP/2 all the way (client,
// both sidecars, an h2c app): 16 MiB each way, many times the flow-control
// windows of every hop, and a 100 KiB header field.
func TestHTTP2LargeBodiesAndHeadersEndToEnd(t *testing.T) {
	t.Parallel()
	m := meshtest.New(t)
	cp := m.Control()
	app := m.App("h2-1", "--h2c")
	provider := m.Sidecar(cp, "--service", "h2only", "--app-port", app.Port, "--app-protocol", "h2c")
	consumer := m.Sidecar(cp, "--service", "client")
	waitEndpoints(t, consumer, "h2only", 1)
	tr := proxy.NewH2CTransport()
	defer tr.CloseIdleConnections()
	do := func(method, path string, body io.Reader, header http.Header) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+consumer.Outbound+path, body)
		req.Host = "h2only"
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s %s: reading the body: %v", method, path, err)
		}
		return resp, b
	}

	const n = 16 << 20
	resp, b := do(http.MethodGet, "/bytes?n="+strconv.Itoa(n), nil, nil)
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 || len(b) != n {
		t.Errorf("download: got %s %d with %d bytes, want HTTP/2 200 with %d", resp.Proto, resp.StatusCode, len(b), n)
	}
	resp, b = do(http.MethodPost, "/count", io.LimitReader(zeros{}, n), nil)
	if resp.StatusCode != 200 || string(b) != strconv.Itoa(n) {
		t.Errorf("upload: got %d %q, want 200 and the app counting %d bytes", resp.StatusCode, b, n)
	}

	big := strings.Repeat("w", 100<<10)
	resp, b = do(http.MethodGet, "/headers", nil, http.Header{"X-Big": {big}})
	var seen http.Header
	if err := json.Unmarshal(b, &seen); err != nil || seen.Get("X-Big") != big {
		t.Errorf("100 KiB header: status %d, the app saw %d bytes of it, want all", resp.StatusCode, len(seen.Get("X-Big")))
	}
	for name, sc := range map[string]*meshtest.Sidecar{"consumer": consumer, "provider": provider} {
		if rss := vmHWM(t, sc.Cmd.Process.Pid); rss > 150<<20 {
			t.Errorf("%s sidecar peak RSS %d MiB after 16 MiB each way, want < 150 MiB", name, rss>>20)
		}
	}
}

// zeros is an endless reader of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestGRPCUnavailableRetriedWithItsBody: one of two instances of a gRPC
// service answers 503 to everything (UNAVAILABLE to a gRPC client). With
// the default retries, every unary call, body and all, succeeds: the
// consumer keeps the call's body (retries.maxBufferedBody) and sends it
// again to the other instance, on both HTTP/2 engines. Round robin makes
// the failing instance take first tries (peak-EWMA would leave it after
// its first failure) until outlier detection ejects it, after 5 in a
// row: 5 calls are retried.
func TestGRPCUnavailableRetriedWithItsBody(t *testing.T) {
	t.Parallel()
	m := meshtest.New(t)
	cp := m.Control()
	good := m.App("gru-1", "--grpc")
	bad := m.App("gru-2", "--h2c")
	fault(t, bad, "status=503")
	m.Sidecar(cp, "--service", "gru", "--id", "gru-1", "--app-port", good.Port, "--app-protocol", "h2c")
	m.Sidecar(cp, "--service", "gru", "--id", "gru-2", "--app-port", bad.Port, "--app-protocol", "h2c")
	for _, engine := range []string{"weft", "x/net"} {
		t.Run(strings.ReplaceAll(engine, "/", ""), func(t *testing.T) {
			consumer := m.Sidecar(cp, "--service", "gru-client-"+strings.ReplaceAll(engine, "/", ""), "--http2-engine", engine)
			waitEndpoints(t, consumer, "gru", 2)
			roundRobin(t, m, cp, consumer, "gru")
			_, tc := interopClient(t, m, consumer.Outbound, "gru")
			body := make([]byte, 4096)
			for i := range body {
				body[i] = byte(i)
			}
			for i := range 20 {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				resp, err := tc.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseSize: 16, Payload: &testgrpc.Payload{Body: body}})
				cancel()
				if err != nil || len(resp.GetPayload().GetBody()) != 16 {
					t.Fatalf("call %d: %v, want an answer from the healthy instance", i, err)
				}
			}
			if n := consumer.Metric(`weft_retries_total{service="gru"}`); n < 5 {
				t.Errorf("weft_retries_total %v after 20 calls, want the 5 whose first try met the failing instance (until it was ejected) retried", n)
			}
		})
	}
}
