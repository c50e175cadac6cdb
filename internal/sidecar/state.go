package sidecar

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/weftmesh/weft/internal/endpoint"
	"github.com/weftmesh/weft/internal/proxy/plan"
	"github.com/weftmesh/weft/internal/push"
	"github.com/weftmesh/weft/internal/security/authz"
	"github.com/weftmesh/weft/internal/snapshot"
	"github.com/weftmesh/weft/internal/telemetry"
)

// applyState compiles what the control plane pushed into a snapshot and
// hands it to the routing table. Records that cannot be used are logged
// once and left out; the rest is applied.
func (s *Sidecar) applyState(st push.State, rev int64) {
	snap, problems := s.compiler.Compile(st, rev)
	for _, p := range problems {
		s.log.Warn("ignoring a record the control plane pushed", "key", p.Key, "err", p.Err)
	}
	s.snap.Store(snap)
	for _, err := range s.table.Update(snap) {
		s.log.Warn("traffic policy not applied", "err", err)
	}
	s.peers.update(s, snap)
	if s.in != nil {
		var rl, perSource snapshot.RateLimit
		if own := snap.Services[s.cfg.Service]; own != nil {
			rl, perSource = own.Policy.RateLimit.Server, own.Policy.RateLimit.ServerPerSource
		}
		if err := s.in.SetServerLimit(rl, perSource); err != nil {
			s.log.Warn("server-side rate limit not applied", "err", err)
		}
		if m, err := authz.Compile(s.cfg.Service, snap.Authorization); err != nil {
			s.log.Warn("authorization policies not applied (the previous ones stay in force)", "err", err)
		} else {
			s.in.SetAuthorization(m)
		}
		s.applyPeerAuth(snap)
	}
	s.log.Debug("routing table updated", "revision", rev, "services", len(snap.Services))
}

func (s *Sidecar) adminMux() *http.ServeMux {
	mux := telemetry.Admin{Registry: s.deps.Registry, Ready: s.ready, Config: s.config}.Mux()
	mux.HandleFunc("GET /explain", s.explain)
	mux.HandleFunc("GET /recent", s.recent)
	return mux
}

// ready is /readyz: in sync with the control plane at least once,
// registered, and the app up. After the first sync, losing the control
// plane does not make the sidecar unready: it keeps routing with what it
// last knew, and says so in the detail.
func (s *Sidecar) ready() telemetry.Status {
	d := map[string]any{
		"synced":           s.push.Synced(),
		"controlConnected": s.push.Connected(),
		"revision":         s.push.Revision(),
	}
	ok := s.push.Synced()
	if !ok {
		d["waitingFor"] = "first sync with the control plane at " + s.cfg.Control
	}
	if s.reg != nil {
		reg, lease := s.reg.Registered()
		appUp := s.health.ok.Load()
		d["registered"], d["lease"], d["appUp"] = reg, lease, appUp
		if !reg && ok {
			d["waitingFor"] = "registration with the control plane at " + s.cfg.Control
		}
		if !appUp && ok && reg {
			d["waitingFor"] = "the app at " + s.health.app
		}
		ok = ok && reg && appUp
	}
	return telemetry.Status{Ready: ok, Detail: d}
}

// configView is /config: what this sidecar runs with, as a user reads it
// (listeners as bound, durations as written on the command line), and
// every service it routes to with each endpoint's state.
type configView struct {
	Service          string                 `json:"service"`
	Instance         string                 `json:"instance"`
	Labels           map[string]string      `json:"labels,omitempty"`
	Control          string                 `json:"control"`
	ControlConnected bool                   `json:"controlConnected"`
	Revision         int64                  `json:"revision"`
	Listeners        listenersView          `json:"listeners"`
	App              *appView               `json:"app,omitempty"`
	Settings         settingsView           `json:"settings"`
	Certificate      *certView              `json:"certificate,omitempty"` // with --join-token (certs.go)
	InboundMTLS      *mtlsView              `json:"inboundMTLS,omitempty"` // with an inbound (mtlsmode.go)
	Services         map[string]serviceView `json:"services"`
}

// mtlsView is the inbound's mode of mutual TLS and what set it.
type mtlsView struct {
	Mode string `json:"mode"` // strict or permissive
	By   string `json:"by"`   // "--mtls" or PeerAuthentication/NAME
}

