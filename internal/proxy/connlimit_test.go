package proxy

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/weftmesh/weft/internal/proxy/plan"
	"github.com/weftmesh/weft/internal/proxy/stdhttp"
	"github.com/weftmesh/weft/internal/snapshot"
)

// heldInstance is an instance whose answers wait for release, counting
// the requests that arrived and the connections it accepted.
type heldInstance struct {
	addr     string
	hits     atomic.Int64
	conns    atomic.Int64
	release  chan struct{}
	released sync.Once
}

func newHeldInstance(t *testing.T, name string) *heldInstance {
	h := &heldInstance{release: make(chan struct{})}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.hits.Add(1)
		select {
		case <-h.release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, name)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			h.conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	t.Cleanup(h.let)
	h.addr = addrOf(srv)
	return h
}

// let lets every request held, and every later one, be answered.
func (h *heldInstance) let() { h.released.Do(func() { close(h.release) }) }

// http1Outbound is an outbound for svc on an HTTP/1.1 engine: "h1", the
// fast path, or "std", net/http's server and transport. It returns the
// listener's address, the metrics and the table.
func http1Outbound(t *testing.T, engine string, svc *snapshot.Service) (string, *prometheus.Registry, *plan.Table) {
	t.Helper()
	if engine == "h1" {
		addr, _, reg, table := policyOutbound(t, "h1", svc)
		return addr, reg, table
	}
	svc.Endpoints = sortedByAddress(svc.Endpoints)
	reg := prometheus.NewRegistry()
	m := plan.NewMetrics(reg)
	table := plan.NewTable(m, plan.Policy{})
	if errs := table.Update(&snapshot.Snapshot{Services: map[string]*snapshot.Service{svc.Name: svc}}); len(errs) > 0 {
		t.Fatal(errs)
	}
	t.Cleanup(table.CloseIdle)
	tr := stdhttp.NewTransport()
	t.Cleanup(tr.CloseIdleConnections)
	srv := httptest.NewServer(stdhttp.NewOutbound(table, tr, tr, m, discard))
	t.Cleanup(srv.Close)
	return addrOf(srv), reg, table
}

// getVia sends GET http://svc/ through the outbound at addr on a new
// connection, as a separate client would.
func getVia(addr string) (*http.Response, string, error) {
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	req.Host = "svc"
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b), err
}

// TestMaxConnectionsWaitsThenOverflows: with circuitBreaker
// maxConnections 1 and maxPendingRequests 1, on each HTTP/1.1 engine, a
// request while the one connection is busy waits for it; one more finds
// the wait full and gets 503 circuit-open at once, naming the limit; the
// waiting request then takes the freed connection, and the instance
// never sees a second one.
func TestMaxConnectionsWaitsThenOverflows(t *testing.T) {
	for _, engine := range []string{"h1", "std"} {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			inst := newHeldInstance(t, "a")
			p := testPolicy()
			p.Resource = "TrafficPolicy/svc"
			p.Timeouts.Request = 10 * time.Second
			p.CircuitBreaker.MaxConnections, p.CircuitBreaker.MaxPendingRequests = 1, 1
			svc := &snapshot.Service{Name: "svc", Policy: p, Endpoints: []snapshot.Endpoint{
				{Instance: "svc-a", Address: inst.addr, Ready: true}}}
			addr, reg, table := http1Outbound(t, engine, svc)
			ep := table.Lookup("svc").Endpoints[0]

			type answer struct {
				status int
				body   string
				err    error
			}
			answers := make(chan answer, 2)
			get := func() {
				resp, body, err := getVia(addr)
				if err != nil {
					answers <- answer{err: err}
					return
				}
				answers <- answer{resp.StatusCode, body, nil}
			}
			go get()
			waitFor(t, 5*time.Second, "the first request at the instance", func() bool { return inst.hits.Load() == 1 })
			go get()
			waitFor(t, 5*time.Second, "the second request waiting for the connection", func() bool { return ep.WaitingForConn() == 1 })

			resp, body, err := getVia(addr)
			if err != nil {
				t.Fatal(err)
			}
			wantMeshError(t, resp, []byte(body), http.StatusServiceUnavailable, plan.ReasonCircuitOpen)
			if !strings.Contains(body, "circuitBreaker.maxConnections (1)") || !strings.Contains(body, "svc-a") {
				t.Errorf("overflow message %q: want it to name the instance and circuitBreaker.maxConnections (1)", body)
			}
			if got := sample(t, reg, "weft_connection_overflows_total", "service", "svc"); got != 1 {
				t.Errorf("weft_connection_overflows_total = %v, want 1", got)
			}

			inst.let()
			for range 2 {
				a := <-answers
				if a.err != nil || a.status != http.StatusOK || a.body != "a" {
					t.Fatalf("a request under the limit: %d %q %v, want 200 from a", a.status, a.body, a.err)
				}
			}
			if n := inst.conns.Load(); n != 1 {
				t.Errorf("the instance accepted %d connections, want 1 (maxConnections)", n)
			}
			if hits := inst.hits.Load(); hits != 2 {
				t.Errorf("the instance saw %d requests, want 2 (the overflow never reached it)", hits)
			}
			settled(t, table, "svc")
			if n := ep.OpenConns(); n != 1 {
				t.Errorf("%d connections counted open, want the 1 pooled", n)
			}
		})
	}
}

