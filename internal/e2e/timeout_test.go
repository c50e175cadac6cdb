package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
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

// hungTimeout is the --timeout of both sidecars in front of the hung app.
const hungTimeout = 200 * time.Millisecond

// meshAnswer is what a caller got: "HTTP <status>" or "gRPC <code>", with
// the mesh's x-weft-error, or the error that ended the call.
type meshAnswer struct {
	status, weftError string
	body              string // for the record, not compared
	err               error
}

func (a meshAnswer) String() string {
	if a.err != nil {
		return "error: " + a.err.Error()
	}
	if a.body != "" {
		return fmt.Sprintf("%s with x-weft-error %q (body %.300q)", a.status, a.weftError, a.body)
	}
	return fmt.Sprintf("%s with x-weft-error %q", a.status, a.weftError)
}

// TestTimeoutHungAppEveryEngine: with an app that accepts connections,
// reads each request and never answers (the test app's --hang, over
// HTTP/1.1 and h2c), and --timeout 200ms on the provider's and the
// consumer's sidecars, every kind of caller gets the mesh's timeout answer about
// 200 ms later (504 upstream-timeout; for gRPC a trailers-only
// DEADLINE_EXCEEDED saying upstream-timeout, as for a grpc-timeout that
// runs out in the mesh), whichever engine carries HTTP/2. Callers give up
// after 2 s and set no deadline of their own (no grpc-timeout), so only
// the mesh can answer in time.
func TestTimeoutHungAppEveryEngine(t *testing.T) {
	t.Parallel()
	m := meshtest.New(t)
	cp := m.Control()
	app := m.App("hung-1", "--hang", "--h2c")

	timedOut := meshAnswer{status: "HTTP 504", weftError: proxy.ReasonUpstreamTimeout}
	deadlineExceeded := meshAnswer{status: "gRPC DeadlineExceeded", weftError: proxy.ReasonUpstreamTimeout}
	cases := []struct {
		name, engine string
		call         func(ctx context.Context, outbound, service string) meshAnswer
		want         meshAnswer
	}{
		{"HTTP/1.1", "weft", callHTTP1, timedOut},
		{"HTTP/2 weft engine", "weft", callH2C, timedOut},
		{"HTTP/2 x/net", "x/net", callH2C, timedOut},
		{"gRPC weft engine", "weft", callGRPC, deadlineExceeded},
		{"gRPC x/net", "x/net", callGRPC, deadlineExceeded},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			// A pair of sidecars per case: the engine's connection to the
			// app (and its handshake timer) is not shared between cases.
			svc := fmt.Sprintf("hung-%d", i)
			timeout := hungTimeout.String()
			m.Sidecar(cp, "--service", svc, "--id", svc+"-1", "--app-port", app.Port, "--app-protocol", "h2c",
				"--http2-engine", c.engine, "--timeout", timeout)
			consumer := m.Sidecar(cp, "--service", "client-"+svc, "--http2-engine", c.engine, "--timeout", timeout)
			waitEndpoints(t, consumer, svc, 1)

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			stop := time.AfterFunc(2*time.Second, cancel) // no deadline on ctx: gRPC would send it as grpc-timeout
			defer stop.Stop()
			start := time.Now()
			got := c.call(ctx, consumer.Outbound, svc)
			took := time.Since(start)
			var problems []string
			if got.err != nil || got.status != c.want.status || got.weftError != c.want.weftError {
				problems = append(problems, fmt.Sprintf("got %s, want %s", got, c.want))
			}
			if took < 150*time.Millisecond || took > 1500*time.Millisecond {
				problems = append(problems, fmt.Sprintf("answered after %s, want between 150ms and 1.5s (--timeout %s)",
					took.Round(time.Millisecond), timeout))
			}
			if len(problems) > 0 {
				t.Error(strings.Join(problems, "; "))
			}
		})
	}
}

// callHTTP1 sends GET in proxy form over HTTP/1.1.
func callHTTP1(ctx context.Context, outbound, service string) meshAnswer {
	tr := meshtest.ProxyClient(outbound).Transport.(*http.Transport)
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+service+"/", nil)
	return httpAnswer(tr.RoundTrip(req))
}

// callH2C sends GET over HTTP/2 with prior knowledge, naming the service
// in :authority.
func callH2C(ctx context.Context, outbound, service string) meshAnswer {
	tr := proxy.NewH2CTransport()
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+outbound+"/", nil)
	req.Host = service
	return httpAnswer(tr.RoundTrip(req))
}

func httpAnswer(resp *http.Response, err error) meshAnswer {
	if err != nil {
		return meshAnswer{err: err}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return meshAnswer{status: fmt.Sprintf("HTTP %d", resp.StatusCode), weftError: resp.Header.Get(proxy.HeaderError), body: string(b)}
}

// callGRPC makes a unary call with grpc-go, naming the service in
// :authority; the mesh's header may come as headers or, trailers-only, as
// trailers.
func callGRPC(ctx context.Context, outbound, service string) meshAnswer {
	conn, err := grpc.NewClient("passthrough:///"+outbound,
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority(service))
	if err != nil {
		return meshAnswer{err: err}
	}
	defer conn.Close()
	var header, trailer metadata.MD
	_, err = testgrpc.NewTestServiceClient(conn).EmptyCall(ctx, &testgrpc.Empty{}, grpc.Header(&header), grpc.Trailer(&trailer))
	if ctx.Err() != nil {
		return meshAnswer{err: fmt.Errorf("no answer: %w", err)}
	}
	weftError := append(header.Get(proxy.HeaderError), trailer.Get(proxy.HeaderError)...)
	a := meshAnswer{status: "gRPC " + status.Code(err).String()}
	if len(weftError) > 0 {
		a.weftError = weftError[0]
	}
	return a
}
