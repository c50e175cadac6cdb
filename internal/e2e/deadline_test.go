package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/proxy"
)

// timeoutHeader is the header a sidecar tells the next hop its timeout
// in, sourceHeader the one it names its service in.
const (
	timeoutHeader = "X-Weft-Timeout-Ms"
	sourceHeader  = "X-Weft-Source"
)

// hopCaller sends GET path to addr naming service, with the extra header
// fields h.
type hopCaller func(ctx context.Context, addr, service, path string, h map[string]string) meshAnswer

func hopHTTP1(ctx context.Context, addr, service, path string, h map[string]string) meshAnswer {
	tr := meshtest.ProxyClient(addr).Transport.(*http.Transport)
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+service+path, nil)
	for k, v := range h {
		req.Header.Set(k, v)
	}
	return httpAnswer(tr.RoundTrip(req))
}

func hopH2C(ctx context.Context, addr, service, path string, h map[string]string) meshAnswer {
	tr := proxy.NewH2CTransport()
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	req.Host = service
	for k, v := range h {
		req.Header.Set(k, v)
	}
	return httpAnswer(tr.RoundTrip(req))
}

// hopGRPC makes a unary call with h as metadata (path is not used).
func hopGRPC(ctx context.Context, addr, service, _ string, h map[string]string) meshAnswer {
	conn, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority(service))
	if err != nil {
		return meshAnswer{err: err}
	}
	defer conn.Close()
	for k, v := range h {
		ctx = metadata.AppendToOutgoingContext(ctx, k, v)
	}
	var header, trailer metadata.MD
	_, err = testgrpc.NewTestServiceClient(conn).EmptyCall(ctx, &testgrpc.Empty{}, grpc.Header(&header), grpc.Trailer(&trailer))
	if ctx.Err() != nil {
		return meshAnswer{err: fmt.Errorf("no answer: %w", err)}
	}
	a := meshAnswer{status: "gRPC " + status.Code(err).String()}
	if e := append(header.Get(proxy.HeaderError), trailer.Get(proxy.HeaderError)...); len(e) > 0 {
		a.weftError = e[0]
	}
	return a
}

// TestTimeoutPassedToNextHop: a sidecar tells the next hop how long it
// waits for the answer (X-Weft-Timeout-Ms), and a sidecar told so never
// waits longer, on every engine; it names its service too
// (X-Weft-Source):
//
//   - an app behind the mesh sees the consumer's timeout (--timeout
//     400ms) in the header, and the consumer's service, whatever values
//     its client put there;
//   - the provider's sidecar, told 300 ms, answers 504 upstream-timeout
//     for its hung app after about 300 ms, though it has no timeout of
//     its own for the app (without the header it would wait as long as
//     the app, here for ever);
//   - a consumer's sidecar with --timeout 10s, given 300 ms by its app
//     (an app passing on what its own caller said), gives up after
//     about 300 ms.
func TestTimeoutPassedToNextHop(t *testing.T) {
	t.Parallel()
	m := meshtest.New(t)
	cp := m.Control()
	hung := m.App("dl-hung-1", "--hang", "--h2c")
	echo := m.App("dl-echo-1", "--h2c")

	timedOut := meshAnswer{status: "HTTP 504", weftError: proxy.ReasonUpstreamTimeout}
	deadlineExceeded := meshAnswer{status: "gRPC DeadlineExceeded", weftError: proxy.ReasonUpstreamTimeout}
	cases := []struct {
		name, engine string
		call         hopCaller
		want         meshAnswer
		headers      bool // the app can show the headers it got (not the gRPC test service)
	}{
		{"HTTP/1.1", "weft", hopHTTP1, timedOut, true},
		{"HTTP/2 weft engine", "weft", hopH2C, timedOut, true},
		{"HTTP/2 x/net", "x/net", hopH2C, timedOut, true},
		{"gRPC weft engine", "weft", hopGRPC, deadlineExceeded, false},
		{"gRPC x/net", "x/net", hopGRPC, deadlineExceeded, false},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			hungSvc, echoSvc := fmt.Sprintf("dl-hung-%d", i), fmt.Sprintf("dl-echo-%d", i)
			provider := m.Sidecar(cp, "--service", hungSvc, "--id", hungSvc+"-1", "--app-port", hung.Port, "--app-protocol", "h2c",
				"--http2-engine", c.engine)
			m.Sidecar(cp, "--service", echoSvc, "--id", echoSvc+"-1", "--app-port", echo.Port, "--app-protocol", "h2c",
				"--http2-engine", c.engine)
			short := m.Sidecar(cp, "--service", "dl-client-"+strconv.Itoa(i), "--http2-engine", c.engine, "--timeout", "400ms")
			long := m.Sidecar(cp, "--service", "dl-long-"+strconv.Itoa(i), "--http2-engine", c.engine, "--timeout", "10s")
			waitEndpoints(t, short, echoSvc, 1)
			waitEndpoints(t, long, hungSvc, 1)

			if c.headers {
				got := c.call(context.Background(), short.Outbound, echoSvc, "/headers",
					map[string]string{timeoutHeader: "999999", sourceHeader: "spoofed"})
				var h http.Header
				if got.err != nil || got.status != "HTTP 200" || json.Unmarshal([]byte(got.body), &h) != nil {
					t.Fatalf("GET /headers through the mesh: %s", got)
				}
				ms, err := strconv.Atoi(h.Get(timeoutHeader))
				if err != nil || ms <= 0 || ms > 400 {
					t.Errorf("the app got %s: %q, want the consumer's 400 ms or what is left of it (not the client's 999999)",
						timeoutHeader, h.Get(timeoutHeader))
				}
				if src := h.Get(sourceHeader); src != "dl-client-"+strconv.Itoa(i) {
					t.Errorf("the app got %s: %q, want the calling sidecar's service dl-client-%d (not the client's spoofed)", sourceHeader, src, i)
				}
			}

			told := map[string]string{timeoutHeader: "300"}
			for _, hop := range []struct{ name, addr string }{
				{"the provider's sidecar, told 300 ms", provider.Inbound},
				{"a consumer's sidecar with --timeout 10s, told 300 ms", long.Outbound},
			} {
				ctx, cancel := context.WithCancel(context.Background())
				stop := time.AfterFunc(3*time.Second, cancel) // no deadline on ctx: gRPC would send it as grpc-timeout
				start := time.Now()
				got := c.call(ctx, hop.addr, hungSvc, "/", told)
				took := time.Since(start)
				stop.Stop()
				cancel()
				if got.err != nil || got.status != c.want.status || got.weftError != c.want.weftError {
					t.Errorf("%s: got %s, want %s", hop.name, got, c.want)
				}
				if took < 250*time.Millisecond || took > 2*time.Second {
					t.Errorf("%s: answered after %s, want between 250ms and 2s", hop.name, took.Round(time.Millisecond))
				}
			}
		})
	}
}
