package proxy

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// hungApp accepts connections and reads what comes, never answering.
func hungApp(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan net.Conn, 64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
			go io.Copy(io.Discard, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for {
			select {
			case c := <-conns:
				c.Close()
			default:
				return
			}
		}
	})
	return ln.Addr().String()
}

// The plan's timeout bounds the wait for a response head on every engine
// the same way: 504 upstream-timeout (a gRPC call: grpc-status 4 with the
// same x-weft-error), after about the timeout.
func TestTimeoutEveryEngine(t *testing.T) {
	const timeout = 200 * time.Millisecond
	tests := []struct {
		name   string
		engine string // weft (the HTTP/2 engine), x/net, or h1 (the fast path)
		grpc   bool
	}{
		{"HTTP/1.1 fast path", "h1", false},
		{"HTTP/2 engine", "weft", false},
		{"HTTP/2 x/net", "x/net", false},
		{"gRPC on the HTTP/2 engine", "weft", true},
		{"gRPC on x/net", "x/net", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkGoroutines(t)
			app := hungApp(t)
			m := NewMetrics(prometheus.NewRegistry())
			table := NewTable(m, Policy{Timeout: timeout})
			updateTable(table, map[string][]EndpointSpec{"svc": {{Instance: "svc-1", Address: app}}})
			t.Cleanup(table.CloseIdle)
			out := NewOutbound(table, NewTransport(), NewTransport(), m, discard)
			h2 := NewH2CTransport()
			t.Cleanup(h2.CloseIdleConnections)
			out.H2 = h2
			srv := &Server{Name: "outbound", Resolve: out.Resolve, H2: out, Metrics: m, Log: discard}
			if tt.engine == "weft" {
				srv.H2Frames = out.RouteH2
			}
			addr := serveProxy(t, srv)

			var req *http.Request
			var rt http.RoundTripper
			if tt.engine == "h1" {
				tr := &http.Transport{}
				t.Cleanup(tr.CloseIdleConnections)
				rt = tr
			} else {
				rt = newH2CClient(t)
			}
			if tt.grpc {
				req = newH2Request(t, http.MethodPost, addr, "svc", "/pkg.Svc/Call", strings.NewReader("\x00\x00\x00\x00\x00"))
				req.Header.Set("Content-Type", "application/grpc")
				req.Header.Set("Te", "trailers")
			} else {
				req = newH2Request(t, http.MethodGet, addr, "svc", "/", nil)
			}
			start := time.Now()
			resp, body := h2Do(t, rt, req)
			took := time.Since(start)
			if took < timeout*3/4 || took > 1500*time.Millisecond {
				t.Errorf("answer after %v, want about %v", took, timeout)
			}
			if tt.grpc {
				if resp.StatusCode != http.StatusOK || resp.Header.Get("Grpc-Status") != "4" || resp.Header.Get(HeaderError) != ReasonUpstreamTimeout {
					t.Fatalf("got %d grpc-status %q %s %q, want 200 trailers-only grpc-status 4 %q", resp.StatusCode,
						resp.Header.Get("Grpc-Status"), HeaderError, resp.Header.Get(HeaderError), ReasonUpstreamTimeout)
				}
				if msg := resp.Header.Get("Grpc-Message"); !strings.Contains(msg, "svc-1") {
					t.Errorf("grpc-message %q: want it to name the instance", msg)
				}
				return
			}
			wantMeshError(t, resp, body, http.StatusGatewayTimeout, ReasonUpstreamTimeout)
			if e := meshErrorBody(t, string(body)); e.Instance != "svc-1" || e.Service != "svc" {
				t.Errorf("body %s: want service svc, instance svc-1", body)
			}
		})
	}
}

// A mesh error to a gRPC caller is a gRPC status, on both HTTP/2 paths.
func TestMeshErrorsToGRPCCallers(t *testing.T) {
	for _, engine := range []string{"weft", "x/net"} {
		t.Run(engine, func(t *testing.T) {
			checkGoroutines(t)
			m := NewMetrics(prometheus.NewRegistry())
			table := NewTable(m, Policy{})
			updateTable(table, map[string][]EndpointSpec{"empty": {}})
			out := NewOutbound(table, NewTransport(), NewTransport(), m, discard)
			srv := &Server{Name: "outbound", Resolve: out.Resolve, H2: out, Metrics: m, Log: discard}
			if engine == "weft" {
				srv.H2Frames = out.RouteH2
			}
			addr := serveProxy(t, srv)
			tr := newH2CClient(t)
			for _, tc := range []struct{ host, code, reason string }{
				{"empty", "14", ReasonNoReadyInstance}, // UNAVAILABLE
				{"nosuch", "12", ReasonUnknownService}, // UNIMPLEMENTED
			} {
				req := newH2Request(t, http.MethodPost, addr, tc.host, "/pkg.Svc/Call", strings.NewReader("\x00\x00\x00\x00\x00"))
				req.Header.Set("Content-Type", "application/grpc")
				resp, _ := h2Do(t, tr, req)
				if resp.StatusCode != http.StatusOK || resp.Header.Get("Grpc-Status") != tc.code || resp.Header.Get(HeaderError) != tc.reason {
					t.Errorf("%s: got %d grpc-status %q %s %q, want 200 grpc-status %s %q", tc.host, resp.StatusCode,
						resp.Header.Get("Grpc-Status"), HeaderError, resp.Header.Get(HeaderError), tc.code, tc.reason)
				}
			}
		})
	}
}
