package lb

import (
	"fmt"
	"slices"
	"testing"

	"github.com/weftmesh/weft/internal/endpoint"
	"github.com/weftmesh/weft/internal/request"
)

// set is n endpoints of one service, i0 to i(n-1).
func set(n int) []*endpoint.Endpoint {
	var eps []*endpoint.Endpoint
	for i := range n {
		eps = append(eps, endpoint.New("catalog", fmt.Sprint("i", i), fmt.Sprintf("10.0.0.%d:80", i), nil))
	}
	return eps
}

func TestRoundRobin(t *testing.T) {
	count := func(eps []*endpoint.Endpoint, picks int, tried []*endpoint.Endpoint) map[string]int {
		rr := &RoundRobin{}
		got := map[string]int{}
		for range picks {
			if e := rr.Pick(eps, request.None, tried); e != nil {
				got[e.Instance]++
			} else {
				got["nil"]++
			}
		}
		return got
	}
	tests := []struct {
		name    string
		eject   []int // endpoints ejected before picking
		tried   []int
		picks   int
		want    map[string]int
		wantAny []string // when set: every pick is one of these, each picked (instead of want)
	}{
		{name: "round robin is even", picks: 300, want: map[string]int{"i0": 100, "i1": 100, "i2": 100}},
		// The successor of a skipped endpoint takes its turns (i0:100 i2:200
		// here): Pick promises the next usable one, not an even spread.
		{name: "skips ejected", eject: []int{1}, picks: 300, wantAny: []string{"i0", "i2"}},
		{name: "skips tried", tried: []int{0}, picks: 300, wantAny: []string{"i1", "i2"}},
		{name: "healthy untried beats ejected", eject: []int{1, 2}, picks: 30, want: map[string]int{"i0": 30}},
		{name: "ejected only when all untried are ejected", eject: []int{1, 2}, tried: []int{0}, picks: 30, wantAny: []string{"i1", "i2"}},
		{name: "all ejected still answers", eject: []int{0, 1, 2}, picks: 30, wantAny: []string{"i0", "i1", "i2"}},
		{name: "nil when all tried", tried: []int{0, 1, 2}, picks: 5, want: map[string]int{"nil": 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eps := set(3)
			for _, i := range tt.eject {
				eps[i].ConnectFailed()
			}
			var tried []*endpoint.Endpoint
			for _, i := range tt.tried {
				tried = append(tried, eps[i])
			}
			got := count(eps, tt.picks, tried)
			if tt.wantAny != nil {
				for k := range got {
					if !slices.Contains(tt.wantAny, k) {
						t.Errorf("picks: got %v, want only %v", got, tt.wantAny)
					}
				}
				for _, k := range tt.wantAny {
					if got[k] == 0 {
						t.Errorf("picks: got %v, want each of %v at least once", got, tt.wantAny)
					}
				}
				return
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("picks: got %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("no endpoints", func(t *testing.T) {
		if e := (&RoundRobin{}).Pick(nil, request.None, nil); e != nil {
			t.Errorf("Pick on no endpoints: got %+v, want nil", e)
		}
	})
	t.Run("connected puts back in rotation", func(t *testing.T) {
		eps := set(3)
		eps[1].ConnectFailed()
		a := eps[1].Begin()
		a.Done(endpoint.Outcome{Class: endpoint.Success})
		if got := count(eps, 300, nil); got["i1"] != 100 {
			t.Errorf("picks after recovery: got %v, want 100 each", got)
		}
	})
}
