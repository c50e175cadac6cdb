package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/weftmesh/weft/internal/proxy/plan"
	"github.com/weftmesh/weft/internal/proxy/stdhttp"
	"github.com/weftmesh/weft/internal/proxy/tcp"
)

// hungApp takes requests (HTTP/1.1 and h2c) and never answers them
// until the test ends.
func hungApp(t *testing.T) string {
	t.Helper()
	release := make(chan struct{})
	addr := serveH2C(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release) })
	return addr
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
			m := plan.NewMetrics(prometheus.NewRegistry())
			table := plan.NewTable(m, plan.Policy{Timeout: timeout})
			updateTable(table, map[string][]EndpointSpec{"svc": {{Instance: "svc-1", Address: app}}})
			t.Cleanup(table.CloseIdle)
			out := stdhttp.NewOutbound(table, stdhttp.NewTransport(), stdhttp.NewTransport(), m, discard)
			h2 := stdhttp.NewH2CTransport()
			t.Cleanup(h2.CloseIdleConnections)
			out.H2 = h2
			srv := Config{Name: "outbound", Resolve: out.Resolve, H2: out, Metrics: m, Log: discard}
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
				if resp.StatusCode != http.StatusOK || resp.Header.Get("Grpc-Status") != "4" || resp.Header.Get(plan.HeaderError) != plan.ReasonUpstreamTimeout {
					t.Fatalf("got %d grpc-status %q %s %q, want 200 trailers-only grpc-status 4 %q", resp.StatusCode,
						resp.Header.Get("Grpc-Status"), plan.HeaderError, resp.Header.Get(plan.HeaderError), plan.ReasonUpstreamTimeout)
				}
				if msg := resp.Header.Get("Grpc-Message"); !strings.Contains(msg, "svc-1") {
					t.Errorf("grpc-message %q: want it to name the instance", msg)
				}
				return
			}
			wantMeshError(t, resp, body, http.StatusGatewayTimeout, plan.ReasonUpstreamTimeout)
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
			m := plan.NewMetrics(prometheus.NewRegistry())
			table := plan.NewTable(m, plan.Policy{})
			updateTable(table, map[string][]EndpointSpec{"empty": {}})
			out := stdhttp.NewOutbound(table, stdhttp.NewTransport(), stdhttp.NewTransport(), m, discard)
			srv := Config{Name: "outbound", Resolve: out.Resolve, H2: out, Metrics: m, Log: discard}
			if engine == "weft" {
				srv.H2Frames = out.RouteH2
			}
			addr := serveProxy(t, srv)
			tr := newH2CClient(t)
			for _, tc := range []struct{ host, code, reason string }{
				{"empty", "14", plan.ReasonNoReadyInstance}, // UNAVAILABLE
				{"nosuch", "12", plan.ReasonUnknownService}, // UNIMPLEMENTED
			} {
				req := newH2Request(t, http.MethodPost, addr, tc.host, "/pkg.Svc/Call", strings.NewReader("\x00\x00\x00\x00\x00"))
				req.Header.Set("Content-Type", "application/grpc")
				resp, _ := h2Do(t, tr, req)
				if resp.StatusCode != http.StatusOK || resp.Header.Get("Grpc-Status") != tc.code || resp.Header.Get(plan.HeaderError) != tc.reason {
					t.Errorf("%s: got %d grpc-status %q %s %q, want 200 grpc-status %s %q", tc.host, resp.StatusCode,
						resp.Header.Get("Grpc-Status"), plan.HeaderError, resp.Header.Get(plan.HeaderError), tc.code, tc.reason)
				}
			}
		})
	}
}

// parityFixture serves an outbound for every engine over one table: the
// fast path and net/http for HTTP/1.1, the HTTP/2 engine or x/net for
// HTTP/2, and an upstream-style listener that forwards every connection
// to "svc" as bytes (TCP).
type parityFixture struct {
	table          *plan.Table
	h1, weft, xnet string // outbound listeners
	tcp            string // a listener forwarding connections to svc as TCP
	h1rt, h2rt     http.RoundTripper
}

func newParityFixture(t *testing.T, services map[string][]EndpointSpec, policy plan.Policy) *parityFixture {
	t.Helper()
	m := plan.NewMetrics(prometheus.NewRegistry())
	f := &parityFixture{table: plan.NewTable(m, policy)}
	updateTable(f.table, services)
	t.Cleanup(f.table.CloseIdle)
	out := stdhttp.NewOutbound(f.table, stdhttp.NewTransport(), stdhttp.NewTransport(), m, discard)
	h2 := stdhttp.NewH2CTransport()
	t.Cleanup(h2.CloseIdleConnections)
	out.H2 = h2
	f.h1 = serveProxy(t, Config{Name: "outbound", Resolve: out.Resolve, H2: out, Metrics: m, Log: discard})
	f.xnet = f.h1
	f.weft = serveProxy(t, Config{Name: "outbound", Resolve: out.Resolve, H2: out, H2Frames: out.RouteH2, Metrics: m, Log: discard})
	fixed := &stdhttp.Fixed{Service: "svc", Table: f.table, Out: out}
	f.tcp = serveProxy(t, Config{Name: "upstream/svc", Resolve: fixed.Resolve, TCP: &tcp.Proxy{}, Metrics: m, Log: discard,
		Opaque: func() (*plan.Cluster, bool) { return fixed.Cluster(), true }})
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	f.h1rt, f.h2rt = tr, newH2CClient(t)
	return f
}