type listenersView struct {
	Outbound  string         `json:"outbound"`
	Inbound   string         `json:"inbound,omitempty"`
	Admin     string         `json:"admin"`
	Advertise string         `json:"advertise,omitempty"`
	Upstreams []upstreamView `json:"upstreams,omitempty"`
}

type upstreamView struct {
	Service string `json:"service"`
	Address string `json:"address"`
	TCP     bool   `json:"tcp,omitempty"`
}

type appView struct {
	Address    string `json:"address"`
	Protocol   string `json:"protocol"`
	HealthPath string `json:"healthPath,omitempty"`
	Up         bool   `json:"up"`
}

type settingsView struct {
	Timeout        string `json:"timeout"`
	DetectTimeout  string `json:"detectTimeout"`
	TCPIdleTimeout string `json:"tcpIdleTimeout"`
	HealthInterval string `json:"healthInterval"`
	DrainTimeout   string `json:"drainTimeout"`
	LeaseTTL       string `json:"leaseTTL"`
	HTTP2Engine    string `json:"http2Engine"`
	InboundTLS     bool   `json:"inboundTLS,omitempty"`
}

// serviceView is one service this sidecar routes to: its policy, the
// live state of its circuit breaker here, and its endpoints.
type serviceView struct {
	External  bool           `json:"external,omitempty"`
	Protocol  string         `json:"protocol,omitempty"`
	Policy    policyView     `json:"policy"`
	Breaker   string         `json:"breaker,omitempty"` // closed, open, half-open; none without a circuit breaker
	Routes    []routeView    `json:"routes,omitempty"`  // in the order they are tried
	Endpoints []endpointView `json:"endpoints"`
}

// routeView is one match of one rule of a route whose parent is the
// service, in precedence order.
type routeView struct {
	Route    string   `json:"route"` // HTTPRoute/NAME or GRPCRoute/NAME
	Rule     int      `json:"rule"`
	Name     string   `json:"name,omitempty"`
	Match    string   `json:"match"`              // e.g. PathPrefix /api, GET, header x-user=beta
	Backends []string `json:"backends,omitempty"` // service[/subset] weight; none: the service itself
	// Filters are the rule's: Fault/NAME, RequestHeaderModifier,
	// ResponseHeaderModifier, RequestMirror service[/subset] percent%.
	Filters []string `json:"filters,omitempty"`
}

func viewRoute(r *snapshot.Route) routeView {
	v := routeView{Route: r.Route, Rule: r.Rule, Name: r.RuleName}
	v.Match = r.Describe()
	for _, b := range r.Backends {
		name := b.Service
		if b.Subset != "" {
			name += "/" + b.Subset
		}
		if b.Invalid != "" {
			name += " (invalid: " + b.Invalid + ")"
		}
		v.Backends = append(v.Backends, fmt.Sprintf("%s %d", name, b.Weight))
	}
	for _, f := range r.RouteRule.Faults {
		v.Filters = append(v.Filters, "Fault/"+f)
	}
	if r.RequestHeaders != nil {
		v.Filters = append(v.Filters, "RequestHeaderModifier")
	}
	if r.ResponseHeaders != nil {
		v.Filters = append(v.Filters, "ResponseHeaderModifier")
	}
	for _, m := range r.Mirrors {
		name := m.Backend.Service
		if m.Backend.Subset != "" {
			name += "/" + m.Backend.Subset
		}
		v.Filters = append(v.Filters, fmt.Sprintf("RequestMirror %s %g%%", name, m.Percent))
	}
	return v
}

// policyView is the traffic policy in force for a service: its
// TrafficPolicy resource with the defaults filled in, or the defaults.
type policyView struct {
	Resource       string   `json:"resource,omitempty"` // TrafficPolicy/NAME; none: the defaults
	Balancer       string   `json:"balancer"`
	RequestTimeout string   `json:"requestTimeout"`
	PerTryTimeout  string   `json:"perTryTimeout,omitempty"`
	Attempts       int      `json:"attempts"`
	RetryOn        []string `json:"retryOn,omitempty"`
	RetryBudget    string   `json:"retryBudget"`
	CircuitBreaker string   `json:"circuitBreaker,omitempty"`
	HealthCheck    string   `json:"healthCheck,omitempty"`
	RateLimit      string   `json:"rateLimit,omitempty"`
	Hedging        string   `json:"hedging,omitempty"`
	Fallback       int      `json:"fallback,omitempty"` // the fallback answer's status
}

