package proxy

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
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	errors   *prometheus.CounterVec
	retries  *prometheus.CounterVec
	inflight *prometheus.GaugeVec
	grpc     *prometheus.CounterVec
	tunnels  prometheus.Counter

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
			Help: "Requests sent again to another instance after a connect failure.",
		}, []string{"service"}),
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
	reg.MustRegister(m.requests, m.duration, m.errors, m.retries, m.inflight, m.grpc, m.tunnels,
		m.tcpConns, m.tcpActive, m.tcpReceived, m.tcpSent, m.tcpIdle, m.detections)
	return m
}

// serviceMetrics caches the label handles of one direction and service.
type serviceMetrics struct {
	direction, service string
	m                  *Metrics
	duration           prometheus.Observer
	retries            prometheus.Counter
	inflight           prometheus.Gauge
	codes              sync.Map // int -> prometheus.Counter
	grpcCodes          sync.Map // string -> prometheus.Counter
	tcp                atomic.Pointer[tcpMetrics]
}

// tcpMetrics are the label handles of TCP forwarding for one direction
// and service. Its methods are nil-safe.
type tcpMetrics struct {
	conns, rx, tx, idle prometheus.Counter
	active              prometheus.Gauge
}

// tcpMetrics resolves the TCP handles on first use.
func (s *serviceMetrics) tcpMetrics() *tcpMetrics {
	if s == nil {
		return nil
	}
	if t := s.tcp.Load(); t != nil {
		return t
	}
	l := []string{s.direction, s.service}
	t := &tcpMetrics{
		conns: s.m.tcpConns.WithLabelValues(l...), rx: s.m.tcpReceived.WithLabelValues(l...),
		tx: s.m.tcpSent.WithLabelValues(l...), idle: s.m.tcpIdle.WithLabelValues(l...),
		active: s.m.tcpActive.WithLabelValues(l...),
	}
	s.tcp.CompareAndSwap(nil, t)
	return s.tcp.Load()
}

func (t *tcpMetrics) opened() {
	if t != nil {
		t.conns.Inc()
		t.active.Inc()
	}
}

func (t *tcpMetrics) closed() {
	if t != nil {
		t.active.Dec()
	}
}

func (t *tcpMetrics) received(n int) {
	if t != nil {
		t.rx.Add(float64(n))
	}
}

func (t *tcpMetrics) sent(n int) {
	if t != nil {
		t.tx.Add(float64(n))
	}
}

func (t *tcpMetrics) idleTimeout() {
	if t != nil {
		t.idle.Inc()
	}
}

// detected counts one protocol detection outcome (nil-safe).
func (m *Metrics) detected(listener, protocol, how string) {
	if m != nil {
		m.detections.WithLabelValues(listener, protocol, how).Inc()
	}
}

func (m *Metrics) service(name string) *serviceMetrics { return m.forService("outbound", name) }

func (m *Metrics) forService(direction, name string) *serviceMetrics {
	return &serviceMetrics{
		direction: direction, service: name, m: m,
		duration: m.duration.WithLabelValues(direction, name),
		retries:  m.retries.WithLabelValues(name),
		inflight: m.inflight.WithLabelValues(direction, name),
	}
}

// begin counts a request in flight; every begin is matched by one done.
// Both are nil-safe.
func (s *serviceMetrics) begin() {
	if s != nil {
		s.inflight.Inc()
	}
}

// done records one finished request.
func (s *serviceMetrics) done(code int, start time.Time) { s.doneAt(code, start, time.Now()) }

// doneAt is done for a caller that has read the clock.
func (s *serviceMetrics) doneAt(code int, start, now time.Time) {
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

func (s *serviceMetrics) meshError(reason string) {
	if s != nil {
		s.m.errors.WithLabelValues(s.direction, s.service, reason).Inc()
	}
}

func (s *serviceMetrics) retried() {
	if s != nil {
		s.retries.Inc()
	}
}

// grpcDone records the gRPC status of a finished gRPC response (from its
// trailers, or its headers for a trailers-only answer); other responses
// are ignored.
func (s *serviceMetrics) grpcDone(resp *http.Response) {
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
	s.grpcStatus(code)
}

// grpcStatus counts one gRPC response with the given grpc-status,
// including those the mesh makes itself (nil-safe).
func (s *serviceMetrics) grpcStatus(code string) {
	if s == nil {
		return
	}
	c, ok := s.grpcCodes.Load(code)
	if !ok {
		c, _ = s.grpcCodes.LoadOrStore(code, s.m.grpc.WithLabelValues(s.direction, s.service, code))
	}
	c.(prometheus.Counter).Inc()
}
