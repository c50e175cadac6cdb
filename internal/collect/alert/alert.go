// Package alert evaluates AlertRules against the collection center's
// golden metrics and the instance counts of the registry, keeps each
// rule's state and a bounded history of its transitions, and notifies
// webhooks when a rule fires and when it resolves.
//
//	rules ──────────┐
//	collect.Query ──┼─▶ Evaluate (every tick) ─▶ state per rule ─▶ Status (/v1/alerts)
//	instance counts ┘          │ firing, resolved
//	                           ▼
//	            bounded queue (sheds, counts) ─▶ workers ─▶ POST, signed, retried with backoff
//
// A rule is inactive, pending (the condition holds, not yet for its
// `for`), firing, or resolved (it fired and the condition no longer
// holds). Evaluation never waits on a webhook.
package alert

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/internal/collect"
	"github.com/weftmesh/weft/internal/config"
)

// Instances is how many instances a service has, and how many are ready.
type Instances struct {
	Ready, Total int
}

// Config shapes an Evaluator; zero fields take the defaults Default holds.
type Config struct {
	Interval   time.Duration // between evaluations; default 5s
	History    int           // transitions kept per rule; default 100
	Queue      int           // notifications waiting to be sent; default 256 (more are dropped and counted)
	Workers    int           // notifications sent at once; default 2
	Attempts   int           // tries per notification; default 5
	Backoff    time.Duration // wait after the first failed try, doubling each time; default 1s
	MaxBackoff time.Duration // longest wait between tries; default 30s
	Timeout    time.Duration // for one try; default 10s
}

// Default returns the documented defaults.
func Default() Config {
	return Config{Interval: 5 * time.Second, History: 100, Queue: 256, Workers: 2, Attempts: 5,
		Backoff: time.Second, MaxBackoff: 30 * time.Second, Timeout: 10 * time.Second}
}

func (c Config) withDefaults() Config {
	d := Default()
	for _, f := range []struct{ v, def *time.Duration }{{&c.Interval, &d.Interval}, {&c.Backoff, &d.Backoff}, {&c.MaxBackoff, &d.MaxBackoff}, {&c.Timeout, &d.Timeout}} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	for _, f := range []struct{ v, def *int }{{&c.History, &d.History}, {&c.Queue, &d.Queue}, {&c.Workers, &d.Workers}, {&c.Attempts, &d.Attempts}} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	return c
}

// Deps are what an Evaluator reads and where it reports.
type Deps struct {
	// Query answers the golden metrics of services and edges.
	Query collect.Query
	// Rules lists the rules to evaluate; it is called at every tick, and
	// when it fails the rules of the last tick are kept.
	Rules func(ctx context.Context) ([]config.Alert, error)
	// Instances counts the instances of every service, by name; called
	// at every tick. When it fails readyInstances rules have no data.
	Instances func(ctx context.Context) (map[string]Instances, error)
	Registry  *prometheus.Registry
	Logger    *slog.Logger
	// Client posts notifications; default a client with a transport of
	// its own. Its idle connections are closed when Run returns.
	Client *http.Client
}

// Evaluator evaluates rules and notifies webhooks. Run drives it;
// Status reads it from any goroutine.
type Evaluator struct {
	cfg  Config
	deps Deps
	log  *slog.Logger

	mu     sync.Mutex
	rules  []config.Alert
	states map[string]*ruleState

	firing *prometheus.GaugeVec
	out    *notifier
}

// New checks deps and registers the metrics.
func New(cfg Config, deps Deps) (*Evaluator, error) {
	if deps.Query == nil || deps.Rules == nil || deps.Instances == nil || deps.Registry == nil || deps.Logger == nil {
		return nil, errors.New("alert: Query, Rules, Instances, Registry and Logger are required")
	}
	cfg = cfg.withDefaults()
	if deps.Client == nil {
		deps.Client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	e := &Evaluator{cfg: cfg, deps: deps, log: deps.Logger.With("component", "alerts"), states: map[string]*ruleState{}}
	e.firing = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "weft_alerts_firing",
		Help: "1 while the AlertRule is firing, else 0.",
	}, []string{"rule"})
	sent := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weft_alert_notifications_total",
		Help: "Webhook notifications by outcome: sent, retried (a try that failed and was tried again), failed (every try failed, or the secret could not be read), dropped (the queue was full).",
	}, []string{"outcome"})
	for _, c := range []prometheus.Collector{e.firing, sent} {
		if err := deps.Registry.Register(c); err != nil {
			return nil, fmt.Errorf("alert: register metrics: %w", err)
		}
	}
	e.out = newNotifier(cfg, deps.Client, sent, e.log)
	return e, nil
}