// TestMaxConnectionsPassesToAnotherInstance: a request whose instance
// is at maxConnections with maxPendingRequests already waiting is sent
// to the other instance at once, without spending the retry budget, and
// answered there.
func TestMaxConnectionsPassesToAnotherInstance(t *testing.T) {
	for _, engine := range []string{"h1", "std"} {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			a, b := newHeldInstance(t, "a"), newHeldInstance(t, "b")
			p := testPolicy()
			p.Resource = "TrafficPolicy/svc"
			p.Timeouts.Request = 10 * time.Second
			p.Retries.Budget = snapshot.RetryBudget{Percent: 0, MinPerSecond: 0, Window: 10 * time.Second} // no retries at all
			p.CircuitBreaker.MaxConnections, p.CircuitBreaker.MaxPendingRequests = 1, 1
			svc := &snapshot.Service{Name: "svc", Policy: p, Endpoints: []snapshot.Endpoint{
				{Instance: "svc-a", Address: a.addr, Ready: true},
				{Instance: "svc-b", Address: b.addr, Ready: true}}}
			addr, reg, table := http1Outbound(t, engine, svc)

			// Round robin alternates: held (stays), free, held (waits),
			// free, held (full: passed to free). The held instance is the
			// one the first request reaches.
			answers := make(chan string, 2)
			get := func() { _, body, _ := getVia(addr); answers <- body }
			go get()
			waitFor(t, 5*time.Second, "the first request at an instance", func() bool { return a.hits.Load()+b.hits.Load() == 1 })
			held, free, heldName, freeName := a, b, "a", "b"
			if b.hits.Load() == 1 {
				held, free, heldName, freeName = b, a, "b", "a"
			}
			free.let()
			var heldEp *plan.Endpoint
			for _, ep := range table.Lookup("svc").Endpoints {
				if ep.Instance == "svc-"+heldName {
					heldEp = ep
				}
			}
			fromFree := func() {
				t.Helper()
				resp, body, err := getVia(addr)
				if err != nil || resp.StatusCode != http.StatusOK || body != freeName {
					t.Fatalf("got %v %q %v, want 200 from the free instance", resp, body, err)
				}
			}
			fromFree()
			go get()
			waitFor(t, 5*time.Second, "a request waiting for held's connection", func() bool { return heldEp.WaitingForConn() == 1 })
			fromFree()
			fromFree()
			if got := sample(t, reg, "weft_connection_overflows_total", "service", "svc"); got != 1 {
				t.Errorf("weft_connection_overflows_total = %v, want 1", got)
			}
			if got := sample(t, reg, "weft_retry_budget_exhausted_total", "service", "svc"); got != 0 {
				t.Errorf("the pass-over was refused by the retry budget %v times", got)
			}
			if got := free.hits.Load(); got != 3 {
				t.Errorf("the free instance saw %d requests, want 3", got)
			}
			held.let()
			for range 2 {
				if body := <-answers; body != heldName {
					t.Errorf("a request to the held instance got %q, want its answer", body)
				}
			}
			settled(t, table, "svc")
		})
	}
}
