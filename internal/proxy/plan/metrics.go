package plan

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the data path's golden signals. Label handles are resolved
// once per service and status code, not per request.
type Metrics struct {
	// Source is the service of this sidecar: the source_service of its
	// outbound requests. Set it before the first ForService.
	Source string

	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	errors       *prometheus.CounterVec
	retries      *prometheus.CounterVec
	budgetDenied *prometheus.CounterVec
	hedges       *prometheus.CounterVec
	overflows    *prometheus.CounterVec
	mirrors      *prometheus.CounterVec
	inflight     *prometheus.GaugeVec
	tunnels      prometheus.Counter

	tcpConns, tcpReceived, tcpSent, tcpIdle *prometheus.CounterVec
	tcpActive                               *prometheus.GaugeVec
	detections                              *prometheus.CounterVec
	refused                                 *prometheus.CounterVec
	authz                                   *prometheus.CounterVec
}

// NewMetrics registers the data path metrics in reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_requests_total",
			Help: "Requests handled, by direction, calling and called service, HTTP status, grpc-status (\"\" when not gRPC) and the route that matched (\"\" for none).",
		}, []string{"direction", "source_service", "destination_service", "response_code", "grpc_status", "route"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "weft_request_duration_seconds",
			Help:    "Time from request accepted to response headers written.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"direction", "source_service", "destination_service", "route"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_mesh_errors_total",
			Help: "Errors the mesh itself answered with, by reason (the x-weft-error header).",
		}, []string{"direction", "service", "reason"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_retries_total",
			Help: "Requests sent again to another instance: after a connect failure, a refusal, a broken connection, a per-try timeout or an answer the service's policy retries.",
		}, []string{"service"}),
		budgetDenied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_retry_budget_exhausted_total",
			Help: "Retries not made because the service's retry budget was spent.",
		}, []string{"service"}),
		hedges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_hedges_total",
			Help: "Hedges (a second try sent while the first still waits), by service and outcome: won (the hedge answered first), lost (the first try did), failed, denied (over hedging.maxPercent or the retry budget).",
		}, []string{"service", "outcome"}),
		overflows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_connection_overflows_total",
			Help: "Tries passed to another instance because theirs had circuitBreaker.maxConnections open and none freed in time (or maxPendingRequests waited already).",
		}, []string{"service"}),
		mirrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_mirrors_total",
			Help: "Requests a route rule copied to a mirror (RequestMirror), by service, mirror and outcome: sent, busy (shed: too many in flight), body-too-large, body-streamed (chunked on HTTP/1.1), incomplete (the body could not be had whole), no-backend. The copies' answers count under direction \"mirror\".",
		}, []string{"service", "mirror", "outcome"}),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weft_requests_in_flight",
			Help: "Requests accepted and not yet answered, by direction and destination service.",
		}, []string{"direction", "service"}),
		tunnels: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_connect_tunnels_total",
			Help: "CONNECT tunnels opened, to mesh services and for egress.",
		}),
		tcpConns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_tcp_connections_total",
			Help: "TCP connections forwarded as bytes, by direction, calling service (inbound: the peer its mutual TLS proved, else unknown) and destination service.",
		}, []string{"direction", "source_service", "destination_service"}),
		tcpActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weft_tcp_connections_active",
			Help: "TCP connections being forwarded now.",
		}, []string{"direction", "service"}),
		tcpReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_tcp_received_bytes_total",
			Help: "Bytes received from the connecting side of forwarded TCP connections.",
		}, []string{"direction", "source_service", "destination_service"}),
		tcpSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_tcp_sent_bytes_total",
			Help: "Bytes sent back to the connecting side of forwarded TCP connections.",
		}, []string{"direction", "source_service", "destination_service"}),
		tcpIdle: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_tcp_idle_timeouts_total",
			Help: "TCP connections closed because no byte moved for the idle timeout.",
		}, []string{"direction", "service"}),
		detections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_protocol_detections_total",
			Help: "Connections accepted, by listener, the protocol they were taken for (http1, h2, tls, tcp) and how: sniffed from the first bytes, timeout (nothing sent in time), or declared (detection skipped).",
		}, []string{"listener", "protocol", "how"}),
		authz: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_authz_decisions_total",
			Help: "Requests the inbound's AuthorizationPolicies decided on, by service and decision (allow or deny); none while no policy applies and the mesh default allows.",
		}, []string{"service", "decision"}),
	}
	m.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weft_connections_refused_total",
		Help: "Connections a listener closed at once, by reason: not-mtls (a strict inbound takes only mutual TLS from peer sidecars), handshake (a peer's mutual TLS failed: no certificate, another CA, expired, not a workload identity).",
	}, []string{"listener", "reason"})
	reg.MustRegister(m.refused)
	reg.MustRegister(m.requests, m.duration, m.errors, m.retries, m.budgetDenied, m.hedges, m.overflows, m.mirrors, m.inflight, m.tunnels,
		m.tcpConns, m.tcpActive, m.tcpReceived, m.tcpSent, m.tcpIdle, m.detections, m.authz)
	return m
}

