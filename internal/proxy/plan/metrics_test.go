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
