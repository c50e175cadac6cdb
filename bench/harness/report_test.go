package main

import (
	"testing"

	"github.com/weftmesh/weft/bench/benchkit"
)

func TestPercentile(t *testing.T) {
	v := make([]float64, 1000)
	for i := range v {
		v[i] = float64(i + 1)
	}
	for _, tc := range []struct{ p, want float64 }{{50, 500}, {90, 900}, {99, 990}, {99.9, 999}, {100, 1000}, {0, 1}} {
		if got := benchkit.Percentile(v, tc.p); got != tc.want {
			t.Errorf("Percentile(1..1000, %v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := benchkit.Percentile([]float64(nil), 99); got != 0 {
		t.Errorf("Percentile(nil) = %v, want 0", got)
	}
}

func TestPairedP99(t *testing.T) {
	direct := &summary{roundP99: map[int]float64{0: 400, 1: 300, 2: 500, 3: 350}}
	weft := &summary{roundP99: map[int]float64{0: 700, 1: 900, 2: 800, 3: 600}}
	// Round 3 has no nginx run (it failed): it is left out.
	ngx := &summary{roundP99: map[int]float64{0: 800, 1: 600, 2: 900}}
	atMost, rounds, diff := pairedP99(weft, ngx, direct)
	if atMost != 2 || rounds != 3 {
		t.Errorf("weft at most nginx in %d of %d rounds, want 2 of 3", atMost, rounds)
	}
	// Differences: -100, +300, -100.
	if diff != -100 {
		t.Errorf("median difference %v, want -100", diff)
	}
}
