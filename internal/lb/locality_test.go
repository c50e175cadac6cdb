package lb

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/endpoint"
	"github.com/weftmesh/weft/internal/request"
)

// zoned is endpoints a0.. in zone a, then b0.. in zone b.
func zoned(inA, inB int) []*endpoint.Endpoint {
	var eps []*endpoint.Endpoint
	for i := range inA + inB {
		zone, n := "a", i
		if i >= inA {
			zone, n = "b", i-inA
		}
		eps = append(eps, endpoint.New("catalog", fmt.Sprint(zone, n), fmt.Sprintf("10.0.0.%d:80", i), map[string]string{"zone": zone}))
	}
	return eps
}

func TestLocality(t *testing.T) {
	tests := []struct {
		name     string
		zone     string
		inA, inB int
		eject    []int
		tried    []int
		inflight map[int]int
		overload float64
		want     []string
	}{
		{name: "stays in the zone", zone: "a", inA: 2, inB: 2, want: []string{"a0", "a1"}},
		{name: "no zone: everywhere", inA: 2, inB: 2, want: []string{"a0", "a1", "b0", "b1"}},
		{name: "a zone with no endpoint: everywhere", zone: "c", inA: 1, inB: 1, want: []string{"a0", "b0"}},
		{name: "half ready stays", zone: "a", inA: 2, inB: 2, eject: []int{0}, want: []string{"a1"}},
		{name: "all ejected spills", zone: "a", inA: 2, inB: 2, eject: []int{0, 1}, want: []string{"b0", "b1"}},
		{name: "under half ready spills, to every ready one", zone: "a", inA: 4, inB: 2, eject: []int{0, 1, 2},
			want: []string{"a3", "b0", "b1"}},
		{name: "all tried spills", zone: "a", inA: 1, inB: 2, tried: []int{0}, want: []string{"b0", "b1"}},
		// Below: a mean of 1.5 in flight; P2C in the zone takes the less busy.
		{name: "below the overload stays", zone: "a", inA: 2, inB: 1, inflight: map[int]int{0: 1, 1: 2}, overload: 2,
			want: []string{"a0"}},
		// At: P2C over all three; only the draw of a0 and a1 together stays.
		{name: "at the overload spills", zone: "a", inA: 2, inB: 1, inflight: map[int]int{0: 2, 1: 2}, overload: 2,
			want: []string{"a0", "a1", "b0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eps := zoned(tt.inA, tt.inB)
			prime(eps, 10*time.Millisecond)
			for _, i := range tt.eject {
				eps[i].ConnectFailed()
			}
			for i, n := range tt.inflight {
				for range n {
					eps[i].Begin()
				}
			}
			var tried []*endpoint.Endpoint
			for _, i := range tt.tried {
				tried = append(tried, eps[i])
			}
			l := NewLocality(tt.zone, NewP2C(1), NewP2C(2))
			l.Overload = tt.overload
			only(t, pick(l, eps, request.None, tried, 400), tt.want...)
		})
	}
}

func TestLocalityAllocatesNothing(t *testing.T) {
	eps := zoned(50, 50)
	l := NewLocality("a", NewP2C(1), NewP2C(2))
	l.Pick(eps, request.None, nil)
	if got := testing.AllocsPerRun(200, func() { l.Pick(eps, request.None, nil) }); got != 0 {
		t.Errorf("allocations per Pick: got %v, want 0", got)
	}
}

// A new set is split afresh.
func TestLocalityReadsANewSet(t *testing.T) {
	l := NewLocality("b", &RoundRobin{}, &RoundRobin{})
	pick(l, zoned(1, 1), request.None, nil, 10)
	only(t, pick(l, zoned(0, 3), request.None, nil, 30), "b0", "b1", "b2")
}

// Concurrent picks over two sets in turn (so the zone is found again
// and again) return members of the zone they were given. Run with -race.
func TestLocalityConcurrently(t *testing.T) {
	l := NewLocality("a", NewP2C(1), NewP2C(2))
	sets := [][]*endpoint.Endpoint{zoned(3, 3), zoned(2, 4)}
	var wg sync.WaitGroup
	bad := make(chan string, 4)
	for w := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				s := sets[(w+i/50)%2]
				e := l.Pick(s, request.None, nil)
				if !Contains(s, e) || e.Labels["zone"] != "a" {
					bad <- fmt.Sprintf("picked %v, want an endpoint of zone a in the set", e)
					return
				}
				a := e.Begin()
				a.Done(endpoint.Outcome{Class: endpoint.Success, Latency: time.Millisecond})
			}
		})
	}
	wg.Wait()
	close(bad)
	for b := range bad {
		t.Error(b)
	}
}