// Run evaluates every Interval and sends notifications until ctx ends;
// it returns once every goroutine it started has stopped.
func (e *Evaluator) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	e.out.start(ctx, &wg)
	defer e.deps.Client.CloseIdleConnections()
	defer wg.Wait()
	t := time.NewTicker(e.cfg.Interval)
	defer t.Stop()
	for {
		e.Evaluate(ctx, time.Now())
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Evaluate runs one evaluation of every rule at now. Run calls it at
// every tick; tests call it with a clock of their own.
func (e *Evaluator) Evaluate(ctx context.Context, now time.Time) {
	rules, err := e.deps.Rules(ctx)
	if err != nil {
		e.log.Warn("alert rules not read; evaluating the last ones read", "err", err)
		e.mu.Lock()
		rules = e.rules
		e.mu.Unlock()
	}
	counts, countsOK := e.instanceCounts(ctx, rules)
	values := make([]reading, len(rules))
	for i := range rules {
		values[i] = e.read(&rules[i], counts, countsOK)
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	e.rules = rules
	seen := make(map[string]bool, len(rules))
	for i := range rules {
		a := &rules[i]
		seen[a.Name] = true
		st := e.states[a.Name]
		if st == nil {
			st = &ruleState{state: Inactive, since: now}
			e.states[a.Name] = st
		}
		st.alert = *a
		if n, ok := st.step(now, values[i], e.cfg.History); ok {
			e.notify(a, n)
		}
		e.firing.WithLabelValues(a.Name).Set(boolGauge(st.state == Firing))
	}
	for name := range e.states {
		if !seen[name] {
			delete(e.states, name)
			e.firing.DeleteLabelValues(name)
		}
	}
}

// instanceCounts asks for the counts; a failure is logged when a rule
// needed them.
func (e *Evaluator) instanceCounts(ctx context.Context, rules []config.Alert) (map[string]Instances, bool) {
	counts, err := e.deps.Instances(ctx)
	if err == nil {
		return counts, true
	}
	for i := range rules {
		if rules[i].Metric == config.AlertReadyInstances {
			e.log.Warn("instances not counted; readyInstances rules have no data", "err", err)
			break
		}
	}
	return nil, false
}

// reading is a rule's figure at one evaluation; ok false when there is
// no data to judge the condition by.
type reading struct {
	value float64
	ok    bool
}

// read computes a rule's figure. With no request in the window a success
// rate or a p99 has no data, and a rate is 0.
func (e *Evaluator) read(a *config.Alert, counts map[string]Instances, countsOK bool) reading {
	if a.Metric == config.AlertReadyInstances {
		return reading{float64(counts[a.Service].Ready), countsOK}
	}
	var g collect.Golden
	if a.Service != "" {
		g = e.deps.Query.Service(a.Service, a.Window)
	} else {
		g = e.deps.Query.Edge(a.Source, a.Destination, a.Window)
	}
	switch a.Metric {
	case config.AlertSuccessRate:
		return reading{g.SuccessRate, g.Requests > 0}
	case config.AlertP99:
		return reading{g.P99.Seconds(), g.Requests > 0}
	default: // rps
		return reading{g.RPS, true}
	}
}

// notify queues a notification to each of the rule's webhooks.
func (e *Evaluator) notify(a *config.Alert, n Notification) {
	for _, h := range a.Webhooks {
		e.out.enqueue(h, n)
	}
}

// Status is every rule's state, by name.
func (e *Evaluator) Status() []Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Status, 0, len(e.states))
	for _, st := range e.states {
		out = append(out, st.status())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Rule < out[j].Rule })
	return out
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