// ServiceMetrics caches the label handles of one direction and
// destination service; per source and route (an edge) and per status the
// handles are resolved on first use and read without a lock after.
type ServiceMetrics struct {
	direction, service string
	// source is the calling service of every request, for outbound
	// handles (this sidecar's own service); "" for inbound, where each
	// request names its own.
	source   string
	m        *Metrics
	retries  prometheus.Counter
	inflight prometheus.Gauge
	edges    atomic.Pointer[map[edgeKey]*edgeMetrics] // copied on write
	mu       sync.Mutex                               // serialises writers of edges and tcp
	tcp      atomic.Pointer[map[string]*TCPMetrics]   // by source; copied on write (nil: none yet)
}

// edgeKey is what an edge's handles are keyed by.
type edgeKey struct{ source, route string }

// edgeMetrics are the handles of one source and route.
type edgeMetrics struct {
	s        *ServiceMetrics
	duration prometheus.Observer
	labels   [3]string                                      // source_service, destination_service, route
	codes    atomic.Pointer[map[codeKey]prometheus.Counter] // copied on write
	mu       sync.Mutex
}

// codeKey is a response's status labels.
type codeKey struct {
	code int
	grpc string
}

// MaxEdges bounds the source and route pairs one direction and service
// keeps series for; requests past it count under source "other".
const MaxEdges = 256

// UnknownSource labels requests whose caller is not known: clients
// outside the mesh, and callers naming no valid service name.
const UnknownSource = "unknown"

// Result labels one finished request.
type Result struct {
	// Status is the HTTP status answered.
	Status int
	// GRPC is the grpc-status of a gRPC answer ("": not gRPC); see
	// GRPCLabel.
	GRPC string
	// Source is the calling service an inbound request named
	// (SourceHeader; ignored outbound, where the caller is this
	// sidecar's service). It may be a view of a request's bytes: it is
	// copied when kept. What is no service name (a DNS label) counts as
	// UnknownSource.
	Source string
	// Route is the route resource whose rule matched ("": none).
	Route string
}

// TCPMetrics are the label handles of TCP forwarding for one direction
// and service. Its methods are nil-safe.
type TCPMetrics struct {
	conns, rx, tx, idle prometheus.Counter
	active              prometheus.Gauge
}

// TCP is the handles of TCP forwarding of connections that name no
// caller: outbound and egress, this sidecar's own; inbound, a caller
// not known (TCPFrom names it). Nil-safe.
func (s *ServiceMetrics) TCP() *TCPMetrics { return s.TCPFrom("") }

