package meshtest

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/internal/control"
	"github.com/weftmesh/weft/internal/control/controltest"
	"github.com/weftmesh/weft/internal/sidecar"
)

// InProc is a mesh inside the test process, next to the multi-process one
// above: a control plane (control.New, embedded etcd), sidecars
// (sidecar.New) and small HTTP and TCP apps, each on 127.0.0.1 with a port
// chosen at run time, built through the same public API as `weft control`
// and `weft sidecar`. No binary is built, so it starts in well under a
// second. Everything stops when the test ends (sidecars first, then the
// apps, then the control plane, as t.Cleanup runs them in reverse), and the
// test fails if a component's Run returned an error, did not stop, or left
// goroutines behind.
//
//	mesh := meshtest.NewInProc(t)
//	app := mesh.HTTPApp(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
//		io.WriteString(w, "catalog-1")
//	}))
//	mesh.Sidecar("catalog", func(c *sidecar.Config) { c.ID, c.AppPort = "catalog-1", app.Port })
//	web := mesh.Sidecar("web", nil)
//	mesh.WaitEndpoints(web, "catalog", 1)
//	resp, body, err := meshtest.Via(web.Outbound, "catalog", "/")
//
// The goroutine check counts every goroutine of the process: tests that
// use InProc must not run in parallel with others in their package.
type InProc struct {
	T       testing.TB
	Control *InProcControl
	log     *syncBuffer
	logger  *slog.Logger
}

// InProcControl is the mesh's control plane.
type InProcControl struct {
	Addr string // host:port of its API and sidecar streams
	C    *control.Control
}

// InProcSidecar is a running sidecar with its bound addresses.
type InProcSidecar struct {
	ID                       string
	Outbound, Inbound, Admin string   // Inbound is empty for a consumer-only sidecar
	Upstreams                []string // addresses of the Upstreams listeners, in order
	S                        *sidecar.Sidecar
}

// InProcApp is an app behind a sidecar: AppPort of the sidecar's config
// takes Port.
type InProcApp struct {
	Addr string // 127.0.0.1:port
	Port int
}

// NewInProc starts a control plane with an embedded etcd in a temporary
// directory, with edit applied to its config, and waits until it is ready.
func NewInProc(t testing.TB, edit ...func(*control.Config)) *InProc {
	t.Helper()
	checkGoroutines(t) // registered first, so it runs after every other cleanup
	m := &InProc{T: t, log: &syncBuffer{}}
	m.logger = slog.New(slog.NewTextHandler(m.log, nil))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- log of the in-process mesh ---\n%s", m.log.String())
		}
	})

	c := controltest.Start(t, m.logger, edit...)
	m.Control = &InProcControl{Addr: c.Addr(), C: c}
	Eventually(t, 30*time.Second, func() (bool, string) {
		code, body := Get("http://" + m.Control.Addr + "/readyz")
		return code == http.StatusOK, fmt.Sprintf("control plane readyz: %d %s", code, body)
	})
	return m
}

// run runs f until the test ends, then cancels its context and waits for
// it to return.
func (m *InProc) run(name string, f func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f(ctx) }()
	m.T.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				m.T.Errorf("%s: Run returned %v, want nil after its context ended", name, err)
			}
		case <-time.After(30 * time.Second):
			m.T.Errorf("%s did not stop within 30s of its context ending", name)
		}
	})
}

