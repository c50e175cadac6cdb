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

func TestMTLSTargets(t *testing.T) {
	c := &config{conns: []int{32, 128}, rate: 1000}
	mk := func(name string, r32, r128, p99, pp99 float64) *summary {
		return &summary{bp: &bpath{Name: name}, rps: map[int]float64{32: r32, 128: r128}, lat: true, p99: p99, pp99: pp99}
	}
	byName := map[string]*summary{
		"direct":    mk("direct", 20000, 20000, 400, 500),
		"weft":      mk("weft", 10000, 9000, 1200, 1300),
		"weft-mtls": mk("weft-mtls", 9000, 7000, 1500, 1600),
		"nginx-tls": mk("nginx-tls", 8000, 8000, 1400, 1700),
	}
	rows := mtlsTargets(c, byName)
	want := []struct{ what, met string }{
		{"throughput @32 conns: weft-mtls / weft", "yes"},     // 0.90 ≥ 0.85
		{"throughput @128 conns: weft-mtls / weft", "**no**"}, // 0.78
		{"throughput @32 conns: weft-mtls / nginx-tls", "yes"},
		{"throughput @128 conns: weft-mtls / nginx-tls", "**no**"},
		{"added p99 @1000 req/s: weft-mtls vs nginx-tls", "**no**"},               // +1100 vs +1000
		{"added p99 @1000 req/s, all runs pooled: weft-mtls vs nginx-tls", "yes"}, // +1100 vs +1200
		{"throughput @32 conns: weft-mtls / haproxy-tls (reference)", "–"},
		{"throughput @128 conns: weft-mtls / haproxy-tls (reference)", "–"},
		{"added p99 @1000 req/s: weft-mtls vs haproxy-tls (reference)", "–"},
		{"added p99 @1000 req/s, all runs pooled: weft-mtls vs haproxy-tls (reference)", "–"},
	}
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d: %+v", len(rows), len(want), rows)
	}
	for i, w := range want {
		if rows[i].What != w.what || rows[i].Met != w.met {
			t.Errorf("row %d = %q met %q, want %q met %q (measured %s)", i, rows[i].What, rows[i].Met, w.what, w.met, rows[i].Measured)
		}
	}
	if rows[0].Measured != "0.90 (9000 / 10000 req/s)" {
		t.Errorf("row 0 measured %q", rows[0].Measured)
	}
	if rows[6].Measured != "not measured (haproxy-tls)" {
		t.Errorf("row 6 measured %q", rows[6].Measured)
	}
}

func TestWithDirect(t *testing.T) {
	if got, added := withDirect([]string{"weft", "weft-mtls"}); !added || got[0] != "direct" || len(got) != 3 {
		t.Errorf("withDirect(weft weft-mtls) = %v, %v; want direct first", got, added)
	}
	if got, added := withDirect([]string{"weft", "nginx"}); added || len(got) != 2 {
		t.Errorf("withDirect(weft nginx) = %v, %v; want unchanged", got, added)
	}
	if got, added := withDirect([]string{"nginx-tls", "direct"}); added || len(got) != 2 {
		t.Errorf("withDirect(nginx-tls direct) = %v, %v; want unchanged", got, added)
	}
}