// get sends GET / for host through engine (h1, weft, x/net or tcp) and
// returns the status, x-weft-error and body; for tcp, status 0 means the
// connection closed without an answer.
func (f *parityFixture) get(t *testing.T, engine, host string) (int, string, string) {
	t.Helper()
	switch engine {
	case "tcp":
		c, err := net.DialTimeout("tcp", f.tcp, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: "+host+"\r\nConnection: close\r\n\r\n")
		b, _ := io.ReadAll(c)
		resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(string(b))), nil)
		if err != nil {
			return 0, "", string(b)
		}
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get(plan.HeaderError), string(body)
	default:
		addr, rt := f.target(engine)
		resp, body := h2Do(t, rt, newH2Request(t, http.MethodGet, addr, host, "/", nil))
		return resp.StatusCode, resp.Header.Get(plan.HeaderError), string(body)
	}
}

// target is the listener and client of an HTTP engine (h1, weft, x/net).
func (f *parityFixture) target(engine string) (string, http.RoundTripper) {
	switch engine {
	case "weft":
		return f.weft, f.h2rt
	case "x/net":
		return f.xnet, f.h2rt
	}
	return f.h1, f.h1rt
}

var parityEngines = []string{"h1", "weft", "x/net", "tcp"}

// A connect failure moves the request (or connection) to another
// instance and ejects the one that failed, on every engine: a refused
// connection, and one that hangs until the dial timeout however short
// the head timeout is.
func TestConnectFailureEveryEngine(t *testing.T) {
	cases := []struct {
		name   string
		dead   func(*testing.T) string
		policy plan.Policy
	}{
		{"refused", closedAddr, plan.Policy{}},
		{"SYNs dropped, head timeout shorter than the dial's", synDropper, plan.Policy{Timeout: 300 * time.Millisecond}},
	}
	for _, tc := range cases {
		for _, engine := range parityEngines {
			t.Run(tc.name+"/"+engine, func(t *testing.T) {
				checkGoroutines(t)
				app := serveH2C(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "live") }))
				f := newParityFixture(t, map[string][]EndpointSpec{"svc": {
					{Instance: "svc-dead", Address: tc.dead(t)}, {Instance: "svc-live", Address: app}}}, tc.policy)
				for i := range 3 {
					status, reason, body := f.get(t, engine, "svc")
					if status != http.StatusOK || body != "live" {
						t.Fatalf("request %d: got %d %q %q, want 200 from the live instance", i, status, reason, body)
					}
				}
				for _, ep := range f.table.Lookup("svc").Endpoints {
					if ep.Instance == "svc-live" {
						// The fast path ends an attempt once its response is out,
						// which may be just after the client has read it.
						waitFor(t, 5*time.Second, "no attempt in flight on the live instance", func() bool { return ep.InFlight() == 0 })
					}
					st := ep.Stats()
					if ep.Instance == "svc-dead" && (st.Failures == 0 || st.EjectedUntil.IsZero() || st.ConsecutiveFailures == 0) {
						t.Errorf("dead instance: %+v, want a failure recorded and ejected", st)
					}
					if ep.Instance == "svc-live" && (st.Attempts == 0 || st.Failures != 0) {
						t.Errorf("live instance: %+v, want attempts, no failure", st)
					}
				}
			})
		}
	}
}

// A service with no ready instance answers 503 no-ready-instance on every
// HTTP engine; a TCP connection to it is closed without a byte.
func TestNoReadyInstanceEveryEngine(t *testing.T) {
	for _, engine := range parityEngines {
		t.Run(engine, func(t *testing.T) {
			checkGoroutines(t)
			f := newParityFixture(t, map[string][]EndpointSpec{"svc": {}}, plan.Policy{})
			status, reason, body := f.get(t, engine, "svc")
			if engine == "tcp" {
				if status != 0 || body != "" {
					t.Errorf("got %d %q, want the connection closed without an answer", status, body)
				}
				return
			}
			if status != http.StatusServiceUnavailable || reason != plan.ReasonNoReadyInstance || !strings.Contains(body, `"service":"svc"`) {
				t.Errorf("got %d %q %s, want 503 %q naming svc", status, reason, body, plan.ReasonNoReadyInstance)
			}
		})
	}
}

// synDropper is a loopback address whose listener never accepts and has
// a full backlog: connects to it hang (the SYNs are dropped) until the
// dial timeout, as with a host that went away.
func synDropper(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
	// Fill the accept queue; then further SYNs go unanswered.
	for i := 0; i < 4; i++ {
		c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
		if err != nil {
			break
		}
		t.Cleanup(func() { c.Close() })
	}
	return addr
}

// The head timeout counts from when the request has gone in full: an
// upload slower than the timeout is not cut off.
func TestHeadTimeoutStartsAfterTheRequest(t *testing.T) {
	for _, engine := range []string{"h1", "weft", "x/net"} {
		t.Run(engine, func(t *testing.T) {
			checkGoroutines(t)
			app := serveH2C(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				w.Write(b)
			}))
			f := newParityFixture(t, map[string][]EndpointSpec{"svc": {{Instance: "svc-1", Address: app}}}, plan.Policy{Timeout: 300 * time.Millisecond})
			pr, pw := io.Pipe()
			go func() {
				for i := 0; i < 6; i++ {
					time.Sleep(120 * time.Millisecond) // a slow uploader (this is the load, not synchronisation)
					if _, err := pw.Write([]byte("0123456789")); err != nil {
						return
					}
				}
				pw.Close()
			}()
			addr, rt := f.target(engine)
			req := newH2Request(t, http.MethodPost, addr, "svc", "/", pr)
			resp, body := h2Do(t, rt, req)
			if resp.StatusCode != http.StatusOK || len(body) != 60 {
				t.Fatalf("slow upload: got %d %s %q (%d bytes), want 200 with the 60 bytes echoed", resp.StatusCode,
					resp.Header.Get(plan.HeaderError), body, len(body))
			}
		})
	}
}