// TCPFrom is the handles of TCP forwarding of connections from source:
// inbound, the peer's service that its mutual TLS proved ("", or no
// service's name: UnknownSource); outbound and egress the caller is this
// sidecar's service, whatever source says. Resolved on first use and
// read without a lock after; past MaxEdges sources a connection counts
// under "other". Nil-safe.
func (s *ServiceMetrics) TCPFrom(source string) *TCPMetrics {
	if s == nil {
		return nil
	}
	switch {
	case s.source != "":
		source = s.source
	case !serviceName(source):
		source = UnknownSource
	}
	if p := s.tcp.Load(); p != nil {
		if t, ok := (*p)[source]; ok {
			return t
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var old map[string]*TCPMetrics
	if p := s.tcp.Load(); p != nil {
		old = *p
	}
	if t, ok := old[source]; ok {
		return t
	}
	if len(old) >= MaxEdges {
		source = "other"
		if t, ok := old[source]; ok {
			return t
		}
	}
	l, edge := []string{s.direction, s.service}, []string{s.direction, source, s.service}
	t := &TCPMetrics{
		conns: s.m.tcpConns.WithLabelValues(edge...), rx: s.m.tcpReceived.WithLabelValues(edge...),
		tx: s.m.tcpSent.WithLabelValues(edge...), idle: s.m.tcpIdle.WithLabelValues(l...),
		active: s.m.tcpActive.WithLabelValues(l...),
	}
	next := make(map[string]*TCPMetrics, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[strings.Clone(source)] = t
	s.tcp.Store(&next)
	return t
}

// Opened counts a forwarded connection, active until Closed.
func (t *TCPMetrics) Opened() {
	if t != nil {
		t.conns.Inc()
		t.active.Inc()
	}
}

// Closed ends a connection counted by Opened.
func (t *TCPMetrics) Closed() {
	if t != nil {
		t.active.Dec()
	}
}

// Received counts bytes from the connecting side.
func (t *TCPMetrics) Received(n int) {
	if t != nil {
		t.rx.Add(float64(n))
	}
}

// Sent counts bytes back to the connecting side.
func (t *TCPMetrics) Sent(n int) {
	if t != nil {
		t.tx.Add(float64(n))
	}
}

// IdleTimeout counts a connection closed for idling.
func (t *TCPMetrics) IdleTimeout() {
	if t != nil {
		t.idle.Inc()
	}
}

// serviceName reports whether s can be a service's name: a DNS label
// (registry.ValidName, without its regular expression).
func serviceName(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// Detected counts one protocol detection outcome (nil-safe).
func (m *Metrics) Detected(listener, protocol, how string) {
	if m != nil {
		m.detections.WithLabelValues(listener, protocol, how).Inc()
	}
}

// Refused counts a connection a listener closed at once (nil-safe).
func (m *Metrics) Refused(listener, reason string) {
	if m != nil {
		m.refused.WithLabelValues(listener, reason).Inc()
	}
}

// TunnelOpened counts one CONNECT tunnel (nil-safe).
func (m *Metrics) TunnelOpened() {
	if m != nil {
		m.tunnels.Inc()
	}
}

func (m *Metrics) service(name string) *ServiceMetrics { return m.ForService("outbound", name) }

// ForService is the label handles of one direction ("outbound",
// "inbound", "egress", "mirror") and destination service.
func (m *Metrics) ForService(direction, name string) *ServiceMetrics {
	s := &ServiceMetrics{
		direction: direction, service: name, m: m,
		retries:  m.retries.WithLabelValues(name),
		inflight: m.inflight.WithLabelValues(direction, name),
	}
	if direction != "inbound" {
		s.source = m.Source
		if s.source == "" {
			s.source = UnknownSource
		}
	}
	empty := map[edgeKey]*edgeMetrics{}
	s.edges.Store(&empty)
	return s
}

// Begin counts a request in flight; every Begin is matched by one Done.
// Both are nil-safe.
func (s *ServiceMetrics) Begin() {
	if s != nil {
		s.inflight.Inc()
	}
}

// Done records one finished request.
func (s *ServiceMetrics) Done(r Result, start time.Time) { s.DoneAt(r, start, time.Now()) }

// DoneAt is Done for a caller that has read the clock.
func (s *ServiceMetrics) DoneAt(r Result, start, now time.Time) {
	if s == nil {
		return
	}
	s.inflight.Dec()
	s.Answered(r, start, now)
}

// Answered records a request answered that was never counted in flight
// (Begin): the route stage's own answers, given before a plan begins.
func (s *ServiceMetrics) Answered(r Result, start, now time.Time) {
	if s == nil {
		return
	}
	e := s.edge(r.Source, r.Route)
	e.duration.Observe(now.Sub(start).Seconds())
	e.counter(r.Status, r.GRPC).Inc()
}

// edge is the handles of one source and route.
func (s *ServiceMetrics) edge(source, route string) *edgeMetrics {
	if s.source != "" {
		source = s.source
	}
	k := edgeKey{source, route}
	if e, ok := (*s.edges.Load())[k]; ok {
		return e
	}
	if !serviceName(k.source) { // (only names are kept: the lookup above finds no other)
		k.source = UnknownSource
		if e, ok := (*s.edges.Load())[k]; ok {
			return e
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := *s.edges.Load()
	if e, ok := old[k]; ok {
		return e
	}
	if len(old) >= MaxEdges {
		k.source = "other"
		if e, ok := old[k]; ok {
			return e
		}
	}
	k.source = strings.Clone(k.source) // (a view of the request's bytes)
	e := &edgeMetrics{s: s, labels: [3]string{k.source, s.service, route}}
	e.duration = s.m.duration.WithLabelValues(s.direction, k.source, s.service, route)
	codes := map[codeKey]prometheus.Counter{}
	e.codes.Store(&codes)
	next := make(map[edgeKey]*edgeMetrics, len(old)+1)
	for kk, v := range old {
		next[kk] = v
	}
	next[k] = e
	s.edges.Store(&next)
	return e
}

// counter is the requests counter of one status.
func (e *edgeMetrics) counter(status int, grpc string) prometheus.Counter {
	k := codeKey{status, grpc}
	if c, ok := (*e.codes.Load())[k]; ok {
		return c
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	old := *e.codes.Load()
	if c, ok := old[k]; ok {
		return c
	}
	c := e.s.m.requests.WithLabelValues(e.s.direction, e.labels[0], e.labels[1], strconv.Itoa(status), grpc, e.labels[2])
	next := make(map[codeKey]prometheus.Counter, len(old)+1)
	for kk, v := range old {
		next[kk] = v
	}
	next[k] = c
	e.codes.Store(&next)
	return c
}

// MeshError counts an error the mesh answered with (nil-safe).
func (s *ServiceMetrics) MeshError(reason string) {
	if s != nil && reason != "" { // no reason: an answer that is no error (a probe's)
		s.m.errors.WithLabelValues(s.direction, s.service, reason).Inc()
	}
}

// authzCounters are the handles of the service's authorization
// decisions (nil, nil when nothing is counted).
func (s *ServiceMetrics) authzCounters() (allow, deny prometheus.Counter) {
	if s == nil {
		return nil, nil
	}
	return s.m.authz.WithLabelValues(s.service, "allow"), s.m.authz.WithLabelValues(s.service, "deny")
}

func (s *ServiceMetrics) retried() {
	if s != nil {
		s.retries.Inc()
	}
}

// hedge counts a hedge's outcome: won, lost, failed or denied.
func (s *ServiceMetrics) hedge(outcome string) {
	if s != nil {
		s.m.hedges.WithLabelValues(s.service, outcome).Inc()
	}
}

func (s *ServiceMetrics) overflowed() {
	if s != nil {
		s.m.overflows.WithLabelValues(s.service).Inc()
	}
}

func (s *ServiceMetrics) budgetExhausted() {
	if s != nil {
		s.m.budgetDenied.WithLabelValues(s.service).Inc()
	}
}

// GRPCOf is the grpc-status label of a finished response: "" when it
// is not gRPC, else its grpc-status (from its trailers, or its headers
// for a trailers-only answer) as GRPCLabel gives it.
func GRPCOf(resp *http.Response) string {
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/grpc") {
		return ""
	}
	code := resp.Trailer.Get("Grpc-Status")
	if code == "" {
		code = resp.Header.Get("Grpc-Status")
	}
	return GRPCLabel(code)
}

// grpcLabels are the labels of the grpc-status codes gRPC defines.
var grpcLabels = func() (l [17]string) {
	for i := range l {
		l[i] = strconv.Itoa(i)
	}
	return l
}()

// GRPCLabel is the label of a gRPC answer's grpc-status: the code gRPC
// defines (0 to 16), "missing" when there is none, "invalid" for
// anything else (so that an app cannot grow the series without bound).
func GRPCLabel[T ~string | ~[]byte](code T) string {
	switch {
	case len(code) == 0:
		return "missing"
	case len(code) == 1 && code[0] >= '0' && code[0] <= '9':
		return grpcLabels[code[0]-'0']
	case len(code) == 2 && code[0] == '1' && code[1] >= '0' && code[1] <= '6':
		return grpcLabels[10+code[1]-'0']
	}
	return "invalid"
}
