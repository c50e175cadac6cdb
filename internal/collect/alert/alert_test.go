package alert

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/weftmesh/weft/internal/collect"
	"github.com/weftmesh/weft/internal/config"
)

// figures is a collect.Query whose answers the test sets.
type figures struct {
	mu       sync.Mutex
	services map[string]collect.Golden
	edges    map[[2]string]collect.Golden
	windows  []time.Duration // asked for, in order
}

func newFigures() *figures {
	return &figures{services: map[string]collect.Golden{}, edges: map[[2]string]collect.Golden{}}
}

func (f *figures) Service(name string, window time.Duration) collect.Golden {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.windows = append(f.windows, window)
	return f.services[name]
}

func (f *figures) Edge(source, destination string, window time.Duration) collect.Golden {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.windows = append(f.windows, window)
	return f.edges[[2]string{source, destination}]
}

func (f *figures) setService(name string, g collect.Golden) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.services[name] = g
}

func (f *figures) setEdge(source, destination string, g collect.Golden) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.edges[[2]string{source, destination}] = g
}

// served is n requests of which failed failed, over a minute.
func served(n, failed uint64) collect.Golden {
	return collect.Golden{Requests: n, Failures: failed, RPS: float64(n) / 60, SuccessRate: 1 - float64(failed)/float64(n)}
}

// rig is an evaluator over figures, rules and instance counts the test sets.
type rig struct {
	e      *Evaluator
	q      *figures
	reg    *prometheus.Registry
	mu     sync.Mutex
	rules  []config.Alert
	rerr   error
	counts map[string]Instances
	cerr   error
}