// Sidecar starts a sidecar for service against the mesh's control plane,
// with its listeners on 127.0.0.1:0 and edit applied to its config (nil
// for none), and waits until its /readyz answers 200. Set AppPort for a
// provider; without it the sidecar is a consumer only.
func (m *InProc) Sidecar(service string, edit func(*sidecar.Config)) *InProcSidecar {
	m.T.Helper()
	cfg := sidecar.Default()
	cfg.Service, cfg.Control = service, m.Control.Addr
	cfg.Outbound, cfg.Inbound, cfg.Admin = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	if edit != nil {
		edit(&cfg)
	}
	s, err := sidecar.New(cfg, sidecar.Deps{Logger: m.logger, Registry: prometheus.NewRegistry()})
	if err != nil {
		m.T.Fatalf("sidecar.New for %s: %v", service, err)
	}
	sc := &InProcSidecar{ID: s.ID(), Upstreams: s.UpstreamAddrs(), S: s}
	sc.Outbound, sc.Inbound, sc.Admin = s.Addrs()
	m.run("sidecar "+sc.ID, s.Run)
	Eventually(m.T, 30*time.Second, func() (bool, string) {
		code, body := Get("http://" + sc.Admin + "/readyz")
		return code == http.StatusOK, fmt.Sprintf("sidecar %s readyz: %d %s", sc.ID, code, body)
	})
	return sc
}

// HTTPApp serves h on 127.0.0.1 until the test ends.
func (m *InProc) HTTPApp(h http.Handler) *InProcApp {
	m.T.Helper()
	srv := httptest.NewUnstartedServer(h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		m.T.Fatal(err)
	}
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	m.T.Cleanup(srv.Close)
	return appAt(ln.Addr())
}

// TCPApp accepts connections on 127.0.0.1 until the test ends and hands
// each to serve on a goroutine of its own; the connection is closed when
// serve returns. At the end of the test the listener and every connection
// still open are closed, and TCPApp waits for serve to return.
func (m *InProc) TCPApp(serve func(net.Conn)) *InProcApp {
	m.T.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		m.T.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
					c.Close()
				}()
				serve(c)
			}()
		}
	}()
	m.T.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return appAt(ln.Addr())
}

func appAt(a net.Addr) *InProcApp {
	_, port, _ := net.SplitHostPort(a.String())
	p, _ := strconv.Atoi(port)
	return &InProcApp{Addr: a.String(), Port: p}
}

// Eventually is the package's Eventually for this mesh's test.
func (m *InProc) Eventually(d time.Duration, cond func() (bool, string)) {
	m.T.Helper()
	Eventually(m.T, d, cond)
}

// WaitEndpoints waits up to 10 s until sc's routing table (its admin
// /config) has n endpoints for service.
func (m *InProc) WaitEndpoints(sc *InProcSidecar, service string, n int) {
	m.T.Helper()
	WaitEndpoints(m.T, sc.Admin, service, n, 10*time.Second)
}

// WaitEndpoints waits up to d until the routing table of the sidecar with
// admin address admin routes to n ready endpoints of service.
func WaitEndpoints(t testing.TB, admin, service string, n int, d time.Duration) {
	t.Helper()
	Eventually(t, d, func() (bool, string) {
		code, body := Get("http://" + admin + "/config")
		if code != http.StatusOK {
			return false, fmt.Sprintf("/config: %d %s", code, body)
		}
		var v struct {
			Services map[string]struct {
				Endpoints []struct {
					Ready bool `json:"ready"`
				} `json:"endpoints"`
			} `json:"services"`
		}
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			return false, fmt.Sprintf("/config: %v", err)
		}
		got := 0
		for _, e := range v.Services[service].Endpoints {
			if e.Ready {
				got++
			}
		}
		return got == n, fmt.Sprintf("%s has %d ready endpoints, want %d", service, got, n)
	})
}

// checkGoroutines fails t if, after every later cleanup, more goroutines
// run than before it was called (polling up to 10 s for them to end).
func checkGoroutines(t testing.TB) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		// Keep-alive connections of the shared client to the stopped
		// sidecars and apps end with them; their goroutines with them.
		Client.CloseIdleConnections()
		var n int
		deadline := time.Now().Add(10 * time.Second)
		for {
			if n = runtime.NumGoroutine(); n <= before {
				return
			}
			if time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
		}
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Errorf("goroutines: got %d after the in-process mesh stopped, want at most %d as before it:\n%s", n, before, buf)
	})
}