func viewPolicy(p *snapshot.Policy) policyView {
	v := policyView{Resource: p.Resource, Balancer: p.LoadBalancer.Policy, RequestTimeout: duration(p.Timeouts.Request),
		Attempts: p.Retries.Attempts, RetryOn: p.Retries.On.Conditions(),
		RetryBudget: fmt.Sprintf("%g%% + %d/s over %s", p.Retries.Budget.Percent, p.Retries.Budget.MinPerSecond, duration(p.Retries.Budget.Window))}
	if p.Timeouts.PerTry > 0 {
		v.PerTryTimeout = duration(p.Timeouts.PerTry)
	}
	if cb := p.CircuitBreaker; cb.FailureRatio > 0 {
		v.CircuitBreaker = fmt.Sprintf("opens at %g of %d+ requests in %s for %s", cb.FailureRatio, cb.MinRequests, duration(cb.Window), duration(cb.OpenFor))
	}
	if hc := p.HealthCheck; hc.Enabled {
		v.HealthCheck = fmt.Sprintf("every %s, timeout %s, down after %d, up after %d", duration(hc.Interval), duration(hc.Timeout), hc.UnhealthyThreshold, hc.HealthyThreshold)
	}
	if rl := p.RateLimit.Client; rl.Enabled {
		v.RateLimit = fmt.Sprintf("%g/s, burst %d", rl.RequestsPerSecond, rl.Burst)
	}
	v.Hedging = hedging(p.Hedging)
	if p.Fallback.Enabled {
		v.Fallback = p.Fallback.Status
	}
	return v
}

// hedging says when a hedged try goes out and how many may: "after 20ms,
// at most 10% of requests", or "after p95, ..." when it follows recent
// latency; "" when hedging is off.
func hedging(h snapshot.Hedging) string {
	if !h.Enabled {
		return ""
	}
	after := duration(h.Delay)
	if h.Delay <= 0 {
		after = fmt.Sprintf("p%d", h.Percentile)
	}
	return fmt.Sprintf("after %s, at most %g%% of requests", after, h.MaxPercent)
}

// endpointView is one endpoint as the mesh lists it (ready: its sidecar
// reports its app up; external endpoints are not checked) and, when this
// sidecar routes to it, its state here: ejected after connect failures,
// attempts in flight, latency estimate, deferral by Retry-After.
type endpointView struct {
	Instance      string            `json:"instance"`
	Address       string            `json:"address"`
	Labels        map[string]string `json:"labels,omitempty"`
	Protocol      string            `json:"protocol,omitempty"`
	Ready         bool              `json:"ready"`
	Health        string            `json:"health"` // ready, not-ready, ejected, probe-down, unchecked
	EjectedUntil  *time.Time        `json:"ejectedUntil,omitempty"`
	Deferred      bool              `json:"deferred,omitempty"`      // it asked (Retry-After) to be left alone: picked only when nothing else is
	DeferredUntil *time.Time        `json:"deferredUntil,omitempty"` // when its Retry-After ends
	InFlight      int               `json:"inFlight,omitempty"`
	OpenConns     int               `json:"openConnections,omitempty"`      // HTTP/1.1 and TCP connections open to it
	WaitingConns  int               `json:"waitingForConnection,omitempty"` // requests waiting for one (circuitBreaker.maxConnections)
	Latency       string            `json:"latency,omitempty"`              // smoothed latency of successes
	PeakLatency   string            `json:"peakLatency,omitempty"`          // the peak-EWMA estimate, decayed to now
	FailureRate   float64           `json:"failureRate,omitempty"`          // recent share of failed attempts, decayed to now
	Attempts      uint64            `json:"attempts,omitempty"`
	Failures      uint64            `json:"failures,omitempty"`
	EjectReason   string            `json:"ejectReason,omitempty"` // of the last outlier ejection: consecutive-5xx, gateway-errors, connect-failure, success-rate
	Ejections     uint64            `json:"ejections,omitempty"`   // outlier ejections so far
}

