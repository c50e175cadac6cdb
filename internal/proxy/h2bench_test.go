package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/weftmesh/weft/internal/proxy/plan"
	"github.com/weftmesh/weft/internal/proxy/stdhttp"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
)

// The HTTP/2 benchmarks mirror bench/grpcbench in one process: gRPC-shaped
// unary calls (POST, application/grpc, a 1 KiB message each way, trailers)
// from 32 concurrent callers over one h2c connection, either straight to
// the backend or through an outbound and an inbound proxy.Server wired as
// the sidecars wire them (the provider with --app-protocol h2c). The
// difference between the two is what the hops cost; allocs/op counts the
// client and backend too. On a shared machine compare runs made back to
// back (-count), and prefer bench/grpcbench -cost for CPU per call.

// grpcMessage is a gRPC length-prefixed message of 1 KiB.
var grpcMessage = append([]byte{0, 0, 0, 4, 0}, make([]byte, 1024)...)

// h2Backend serves gRPC-shaped answers over h2c and returns its address.
func h2Backend(tb testing.TB) string {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Trailer", "Grpc-Status")
		w.WriteHeader(http.StatusOK)
		w.Write(grpcMessage)
		w.Header().Set("Grpc-Status", "0")
	})
	return serveH2C(tb, h)
}

// serveH2C serves h with net/http and h2c prior knowledge, as a gRPC
// server does.
func serveH2C(tb testing.TB, h http.Handler) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: h2c.NewHandler(h, &http2.Server{})}
	go srv.Serve(ln)
	tb.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// h2Mesh starts an outbound and an inbound in front of app, with service
// "svc" routed to the inbound, and returns the outbound address. frames
// chooses Weft's HTTP/2 engine, as the sidecars do, over x/net/http2's.
func h2Mesh(tb testing.TB, app string, frames bool) string {
	m := plan.NewMetrics(prometheus.NewRegistry())
	in := stdhttp.NewInbound("svc", "svc-1", app, stdhttp.NewTransport(), m)
	h2 := stdhttp.NewH2CTransport()
	in.Transport, in.H2 = h2, h2
	tb.Cleanup(h2.CloseIdleConnections)
	tb.Cleanup(in.CloseIdle)
	inSrv := Config{Name: "inbound", Resolve: in.Resolve, H2: in, H1: in, Metrics: m, Log: discard}
	if frames {
		inSrv.H2Frames = in.RouteH2
	}
	inAddr := serveProxy(tb, inSrv)
	table := plan.NewTable(m, plan.Policy{})
	updateTable(table, map[string][]EndpointSpec{"svc": {{Instance: "svc-1", Address: inAddr}}})
	tb.Cleanup(table.CloseIdle)
	out := stdhttp.NewOutbound(table, stdhttp.NewTransport(), stdhttp.NewTransport(), m, discard)
	outH2 := stdhttp.NewH2CTransport()
	out.H2 = outH2
	tb.Cleanup(outH2.CloseIdleConnections)
	outSrv := Config{Name: "outbound", Resolve: out.Resolve, Connect: true, H2: out, Metrics: m, Log: discard}
	if frames {
		outSrv.H2Frames = out.RouteH2
	}
	return serveProxy(tb, outSrv)
}

// serveProxy serves a listener built from cfg on 127.0.0.1 until the end
// of the test, and returns its address.
func serveProxy(tb testing.TB, cfg Config) string { return serveListener(tb, newListener(tb, cfg)) }

// newListener is NewListener, failing the test on an error.
func newListener(tb testing.TB, cfg Config) *Listener {
	tb.Helper()
	l, err := NewListener(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// serveListener serves s on 127.0.0.1 until the end of the test, and
// returns its address.
func serveListener(tb testing.TB, s *Listener) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() { s.Serve(ln); close(done) }()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		<-done
	})
	return ln.Addr().String()
}

// newH2CClient is a plain h2c client (one connection, as a gRPC client has).
func newH2CClient(tb testing.TB) *http2.Transport {
	tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	tb.Cleanup(tr.CloseIdleConnections)
	return tr
}

// grpcCall makes one gRPC-shaped unary call.
func grpcCall(tr http.RoundTripper, addr string) error {
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/grpc.testing.TestService/UnaryCall", bytes.NewReader(grpcMessage))
	req.Host = "svc"
	req.ContentLength = -1 // as gRPC sends it: no content-length
	req.Header = http.Header{"Content-Type": {"application/grpc"}, "Te": {"trailers"}}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 || n != int64(len(grpcMessage)) || resp.Trailer.Get("Grpc-Status") != "0" {
		return io.ErrUnexpectedEOF
	}
	return nil
}

func benchmarkGRPCShaped(b *testing.B, addr string) {
	tr := newH2CClient(b)
	if err := grpcCall(tr, addr); err != nil { // connect and warm up
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetParallelism(16) // 32 callers on 2 CPUs, as grpcbench
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := grpcCall(tr, addr); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkH2Direct: client to backend, no hop.
func BenchmarkH2Direct(b *testing.B) { benchmarkGRPCShaped(b, h2Backend(b)) }

// BenchmarkH2Mesh: client to backend through an outbound and an inbound,
// with Weft's HTTP/2 engine.
func BenchmarkH2Mesh(b *testing.B) { benchmarkGRPCShaped(b, h2Mesh(b, h2Backend(b), true)) }

// BenchmarkH2MeshXNet: the same hops with x/net/http2's server and
// Transport (the engine before ADR 5).
func BenchmarkH2MeshXNet(b *testing.B) { benchmarkGRPCShaped(b, h2Mesh(b, h2Backend(b), false)) }
