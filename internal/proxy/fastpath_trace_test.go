package proxy

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/weftmesh/weft/internal/proxy/plan"
	"github.com/weftmesh/weft/internal/proxy/stdhttp"
)

// fastPairTraced is fastPairWith with both hops tracing at ratio (spans
// recorded in memory).
func fastPairTraced(tb testing.TB, app string, ratio float64) string {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tracetest.NewSpanRecorder()))
	tb.Cleanup(func() { tp.Shutdown(tb.Context()) })
	tr := plan.NewTracer(tp.Tracer("bench"), ratio)
	reg := prometheus.NewRegistry()
	m := plan.NewMetrics(reg)
	m.Source = "client"
	serve := func(cfg Config) string { return serveProxy(tb, cfg) }
	in := stdhttp.NewInbound("svc", "svc-1", app, stdhttp.NewTransport(), m)
	in.TraceWith(tr)
	inAddr := serve(Config{Resolve: in.Resolve, Metrics: m, Log: discard})
	table := plan.NewTable(m, plan.Policy{Source: "client"})
	table.SetTracer(tr)
	updateTable(table, map[string][]EndpointSpec{"svc": {{Instance: "svc-1", Address: inAddr}}})
	out := stdhttp.NewOutbound(table, stdhttp.NewTransport(), stdhttp.NewTransport(), m, discard)
	return serve(Config{Resolve: out.Resolve, Connect: true, Metrics: m, Log: discard})
}

// BenchmarkFastPathPairTraced is BenchmarkFastPathPair with tracing on
// at 1%, as the sidecars run by default: what the spans cost per request.
func BenchmarkFastPathPairTraced(b *testing.B) { benchPair(b, fastPairTraced(b, rawBackend(b), 0.01)) }