func newRig(t *testing.T, cfg Config, rules ...config.Alert) *rig {
	t.Helper()
	r := &rig{q: newFigures(), reg: prometheus.NewRegistry(), rules: rules, counts: map[string]Instances{}}
	var err error
	r.e, err = New(cfg, Deps{
		Query: r.q,
		Rules: func(context.Context) ([]config.Alert, error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			return append([]config.Alert(nil), r.rules...), r.rerr
		},
		Instances: func(context.Context) (map[string]Instances, error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			return r.counts, r.cerr
		},
		Registry: r.reg,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *rig) status(t *testing.T, name string) Status {
	t.Helper()
	for _, s := range r.e.Status() {
		if s.Rule == name {
			return s
		}
	}
	t.Fatalf("no status for rule %s in %+v", name, r.e.Status())
	return Status{}
}

func (r *rig) wantState(t *testing.T, name string, want State) {
	t.Helper()
	if got := r.status(t, name); got.State != want {
		t.Fatalf("rule %s: got state %s, want %s (history %+v)", name, got.State, want, got.History)
	}
}

func successRule(name string, forDur time.Duration) config.Alert {
	return config.Alert{Name: name, Service: "catalog", Metric: config.AlertSuccessRate, Op: config.AlertBelow,
		Threshold: 0.99, Window: time.Minute, For: forDur, Severity: config.SeverityWarning}
}

func TestRuleGoesPendingFiringResolved(t *testing.T) {
	r := newRig(t, Config{}, successRule("catalog-errors", 30*time.Second))
	ctx := context.Background()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

	r.q.setService("catalog", served(1000, 0))
	r.e.Evaluate(ctx, t0)
	r.wantState(t, "catalog-errors", Inactive)

	r.q.setService("catalog", served(1000, 500))
	r.e.Evaluate(ctx, t0.Add(5*time.Second))
	r.wantState(t, "catalog-errors", Pending)
	r.e.Evaluate(ctx, t0.Add(30*time.Second)) // held 25s of 30s
	r.wantState(t, "catalog-errors", Pending)
	if got := testutil.ToFloat64(r.e.firing.WithLabelValues("catalog-errors")); got != 0 {
		t.Errorf("weft_alerts_firing while pending: got %g, want 0", got)
	}
	r.e.Evaluate(ctx, t0.Add(35*time.Second)) // held 30s
	r.wantState(t, "catalog-errors", Firing)
	s := r.status(t, "catalog-errors")
	if s.Value == nil || *s.Value != 0.5 || !s.Since.Equal(t0.Add(35*time.Second)) {
		t.Errorf("firing: got value %v since %s, want 0.5 since %s", s.Value, s.Since, t0.Add(35*time.Second))
	}
	if got := testutil.ToFloat64(r.e.firing.WithLabelValues("catalog-errors")); got != 1 {
		t.Errorf("weft_alerts_firing while firing: got %g, want 1", got)
	}
	r.e.Evaluate(ctx, t0.Add(40*time.Second))
	r.wantState(t, "catalog-errors", Firing) // no new transition while it holds

	r.q.setService("catalog", served(1000, 1))
	r.e.Evaluate(ctx, t0.Add(45*time.Second))
	r.wantState(t, "catalog-errors", Resolved)
	if got := testutil.ToFloat64(r.e.firing.WithLabelValues("catalog-errors")); got != 0 {
		t.Errorf("weft_alerts_firing once resolved: got %g, want 0", got)
	}
	var got []string
	for _, tr := range r.status(t, "catalog-errors").History {
		got = append(got, string(tr.From)+">"+string(tr.To))
	}
	if want := "inactive>pending pending>firing firing>resolved"; strings.Join(got, " ") != want {
		t.Errorf("history: got %q, want %q", strings.Join(got, " "), want)
	}
}

func TestPendingClearsBeforeFor(t *testing.T) {
	r := newRig(t, Config{}, successRule("flap", time.Minute))
	ctx := context.Background()
	t0 := time.Now()
	r.q.setService("catalog", served(100, 50))
	r.e.Evaluate(ctx, t0)
	r.wantState(t, "flap", Pending)
	r.q.setService("catalog", served(100, 0))
	r.e.Evaluate(ctx, t0.Add(10*time.Second))
	r.wantState(t, "flap", Inactive)
	// Failing again starts the wait over.
	r.q.setService("catalog", served(100, 50))
	r.e.Evaluate(ctx, t0.Add(20*time.Second))
	r.e.Evaluate(ctx, t0.Add(70*time.Second)) // 50s since it held again
	r.wantState(t, "flap", Pending)
	r.e.Evaluate(ctx, t0.Add(80*time.Second))
	r.wantState(t, "flap", Firing)
}

func TestNoDataIsNotAFailure(t *testing.T) {
	p99 := config.Alert{Name: "slow", Service: "catalog", Metric: config.AlertP99, Op: config.AlertAbove, Threshold: 0.1, Window: time.Minute}
	quiet := config.Alert{Name: "quiet", Service: "catalog", Metric: config.AlertRPS, Op: config.AlertBelow, Threshold: 1, Window: time.Minute}
	busy := config.Alert{Name: "busy", Service: "catalog", Metric: config.AlertRPS, Op: config.AlertAbove, Threshold: 0, Window: time.Minute}
	r := newRig(t, Config{}, successRule("errors", 0), p99, quiet, busy)
	r.e.Evaluate(context.Background(), time.Now()) // no request in the window
	r.wantState(t, "errors", Inactive)
	r.wantState(t, "slow", Inactive)
	r.wantState(t, "quiet", Firing)
	r.wantState(t, "busy", Inactive)
	if v := r.status(t, "errors").Value; v != nil {
		t.Errorf("success rate with no requests: got value %g, want none", *v)
	}
	if v := r.status(t, "quiet").Value; v == nil || *v != 0 {
		t.Errorf("rps with no requests: got %v, want 0", v)
	}
}

func TestEdgeP99AndWindow(t *testing.T) {
	a := config.Alert{Name: "slow-edge", Source: "web", Destination: "catalog", Metric: config.AlertP99, Op: config.AlertAbove,
		Threshold: 0.25, Window: 30 * time.Second}
	r := newRig(t, Config{}, a)
	g := served(10, 0)
	g.P99 = 300 * time.Millisecond
	r.q.setEdge("web", "catalog", g)
	r.e.Evaluate(context.Background(), time.Now())
	r.wantState(t, "slow-edge", Firing)
	s := r.status(t, "slow-edge")
	if s.Target() != "web->catalog" || s.Condition() != "p99 > 250ms" {
		t.Errorf("got target %q condition %q, want web->catalog and p99 > 250ms", s.Target(), s.Condition())
	}
	if len(r.q.windows) != 1 || r.q.windows[0] != 30*time.Second {
		t.Errorf("windows asked for: got %v, want [30s]", r.q.windows)
	}
}

func TestReadyInstances(t *testing.T) {
	a := config.Alert{Name: "few", Service: "catalog", Metric: config.AlertReadyInstances, Op: config.AlertBelow, Threshold: 2, Window: time.Minute}
	r := newRig(t, Config{}, a)
	ctx := context.Background()
	r.counts = map[string]Instances{"catalog": {Ready: 3, Total: 3}}
	r.e.Evaluate(ctx, time.Now())
	r.wantState(t, "few", Inactive)
	r.mu.Lock()
	r.counts = map[string]Instances{"catalog": {Ready: 1, Total: 3}}
	r.mu.Unlock()
	r.e.Evaluate(ctx, time.Now())
	r.wantState(t, "few", Firing)
	// Counts that cannot be had are no data: the rule resolves rather
	// than guessing.
	r.mu.Lock()
	r.cerr = errors.New("etcd down")
	r.mu.Unlock()
	r.e.Evaluate(ctx, time.Now())
	r.wantState(t, "few", Resolved)
	if v := r.status(t, "few").Value; v != nil {
		t.Errorf("value without counts: got %g, want none", *v)
	}
}

func TestRulesComeAndGo(t *testing.T) {
	r := newRig(t, Config{}, successRule("a", 0), successRule("b", 0))
	ctx := context.Background()
	r.q.setService("catalog", served(10, 5))
	r.e.Evaluate(ctx, time.Now())
	r.wantState(t, "a", Firing)
	// A failed read keeps the rules of the last tick.
	r.mu.Lock()
	r.rerr = errors.New("etcd down")
	r.mu.Unlock()
	r.e.Evaluate(ctx, time.Now())
	if got := len(r.e.Status()); got != 2 {
		t.Errorf("after a failed read: got %d rules, want 2", got)
	}
	r.mu.Lock()
	r.rerr, r.rules = nil, []config.Alert{successRule("b", 0)}
	r.mu.Unlock()
	r.e.Evaluate(ctx, time.Now())
	if got := r.e.Status(); len(got) != 1 || got[0].Rule != "b" {
		t.Errorf("after deleting a: got %+v, want only b", got)
	}
	if n := testutil.CollectAndCount(r.e.firing); n != 1 {
		t.Errorf("weft_alerts_firing series after deleting a: got %d, want 1", n)
	}
}

func TestHistoryIsBounded(t *testing.T) {
	r := newRig(t, Config{History: 3}, successRule("flap", 0))
	ctx := context.Background()
	t0 := time.Now()
	for i := range 10 {
		r.q.setService("catalog", served(10, uint64(5*(1-i%2)))) // failing, well, failing, ...
		r.e.Evaluate(ctx, t0.Add(time.Duration(i)*time.Second))
	}
	h := r.status(t, "flap").History
	if len(h) != 3 {
		t.Fatalf("history: got %d entries, want 3", len(h))
	}
	for i, tr := range h {
		if want := t0.Add(time.Duration(7+i) * time.Second); !tr.Time.Equal(want) {
			t.Errorf("history[%d]: got time %s, want %s (the last three, oldest first)", i, tr.Time, want)
		}
	}
}

func TestRunEvaluatesUntilStopped(t *testing.T) {
	r := newRig(t, Config{Interval: 10 * time.Millisecond}, successRule("catalog-errors", 0))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.e.Run(ctx) }()
	// Run evaluates at once and then every Interval: a change is seen
	// without any call from the test.
	eventually(t, func() bool { return len(r.e.Status()) == 1 }, "the rule evaluated")
	r.q.setService("catalog", served(10, 5))
	eventually(t, func() bool { return r.e.Status()[0].State == Firing }, "the rule firing")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: got %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5s of its context ending")
	}
}
