package lb

import (
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/endpoint"
	"github.com/weftmesh/weft/internal/request"
)

// Every policy skips what RoundRobin skips, ranks ready before deferred
// before ejected, and returns nil only when every endpoint was tried.
func TestPoliciesRankEndpoints(t *testing.T) {
	tests := []struct {
		name   string
		eject  []int
		defers []int
		tried  []int
		want   []string // every pick one of these, each picked
	}{
		{name: "spreads over all", want: []string{"i0", "i1", "i2"}},
		{name: "skips ejected", eject: []int{1}, want: []string{"i0", "i2"}},
		{name: "skips tried", tried: []int{0}, want: []string{"i1", "i2"}},
		{name: "healthy untried beats ejected", eject: []int{1, 2}, want: []string{"i0"}},
		{name: "ejected only when all untried are ejected", eject: []int{1, 2}, tried: []int{0}, want: []string{"i1", "i2"}},
		{name: "all ejected still answers", eject: []int{0, 1, 2}, want: []string{"i0", "i1", "i2"}},
		{name: "skips deferred", defers: []int{1}, want: []string{"i0", "i2"}},
		{name: "ready beats deferred", defers: []int{1, 2}, want: []string{"i0"}},
		{name: "deferred when no ready one is left", defers: []int{1, 2}, tried: []int{0}, want: []string{"i1", "i2"}},
		{name: "deferred beats ejected", eject: []int{1}, defers: []int{2}, tried: []int{0}, want: []string{"i2"}},
		{name: "nil when all tried", tried: []int{0, 1, 2}, want: []string{"nil"}},
	}
	for _, p := range policies() {
		for _, tt := range tests {
			t.Run(p.name+"/"+tt.name, func(t *testing.T) {
				eps := set(3)
				prime(eps, 10*time.Millisecond)
				for _, i := range tt.eject {
					eps[i].ConnectFailed()
				}
				for _, i := range tt.defers {
					deferEp(eps[i])
				}
				var tried []*endpoint.Endpoint
				for _, i := range tt.tried {
					tried = append(tried, eps[i])
				}
				only(t, pick(p.b(), eps, p.view(), tried, 300), tt.want...)
			})
		}
		t.Run(p.name+"/no endpoints", func(t *testing.T) {
			if e := p.b().Pick(nil, p.view(), nil); e != nil {
				t.Errorf("Pick on no endpoints: got %s, want nil", e.Instance)
			}
		})
		t.Run(p.name+"/one endpoint", func(t *testing.T) {
			eps := set(1)
			if e := p.b().Pick(eps, p.view(), nil); e != eps[0] {
				t.Errorf("Pick on one endpoint: got %v, want i0", e)
			}
			if e := p.b().Pick(eps, p.view(), eps); e != nil {
				t.Errorf("Pick on one tried endpoint: got %s, want nil", e.Instance)
			}
		})
	}
}

// The zero value of each randomised policy works (on the process's
// source) and spreads.
func TestZeroValues(t *testing.T) {
	for _, b := range []Balancer{&P2C{}, &LeastRequest{}, &Random{}, &Weighted{}, &RingHash{Header: "x-key"}} {
		eps := set(3)
		prime(eps, 10*time.Millisecond)
		only(t, pick(b, eps, request.None, nil, 300), "i0", "i1", "i2")
	}
}

// Picks from many goroutines, with attempts begun and done on the same
// endpoints, return members of the set they were given; ring-hash and
// weighted switch between two sets (rebuilding their state) as they go.
// Run with -race.
func TestPicksConcurrently(t *testing.T) {
	for _, p := range policies() {
		t.Run(p.name, func(t *testing.T) {
			b := p.b()
			sets := [][]*endpoint.Endpoint{set(5), set(3)}
			var wg sync.WaitGroup
			errs := make(chan string, 8)
			for w := range 4 {
				wg.Go(func() {
					view := p.view()
					for i := range 2000 {
						s := sets[(w+i/100)%2]
						e := b.Pick(s, view, nil)
						if !Contains(s, e) {
							errs <- "picked an endpoint outside the set"
							return
						}
						a := e.Begin()
						a.Done(endpoint.Outcome{Class: endpoint.Success, Latency: time.Duration(1+i%7) * time.Millisecond})
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

// Pick allocates nothing, on 3 endpoints and on 100 (RingHash once its
// ring is built).
func TestPickAllocatesNothing(t *testing.T) {
	for _, p := range policies() {
		for _, n := range []int{3, 100} {
			eps := set(n)
			prime(eps, 10*time.Millisecond)
			eps[1].ConnectFailed() // the slow paths too
			b := p.b()
			view := request.View(withKey("x-key", "user-42"))
			if p.name == "ring-hash without the header" {
				view = request.None
			}
			tried := eps[:1]
			b.Pick(eps, view, tried) // builds the ring, or the weights
			if got := testing.AllocsPerRun(200, func() { b.Pick(eps, view, tried) }); got != 0 {
				t.Errorf("%s on %d endpoints: allocations per Pick: got %v, want 0", p.name, n, got)
			}
		}
	}
}
