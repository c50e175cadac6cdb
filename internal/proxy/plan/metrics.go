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
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	errors       *prometheus.CounterVec
	retries      *prometheus.CounterVec
	budgetDenied *prometheus.CounterVec
	hedges       *prometheus.CounterVec
	overflows    *prometheus.CounterVec
	mirrors      *prometheus.CounterVec
	inflight     *prometheus.GaugeVec
	grpc         *prometheus.CounterVec
	tunnels      prometheus.Counter

	tcpConns, tcpReceived, tcpSent, tcpIdle *prometheus.CounterVec
	tcpActive                               *prometheus.GaugeVec
	detections                              *prometheus.CounterVec
}

// NewMetrics registers the data path metrics in reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_requests_total",
			Help: "Requests handled, by direction, destination service and response status.",
		}, []string{"direction", "service", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "weft_request_duration_seconds",
			Help:    "Time from request accepted to response headers written.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"direction", "service"}),
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
		grpc: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_grpc_responses_total",
			Help: "gRPC responses, by direction, destination service and grpc-status.",
		}, []string{"direction", "service", "grpc_status"}),
		tunnels: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_connect_tunnels_total",
			Help: "CONNECT tunnels opened, to mesh services and for egress.",
		}),
		tcpConns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_tcp_connections_total",
			Help: "TCP connections forwarded as bytes, by direction and destination service.",
		}, []string{"direction", "service"}),
		tcpActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weft_tcp_connections_active",
			Help: "TCP connections being forwarded now.",
		}, []string{"direction", "service"}),
		tcpReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_tcp_received_bytes_total",
			Help: "Bytes received from the connecting side of forwarded TCP connections.",
		}, []string{"direction", "service"}),
		tcpSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_tcp_sent_bytes_total",
			Help: "Bytes sent back to the connecting side of forwarded TCP connections.",
		}, []string{"direction", "service"}),
		tcpIdle: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_tcp_idle_timeouts_total",
			Help: "TCP connections closed because no byte moved for the idle timeout.",
		}, []string{"direction", "service"}),
		detections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_protocol_detections_total",
			Help: "Connections accepted, by listener, the protocol they were taken for (http1, h2, tls, tcp) and how: sniffed from the first bytes, timeout (nothing sent in time), or declared (detection skipped).",
		}, []string{"listener", "protocol", "how"}),
	}
	reg.MustRegister(m.requests, m.duration, m.errors, m.retries, m.budgetDenied, m.hedges, m.overflows, m.mirrors, m.inflight, m.grpc, m.tunnels,
		m.tcpConns, m.tcpActive, m.tcpReceived, m.tcpSent, m.tcpIdle, m.detections)
	return m
}

// ServiceMetrics caches the label handles of one direction and service.
type ServiceMetrics struct {
	direction, service string
	m                  *Metrics
	duration           prometheus.Observer
	retries            prometheus.Counter
	inflight           prometheus.Gauge
	codes              sync.Map // int -> prometheus.Counter
	grpcCodes          sync.Map // string -> prometheus.Counter
	tcp                atomic.Pointer[TCPMetrics]
}

// TCPMetrics are the label handles of TCP forwarding for one direction
// and service. Its methods are nil-safe.
type TCPMetrics struct {
	conns, rx, tx, idle prometheus.Counter
	active              prometheus.Gauge
}

// TCP is the handles of TCP forwarding, resolved on first use (nil-safe).
func (s *ServiceMetrics) TCP() *TCPMetrics {
	if s == nil {
		return nil
	}
	if t := s.tcp.Load(); t != nil {
		return t
	}
	l := []string{s.direction, s.service}
	t := &TCPMetrics{
		conns: s.m.tcpConns.WithLabelValues(l...), rx: s.m.tcpReceived.WithLabelValues(l...),
		tx: s.m.tcpSent.WithLabelValues(l...), idle: s.m.tcpIdle.WithLabelValues(l...),
		active: s.m.tcpActive.WithLabelValues(l...),
	}
	s.tcp.CompareAndSwap(nil, t)
	return s.tcp.Load()
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

// Detected counts one protocol detection outcome (nil-safe).
func (m *Metrics) Detected(listener, protocol, how string) {
	if m != nil {
		m.detections.WithLabelValues(listener, protocol, how).Inc()
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
// "inbound", "egress") and service.
func (m *Metrics) ForService(direction, name string) *ServiceMetrics {
	return &ServiceMetrics{
		direction: direction, service: name, m: m,
		duration: m.duration.WithLabelValues(direction, name),
		retries:  m.retries.WithLabelValues(name),
		inflight: m.inflight.WithLabelValues(direction, name),
	}
}

// Begin counts a request in flight; every Begin is matched by one Done.
// Both are nil-safe.
func (s *ServiceMetrics) Begin() {
	if s != nil {
		s.inflight.Inc()
	}
}

// Done records one finished request.
func (s *ServiceMetrics) Done(code int, start time.Time) { s.DoneAt(code, start, time.Now()) }

// DoneAt is Done for a caller that has read the clock.
func (s *ServiceMetrics) DoneAt(code int, start, now time.Time) {
	if s == nil {
		return
	}
	s.inflight.Dec()
	s.duration.Observe(now.Sub(start).Seconds())
	c, ok := s.codes.Load(code)
	if !ok {
		c, _ = s.codes.LoadOrStore(code, s.m.requests.WithLabelValues(s.direction, s.service, strconv.Itoa(code)))
	}
	c.(prometheus.Counter).Inc()
}

// MeshError counts an error the mesh answered with (nil-safe).
func (s *ServiceMetrics) MeshError(reason string) {
	if s != nil && reason != "" { // no reason: an answer that is no error (a probe's)
		s.m.errors.WithLabelValues(s.direction, s.service, reason).Inc()
	}
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

// GRPCDone records the gRPC status of a finished gRPC response (from its
// trailers, or its headers for a trailers-only answer); other responses
// are ignored.
func (s *ServiceMetrics) GRPCDone(resp *http.Response) {
	if s == nil || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/grpc") {
		return
	}
	code := resp.Trailer.Get("Grpc-Status")
	if code == "" {
		code = resp.Header.Get("Grpc-Status")
	}
	if code == "" {
		code = "missing"
	}
	s.GRPCStatus(code)
}

// GRPCStatus counts one gRPC response with the given grpc-status,
// including those the mesh makes itself (nil-safe).
func (s *ServiceMetrics) GRPCStatus(code string) {
	if s == nil {
		return
	}
	c, ok := s.grpcCodes.Load(code)
	if !ok {
		c, _ = s.grpcCodes.LoadOrStore(code, s.m.grpc.WithLabelValues(s.direction, s.service, code))
	}
	c.(prometheus.Counter).Inc()
}
