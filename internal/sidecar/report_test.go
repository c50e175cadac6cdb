package sidecar

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/collect"
)

// fakeCenter is a collection center on a real collect.Store whose
// answers the test chooses: ok, fail (503 without applying), lose
// (applied, then the connection dropped without an answer) or refuse
// (400).
type fakeCenter struct {
	srv   *httptest.Server
	store *collect.Store
	mu    sync.Mutex
	mode  string
	posts int
}

func newFakeCenter(t *testing.T) *fakeCenter {
	t.Helper()
	st, err := collect.NewStore(collect.Config{}, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeCenter{store: st, mode: "ok"}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeCenter) setMode(m string) {
	f.mu.Lock()
	f.mode = m
	f.mu.Unlock()
}

func (f *fakeCenter) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	mode := f.mode
	f.posts++
	f.mu.Unlock()
	if r.Method != http.MethodPost || r.URL.Path != "/v1/telemetry/api/api-1" {
		http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusTeapot)
		return
	}
	var rep collect.Report
	b, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(b, &rep); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	switch mode {
	case "fail":
		http.Error(w, `{"error":"etcd is down"}`, http.StatusServiceUnavailable)
		return
	case "refuse":
		http.Error(w, `{"error":"series[0].direction: no"}`, http.StatusBadRequest)
		return
	}
	ack, err := f.store.Ingest("api", "api-1", &rep)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if mode == "lose" {
		c, _, _ := w.(http.Hijacker).Hijack()
		c.Close()
		return
	}
	json.NewEncoder(w).Encode(ack)
}

func (f *fakeCenter) requests() uint64 { return f.store.Service("api", time.Minute).Requests }

type testPath struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
}

func newTestPath() *testPath {
	p := &testPath{reg: prometheus.NewRegistry()}
	// The data path's series, as plan.Metrics names them.
	p.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weft_requests_total", Help: "h"},
		[]string{"direction", "source_service", "destination_service", "response_code", "grpc_status", "route"})
	p.reg.MustRegister(p.requests)
	return p
}

func (p *testPath) serve(n int) {
	p.requests.WithLabelValues("inbound", "web", "api", "200", "", "").Add(float64(n))
}

func newTestReporter(t *testing.T, f *fakeCenter, p *testPath, interval time.Duration) *reporter {
	t.Helper()
	c := api.NewClient(f.srv.URL)
	tr := &http.Transport{Proxy: nil}
	c.HTTP = &http.Client{Transport: tr, Timeout: 5 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	r, err := newReporter(c, p.reg, "api", "api-1", interval, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func outcome(t *testing.T, r *reporter, o string) float64 {
	t.Helper()
	var m dto.Metric
	if err := r.outcomes.WithLabelValues(o).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestReporterLosesNothingAndCountsNothingTwice(t *testing.T) {
	f := newFakeCenter(t)
	p := newTestPath()
	r := newTestReporter(t, f, p, time.Hour)
	ctx := context.Background()

	p.serve(5)
	f.setMode("fail")
	r.flush(ctx)
	if got := f.requests(); got != 0 || outcome(t, r, "failed") != 1 {
		t.Fatalf("control plane failing: got %d requests applied, %v failures counted; want 0 and 1", got, outcome(t, r, "failed"))
	}
	p.serve(2)
	f.setMode("lose") // applied, but the sidecar never hears it
	r.flush(ctx)
	if got := f.requests(); got != 5 {
		t.Fatalf("after the lost answer: got %d requests applied, want the first report's 5", got)
	}
	f.setMode("ok")
	r.flush(ctx) // the same report again (not applied twice), then the 2 after it
	if got := f.requests(); got != 7 {
		t.Errorf("after the control plane answered: got %d requests, want exactly 7", got)
	}
	if got := outcome(t, r, "acknowledged"); got != 2 {
		t.Errorf("acknowledged: got %v, want 2", got)
	}

	p.serve(3)
	f.setMode("refuse")
	r.flush(ctx)
	if got := outcome(t, r, "refused"); got != 1 {
		t.Errorf("refused: got %v, want 1", got)
	}
	f.setMode("ok")
	f.mu.Lock()
	before := f.posts
	f.mu.Unlock()
	r.flush(ctx)
	f.mu.Lock()
	after := f.posts
	f.mu.Unlock()
	if after != before {
		t.Errorf("a refused report is dropped, not sent again: got %d posts after it, want 0", after-before)
	}
}

func TestReporterRunsAndSendsTheLastOnStop(t *testing.T) {
	f := newFakeCenter(t)
	p := newTestPath()
	r := newTestReporter(t, f, p, 20*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.run(ctx) }()
	p.serve(4)
	deadline := time.Now().Add(5 * time.Second)
	for f.requests() != 4 {
		if time.Now().After(deadline) {
			t.Fatalf("got %d requests at the control plane, want 4 within 5s", f.requests())
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
	cancel()
	<-done
	p.serve(6) // after the loop stopped: only the last report carries them
	r.last()
	if got := f.requests(); got != 10 {
		t.Errorf("after the last report: got %d requests, want 10", got)
	}
}
