package sidecar

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/internal/endpoint"
)

// policyMetrics exposes, read at scrape time, what the traffic policy is
// doing: outlier ejections by reason, endpoints by health, breaker states
// and the active probes. Nothing is counted on the request path for them.
type policyMetrics struct {
	s                                *Sidecar
	ejections, endpoints, breaker    *prometheus.Desc
	probes, probeFailures, probeFlip *prometheus.Desc
}

func newPolicyMetrics(s *Sidecar) *policyMetrics {
	return &policyMetrics{s: s,
		ejections: prometheus.NewDesc("weft_outlier_ejections_total",
			"Endpoints ejected by outlier detection, by destination service and reason.", []string{"service", "reason"}, nil),
		endpoints: prometheus.NewDesc("weft_endpoints",
			"Endpoints this sidecar routes to, by destination service and health (healthy, not-ready, probe-down, ejected, backoff).", []string{"service", "health"}, nil),
		breaker: prometheus.NewDesc("weft_circuit_breaker_open",
			"1 while the destination service's circuit breaker is open, 0.5 half-open, 0 closed (services with a breaker only).", []string{"service"}, nil),
		probes:        prometheus.NewDesc("weft_health_probes_total", "Active probes sent to peer sidecars.", nil, nil),
		probeFailures: prometheus.NewDesc("weft_health_probe_failures_total", "Active probes that failed.", nil, nil),
		probeFlip:     prometheus.NewDesc("weft_health_probe_state_changes_total", "Peers marked down or up again by active probes.", nil, nil),
	}
}

func (m *policyMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.ejections, m.endpoints, m.breaker, m.probes, m.probeFailures, m.probeFlip} {
		ch <- d
	}
}

func (m *policyMetrics) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	for _, name := range m.s.table.Services() {
		c := m.s.table.Lookup(name)
		if c == nil {
			continue
		}
		if g := c.Group(); g != nil {
			st := g.Stats(now)
			for r := endpoint.Reason(1); r < endpoint.NumReasons; r++ {
				ch <- prometheus.MustNewConstMetric(m.ejections, prometheus.CounterValue, float64(st.Ejections[r]), name, r.String())
			}
		}
		byHealth := map[string]int{"healthy": 0, "not-ready": 0, "probe-down": 0, "ejected": 0, "backoff": 0}
		for _, e := range c.Endpoints {
			byHealth[e.Stats().Health.String()]++
		}
		for h, n := range byHealth {
			ch <- prometheus.MustNewConstMetric(m.endpoints, prometheus.GaugeValue, float64(n), name, h)
		}
		if state, ok := c.BreakerState(now); ok {
			v := 0.0
			switch state {
			case "open":
				v = 1
			case "half-open":
				v = 0.5
			}
			ch <- prometheus.MustNewConstMetric(m.breaker, prometheus.GaugeValue, v, name)
		}
	}
	ps := m.s.peers.prober.Stats()
	ch <- prometheus.MustNewConstMetric(m.probes, prometheus.CounterValue, float64(ps.Sent))
	ch <- prometheus.MustNewConstMetric(m.probeFailures, prometheus.CounterValue, float64(ps.Failed))
	ch <- prometheus.MustNewConstMetric(m.probeFlip, prometheus.CounterValue, float64(ps.StateChanges))
}
