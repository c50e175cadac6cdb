package lb

import (
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/endpoint"
	"github.com/weftmesh/weft/internal/request"
)

// grouped is n endpoints in one outlier group with options o.
func grouped(t testing.TB, n int, o endpoint.OutlierOptions) []*endpoint.Endpoint {
	t.Helper()
	g, err := endpoint.NewGroup(o)
	if err != nil {
		t.Fatalf("NewGroup: %v", err)
	}
	eps := set(n)
	g.SetMembers(eps)
	prime(eps, 10*time.Millisecond)
	return eps
}

// outlier ejects e as an outlier: five 503s in a row.
func outlier(t testing.TB, e *endpoint.Endpoint) {
	t.Helper()
	for range 5 {
		a := e.Begin()
		a.Done(endpoint.Outcome{Class: endpoint.Success, Latency: time.Millisecond, Status: endpoint.HTTPStatus(503)})
	}
	if !e.OutlierEjected(time.Now().UnixNano()) {
		t.Fatalf("%s not ejected after five 503s", e.Instance)
	}
}

// withRoundRobin is policies() and RoundRobin.
func withRoundRobin() []struct {
	name string
	b    func() Balancer
	view func() request.View
} {
	return append(policies(), struct {
		name string
		b    func() Balancer
		view func() request.View
	}{"round-robin", func() Balancer { return &RoundRobin{} }, func() request.View { return request.None }})
}

// Every policy skips endpoints that are not eligible while enough are,
// and picks among all of them (but those in connect backoff) in panic
// mode.
func TestPanicMode(t *testing.T) {
	all := endpoint.DefaultOutlierOptions()
	all.MaxEjectionPercent = 100
	noPanic := all
	noPanic.PanicThreshold = 0
	tests := []struct {
		name      string
		opts      *endpoint.OutlierOptions // nil: no group
		outliers  []int
		probeDown []int
		notReady  []int
		backoff   []int
		tried     []int
		want      []string
	}{
		{name: "one outlier of four is skipped", opts: &all, outliers: []int{1}, want: []string{"i0", "i2", "i3"}},
		{name: "two of four: half eligible is no panic", opts: &all, outliers: []int{1, 2}, want: []string{"i0", "i3"}},
		{name: "three of four: panic picks all", opts: &all, outliers: []int{1, 2, 3}, want: []string{"i0", "i1", "i2", "i3"}},
		{name: "panic threshold 0: no panic", opts: &noPanic, outliers: []int{1, 2, 3}, want: []string{"i0"}},
		{name: "probe-down is skipped", probeDown: []int{3}, want: []string{"i0", "i1", "i2"}},
		{name: "probe-down panics without a group too", probeDown: []int{0, 1, 3}, want: []string{"i0", "i1", "i2", "i3"}},
		{name: "not ready is skipped", notReady: []int{0}, want: []string{"i1", "i2", "i3"}},
		{name: "connect backoff still ranks last in panic", backoff: []int{1, 2, 3}, want: []string{"i0"}},
		{name: "panic lifts outliers, not the backoff", opts: &all, outliers: []int{1, 2}, backoff: []int{3}, want: []string{"i0", "i1", "i2"}},
		{name: "unhealthy beats backoff when nothing eligible is left", opts: &noPanic, outliers: []int{1}, backoff: []int{2, 3}, tried: []int{0}, want: []string{"i1"}},
		{name: "panic keeps tried out", opts: &all, outliers: []int{1, 2, 3}, tried: []int{0, 1}, want: []string{"i2", "i3"}},
	}
	for _, p := range withRoundRobin() {
		for _, tt := range tests {
			t.Run(p.name+"/"+tt.name, func(t *testing.T) {
				var eps []*endpoint.Endpoint
				if tt.opts != nil {
					eps = grouped(t, 4, *tt.opts)
				} else {
					eps = set(4)
					prime(eps, 10*time.Millisecond)
				}
				for _, i := range tt.outliers {
					outlier(t, eps[i])
				}
				for _, i := range tt.probeDown {
					eps[i].SetProbeDown(true)
				}
				for _, i := range tt.notReady {
					eps[i].SetReady(false)
				}
				for _, i := range tt.backoff {
					eps[i].ConnectFailed()
				}
				var tried []*endpoint.Endpoint
				for _, i := range tt.tried {
					tried = append(tried, eps[i])
				}
				only(t, pick(p.b(), eps, p.view(), tried, 400), tt.want...)
			})
		}
	}
}

// In panic mode, Pick still allocates nothing.
func TestPanicPickAllocatesNothing(t *testing.T) {
	o := endpoint.DefaultOutlierOptions()
	o.MaxEjectionPercent = 100
	for _, p := range withRoundRobin() {
		eps := grouped(t, 8, o)
		for _, e := range eps[:6] {
			outlier(t, e)
		}
		b := p.b()
		view := request.View(withKey("x-key", "user-42"))
		if p.name == "ring-hash without the header" || p.name == "round-robin" {
			view = request.None
		}
		b.Pick(eps, view, nil)
		if got := testing.AllocsPerRun(200, func() { b.Pick(eps, view, nil) }); got != 0 {
			t.Errorf("%s in panic mode: allocations per Pick: got %v, want 0", p.name, got)
		}
	}
}

// BenchmarkPickPanic is one Pick with 6 of 8 endpoints ejected as
// outliers: every Pick takes the census path.
func BenchmarkPickPanic(b *testing.B) {
	o := endpoint.DefaultOutlierOptions()
	o.MaxEjectionPercent = 100
	for _, p := range []struct {
		name string
		b    Balancer
	}{{"p2c", NewP2C(1)}, {"round-robin", &RoundRobin{}}} {
		b.Run(p.name, func(b *testing.B) {
			eps := grouped(b, 8, o)
			for _, e := range eps[:6] {
				outlier(b, e)
			}
			b.ReportAllocs()
			for b.Loop() {
				p.b.Pick(eps, request.None, nil)
			}
		})
	}
}
