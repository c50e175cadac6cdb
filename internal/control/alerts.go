package control

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/internal/collect"
	"github.com/weftmesh/weft/internal/collect/alert"
	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/telemetry"
)

// alertReadTimeout bounds each tick's reads of etcd (the rules and the
// instances).
const alertReadTimeout = 2 * time.Second

// alarms runs the AlertRule evaluator over the rules in the config
// store, the collection center's figures and the registry's instance
// counts, which it also publishes as weft_instances{service,state}
// (state ready or not_ready) at every evaluation, for the exported
// Prometheus rules.
type alarms struct {
	eval      *alert.Evaluator
	instances *prometheus.GaugeVec
	published map[string]bool // services in weft_instances; only the evaluator's goroutine touches it
}

// newAlarms builds the evaluator over q, evaluating every interval (0:
// the default, 5s).
func (c *Control) newAlarms(q collect.Query, interval time.Duration, reg *prometheus.Registry, logger *slog.Logger) (*alarms, error) {
	a := &alarms{published: map[string]bool{}, instances: prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "weft_instances",
		Help: "Registered instances of each service by state (ready, not_ready), as of the last alert evaluation.",
	}, []string{"service", "state"})}
	if err := reg.Register(a.instances); err != nil {
		return nil, fmt.Errorf("register weft_instances: %w", err)
	}
	cfg := alert.Default()
	if interval > 0 {
		cfg.Interval = interval
	}
	log := logger.With("component", "alerts")
	eval, err := alert.New(cfg, alert.Deps{
		Query:     q,
		Rules:     func(ctx context.Context) ([]config.Alert, error) { return c.alertRules(ctx, log) },
		Instances: a.count(c),
		Registry:  reg,
		Logger:    logger,
	})
	if err != nil {
		return nil, err
	}
	a.eval = eval
	return a, nil
}

// alertRules reads the AlertRules from the store. One that does not
// compile (written by an older version, say) is left out and logged.
func (c *Control) alertRules(ctx context.Context, log *slog.Logger) ([]config.Alert, error) {
	ctx, cancel := context.WithTimeout(ctx, alertReadTimeout)
	defer cancel()
	list, err := c.resources.List(ctx, "AlertRule")
	if err != nil {
		return nil, fmt.Errorf("list AlertRules: %w", err)
	}
	out := make([]config.Alert, 0, len(list))
	for i := range list {
		a, err := config.CompileAlertRule(&list[i])
		if err != nil {
			log.Warn("AlertRule left out", "rule", list[i].Ref(), "err", err)
			continue
		}
		out = append(out, a)
	}
	return out, nil
}

// count is the evaluator's Instances: the registered instances of every
// service the mesh knows, published as weft_instances too.
func (a *alarms) count(c *Control) func(ctx context.Context) (map[string]alert.Instances, error) {
	return func(ctx context.Context) (map[string]alert.Instances, error) {
		ctx, cancel := context.WithTimeout(ctx, alertReadTimeout)
		defer cancel()
		insts, err := c.instances.List(ctx, "")
		if err != nil {
			return nil, fmt.Errorf("list instances: %w", err)
		}
		known, err := c.instances.Services(ctx)
		if err != nil {
			return nil, fmt.Errorf("list services: %w", err)
		}
		out := make(map[string]alert.Instances, len(known))
		for _, s := range known {
			out[s.Name] = alert.Instances{}
		}
		for _, in := range insts {
			n := out[in.Service]
			n.Total++
			if in.Ready {
				n.Ready++
			}
			out[in.Service] = n
		}
		for name := range a.published {
			if _, ok := out[name]; !ok {
				a.instances.DeletePartialMatch(prometheus.Labels{"service": name})
				delete(a.published, name)
			}
		}
		for name, n := range out {
			a.published[name] = true
			a.instances.WithLabelValues(name, "ready").Set(float64(n.Ready))
			a.instances.WithLabelValues(name, "not_ready").Set(float64(n.Total - n.Ready))
		}
		return out, nil
	}
}

// mountAlerts serves GET /v1/alerts: every rule with its state, value,
// since and history.
func (c *Control) mountAlerts(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/alerts", func(w http.ResponseWriter, r *http.Request) {
		telemetry.WriteJSON(w, http.StatusOK, c.alarms.eval.Status())
	})
}
