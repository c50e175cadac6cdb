package plan

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Each request is counted once, under its source, destination, status,
// grpc-status and route; callers naming no service name count as unknown.
func TestMetricsLabels(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	m.Source = "web"
	out, in := m.ForService("outbound", "catalog"), m.ForService("inbound", "catalog")
	start := time.Now()
	for _, r := range []Result{{Status: 200}, {Status: 200, Source: "ignored"}, {Status: 503, Route: "HTTPRoute/catalog"}} {
		out.Begin()
		out.DoneAt(r, start, start.Add(3*time.Millisecond))
	}
	for _, r := range []Result{{Status: 200, Source: "web"}, {Status: 200, GRPC: GRPCLabel("14"), Source: "web"},
		{Status: 200, Source: "Not A Name"}, {Status: 200}, {Status: 404, Source: "web", Route: "HTTPRoute/catalog"}} {
		in.Answered(r, start, start.Add(time.Millisecond))
	}
	want := `
# HELP weft_requests_total Requests handled, by direction, calling and called service, HTTP status, grpc-status ("" when not gRPC) and the route that matched ("" for none).
# TYPE weft_requests_total counter
weft_requests_total{destination_service="catalog",direction="inbound",grpc_status="",response_code="200",route="",source_service="unknown"} 2
weft_requests_total{destination_service="catalog",direction="inbound",grpc_status="",response_code="200",route="",source_service="web"} 1
weft_requests_total{destination_service="catalog",direction="inbound",grpc_status="",response_code="404",route="HTTPRoute/catalog",source_service="web"} 1
weft_requests_total{destination_service="catalog",direction="inbound",grpc_status="14",response_code="200",route="",source_service="web"} 1
weft_requests_total{destination_service="catalog",direction="outbound",grpc_status="",response_code="200",route="",source_service="web"} 2
weft_requests_total{destination_service="catalog",direction="outbound",grpc_status="",response_code="503",route="HTTPRoute/catalog",source_service="web"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "weft_requests_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(m.duration); n != 5 {
		t.Errorf("duration series: got %d, want 5 (one per source and route)", n)
	}
	if got := testutil.ToFloat64(m.inflight.WithLabelValues("outbound", "catalog")); got != 0 {
		t.Errorf("in flight after every Done: got %v, want 0", got)
	}
}

// Callers cannot grow the series without bound: past MaxEdges sources,
// requests count under "other"; grpc-status labels are the codes gRPC
// defines.
func TestMetricsBounded(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	in := m.ForService("inbound", "catalog")
	now := time.Now()
	for i := range 2 * MaxEdges {
		in.Answered(Result{Status: 200, Source: fmt.Sprintf("svc-%d", i)}, now, now)
	}
	if n := testutil.CollectAndCount(m.requests); n != MaxEdges+1 {
		t.Errorf("series: got %d, want %d (the cap, and other)", n, MaxEdges+1)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("inbound", "other", "catalog", "200", "", "")); got != MaxEdges {
		t.Errorf(`source "other": got %v, want %d`, got, MaxEdges)
	}
	for code, want := range map[string]string{"0": "0", "9": "9", "16": "16", "": "missing", "17": "invalid", "-1": "invalid", "1x": "invalid", "007": "invalid"} {
		if got := GRPCLabel(code); got != want {
			t.Errorf("GRPCLabel(%q): got %q, want %q", code, got, want)
		}
	}
}

// Recording a request whose labels were seen before allocates nothing.
func TestMetricsDoneAllocates(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	in := m.ForService("inbound", "catalog")
	src := []byte("web")
	now := time.Now()
	r := Result{Status: 200, Source: StringOf(src), Route: "HTTPRoute/catalog"}
	in.Begin()
	in.DoneAt(r, now, now)
	if n := testing.AllocsPerRun(100, func() { in.Begin(); in.DoneAt(r, now, now) }); n != 0 {
		t.Errorf("DoneAt allocates %v times, want 0", n)
	}
	src[0] = 'x'                                                                                                                        // the label was copied, not kept as a view
	if got := testutil.ToFloat64(m.requests.WithLabelValues("inbound", "web", "catalog", "200", "", "HTTPRoute/catalog")); got != 102 { // (AllocsPerRun runs it once more first)
		t.Errorf("requests from web: got %v, want 102", got)
	}
}

func BenchmarkMetricsDone(b *testing.B) {
	m := NewMetrics(prometheus.NewRegistry())
	m.Source = "web"
	out := m.ForService("outbound", "catalog")
	now := time.Now()
	r := Result{Status: 200, Route: "HTTPRoute/catalog"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			out.Begin()
			out.DoneAt(r, now, now)
		}
	})
}

// A TCP connection counts under its source: inbound, the peer its
// mutual TLS proved, else unknown; outbound, this sidecar's service.
// Sources past MaxEdges count as "other".
func TestTCPMetricsBySource(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	m.Source = "web"
	in, out := m.ForService("inbound", "echo"), m.ForService("outbound", "echo")
	for _, src := range []string{"web", "web", "", "Not A Name"} {
		tm := in.TCPFrom(src)
		tm.Opened()
		tm.Received(10)
		tm.Sent(3)
		tm.Closed()
	}
	out.TCPFrom("ignored").Opened()
	out.TCP().Opened()
	in.TCP().Opened()
	want := `
# HELP weft_tcp_connections_total TCP connections forwarded as bytes, by direction, calling service (inbound: the peer its mutual TLS proved, else unknown) and destination service.
# TYPE weft_tcp_connections_total counter
weft_tcp_connections_total{destination_service="echo",direction="inbound",source_service="unknown"} 3
weft_tcp_connections_total{destination_service="echo",direction="inbound",source_service="web"} 2
weft_tcp_connections_total{destination_service="echo",direction="outbound",source_service="web"} 2
# HELP weft_tcp_received_bytes_total Bytes received from the connecting side of forwarded TCP connections.
# TYPE weft_tcp_received_bytes_total counter
weft_tcp_received_bytes_total{destination_service="echo",direction="inbound",source_service="unknown"} 20
weft_tcp_received_bytes_total{destination_service="echo",direction="inbound",source_service="web"} 20
weft_tcp_received_bytes_total{destination_service="echo",direction="outbound",source_service="web"} 0
# HELP weft_tcp_sent_bytes_total Bytes sent back to the connecting side of forwarded TCP connections.
# TYPE weft_tcp_sent_bytes_total counter
weft_tcp_sent_bytes_total{destination_service="echo",direction="inbound",source_service="unknown"} 6
weft_tcp_sent_bytes_total{destination_service="echo",direction="inbound",source_service="web"} 6
weft_tcp_sent_bytes_total{destination_service="echo",direction="outbound",source_service="web"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "weft_tcp_connections_total", "weft_tcp_received_bytes_total", "weft_tcp_sent_bytes_total"); err != nil {
		t.Error(err)
	}
	if got := testutil.ToFloat64(m.tcpActive.WithLabelValues("inbound", "echo")); got != 1 {
		t.Errorf("inbound active: got %v, want 1 (the one not closed)", got)
	}
	if in.TCPFrom("web") != in.TCPFrom("web") {
		t.Errorf("TCPFrom resolves its handles again on each call, want them kept")
	}
	if n := testing.AllocsPerRun(100, func() { in.TCPFrom("web") }); n != 0 {
		t.Errorf("TCPFrom of a known source: got %v allocations, want 0", n)
	}

	bounded := NewMetrics(prometheus.NewRegistry()).ForService("inbound", "echo")
	for i := range 2 * MaxEdges {
		bounded.TCPFrom(fmt.Sprintf("svc-%d", i)).Opened()
	}
	if n := testutil.CollectAndCount(bounded.m.tcpConns); n != MaxEdges+1 {
		t.Errorf("TCP connection series: got %d, want %d (then other)", n, MaxEdges+1)
	}
	if got := testutil.ToFloat64(bounded.m.tcpConns.WithLabelValues("inbound", "other", "echo")); got != MaxEdges {
		t.Errorf("other: got %v, want %d", got, MaxEdges)
	}
	var nilMetrics *ServiceMetrics
	nilMetrics.TCPFrom("web").Opened() // nil-safe
}