func (s *Sidecar) config() any {
	out, in, admin := s.Addrs()
	v := configView{
		Service: s.cfg.Service, Instance: s.cfg.ID, Labels: s.cfg.Labels,
		Control: s.cfg.Control, ControlConnected: s.push.Connected(), Revision: s.push.Revision(),
		Listeners: listenersView{Outbound: out, Inbound: in, Admin: admin},
		Settings: settingsView{
			Timeout: duration(s.cfg.Timeout), DetectTimeout: duration(s.cfg.DetectTimeout),
			TCPIdleTimeout: duration(s.cfg.TCPIdleTimeout), HealthInterval: duration(s.cfg.HealthInterval),
			DrainTimeout: duration(s.cfg.DrainTimeout), LeaseTTL: duration(s.cfg.LeaseTTL),
			HTTP2Engine: s.cfg.HTTP2Engine, InboundTLS: s.cfg.InboundTLSCert != "",
		},
		Services:    map[string]serviceView{},
		Certificate: s.certView(),
	}
	if s.inLn != nil {
		v.Listeners.Advertise = s.advertise()
		v.App = &appView{Address: s.health.app, Protocol: s.cfg.AppProtocol, HealthPath: s.cfg.HealthPath, Up: s.health.ok.Load()}
		mode, by := s.inMode.view()
		v.InboundMTLS = &mtlsView{Mode: mode, By: by}
	}
	for i, u := range s.cfg.Upstreams {
		v.Listeners.Upstreams = append(v.Listeners.Upstreams, upstreamView{Service: u.Service, Address: s.upLns[i].Addr().String(), TCP: u.TCP})
	}
	snap := s.snap.Load()
	if snap == nil {
		return v
	}
	now := time.Now()
	for _, name := range snap.Names() {
		v.Services[name] = viewService(snap.Services[name], s.table.Lookup(name), now)
	}
	return v
}

// viewService is svc as this sidecar routes to it through c (nil: not in
// the routing table).
func viewService(svc *snapshot.Service, c *plan.Cluster, now time.Time) serviceView {
	sv := serviceView{External: svc.External, Protocol: svc.Protocol, Policy: viewPolicy(&svc.Policy),
		Endpoints: make([]endpointView, 0, len(svc.Endpoints))}
	if c != nil {
		sv.Breaker, _ = c.BreakerState(now)
	}
	for i := range svc.Routes {
		sv.Routes = append(sv.Routes, viewRoute(&svc.Routes[i]))
	}
	for _, e := range svc.Endpoints {
		ev := endpointView{Instance: e.Instance, Address: e.Address, Labels: e.Labels, Protocol: e.Protocol, Ready: e.Ready}
		switch {
		case !e.Ready:
			ev.Health = "not-ready"
		case e.External:
			ev.Health = "unchecked"
		default:
			ev.Health = "ready"
		}
		if c != nil {
			for _, ep := range c.Endpoints {
				if ep.Address == e.Address && ep.Instance == e.Instance {
					addStats(&ev, ep.Stats())
				}
			}
		}
		sv.Endpoints = append(sv.Endpoints, ev)
	}
	return sv
}

// addStats fills ev with the state of its endpoint on this sidecar.
func addStats(ev *endpointView, st endpoint.Stats) {
	if !st.EjectedUntil.IsZero() {
		t := st.EjectedUntil.UTC().Truncate(time.Millisecond)
		ev.EjectedUntil, ev.Health = &t, "ejected"
	}
	if st.Health.ProbeDown {
		ev.Health = "probe-down" // this sidecar's probes fail, whatever the registry says
	}
	if !st.DeferredUntil.IsZero() {
		t := st.DeferredUntil.UTC().Truncate(time.Millisecond)
		ev.Deferred, ev.DeferredUntil = true, &t
	}
	if st.Ejections > 0 {
		ev.EjectReason, ev.Ejections = st.EjectionReason.String(), st.Ejections
	}
	ev.InFlight, ev.Attempts, ev.Failures = st.InFlight, st.Attempts, st.Failures
	ev.OpenConns, ev.WaitingConns = st.OpenConns, st.WaitingForConn
	if st.Latency > 0 {
		ev.Latency = duration(st.Latency.Round(time.Microsecond))
	}
	if st.Attempts > 0 {
		ev.PeakLatency = duration(st.PeakLatency.Round(time.Microsecond))
		ev.FailureRate = math.Round(st.FailureRate*1000) / 1000
	}
}

// duration writes d as on the command line: 100ms, 15s, 1h (not 1h0m0s).
func duration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
