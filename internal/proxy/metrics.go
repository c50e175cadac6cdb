package proxy

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
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
			Help: "CONNECT tunnels opened for egress.",
		}),
	}
	reg.MustRegister(m.requests, m.duration, m.errors, m.retries, m.inflight, m.grpc, m.tunnels)
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
func (s *serviceMetrics) done(code int, start time.Time) {
	if s == nil {
		return
	}
	s.inflight.Dec()
	s.duration.Observe(time.Since(start).Seconds())
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
	c, ok := s.grpcCodes.Load(code)
	if !ok {
		c, _ = s.grpcCodes.LoadOrStore(code, s.m.grpc.WithLabelValues(s.direction, s.service, code))
	}
	c.(prometheus.Counter).Inc()
}
