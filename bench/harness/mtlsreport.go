package main

import (
	"fmt"
	"strings"
)

// The targets for the Weft pair with mutual TLS, all from the
// same run.
const (
	minMTLSvsPlain = 0.85 // weft-mtls throughput ÷ weft throughput, at least
	minMTLSvsTLS   = 1.0  // weft-mtls throughput ÷ nginx-tls throughput, at least
)

// targetRow is one line of the mutual TLS table: what was measured, the
// target and whether it was met ("yes", "no" or "–" when a path is missing).
type targetRow struct {
	What, Measured, Target, Met string
}

// mtlsTargets evaluates the targets on the summaries of one run.
// Rows about haproxy-tls hold Weft to the same bar as nginx-tls, for
// reference (the issue names nginx only).
func mtlsTargets(c *config, byName map[string]*summary) []targetRow {
	ok := func(s *summary) bool { return s != nil && s.bp.Skip == "" }
	m := byName["weft-mtls"]
	direct := byName["direct"]
	var rows []targetRow
	missing := func(names ...string) string {
		var out []string
		for _, n := range names {
			if !ok(byName[n]) {
				out = append(out, n)
			}
		}
		return strings.Join(out, ", ")
	}
	tput := func(other string, bar float64, note string) {
		o := byName[other]
		for _, n := range c.conns {
			r := targetRow{What: fmt.Sprintf("throughput @%d conns: weft-mtls / %s%s", n, other, note), Target: fmt.Sprintf("≥ %.2f", bar)}
			switch {
			case !ok(m) || !ok(o):
				r.Measured, r.Met = "not measured ("+missing("weft-mtls", other)+")", "–"
			case m.rps[n] <= 0 || o.rps[n] <= 0:
				r.Measured, r.Met = "no throughput runs", "–"
			default:
				x := m.rps[n] / o.rps[n]
				r.Measured = fmt.Sprintf("%.2f (%.0f / %.0f req/s)", x, m.rps[n], o.rps[n])
				r.Met = yesNo(x >= bar)
			}
			rows = append(rows, r)
		}
	}
	p99 := func(other, note string) {
		o := byName[other]
		for _, pooled := range []bool{false, true} {
			what := fmt.Sprintf("added p99 @%.0f req/s: weft-mtls vs %s%s", c.rate, other, note)
			if pooled {
				what = fmt.Sprintf("added p99 @%.0f req/s, all runs pooled: weft-mtls vs %s%s", c.rate, other, note)
			}
			r := targetRow{What: what, Target: "weft-mtls ≤ " + other}
			switch {
			case !ok(m) || !ok(o) || !ok(direct):
				r.Measured, r.Met = "not measured ("+missing("direct", "weft-mtls", other)+")", "–"
			case !m.lat || !o.lat || !direct.lat:
				r.Measured, r.Met = "no fixed-rate runs", "–"
			default:
				a, b := m.p99-direct.p99, o.p99-direct.p99
				if pooled {
					a, b = m.pp99-direct.pp99, o.pp99-direct.pp99
				}
				r.Measured = fmt.Sprintf("%s vs %s µs", signed(a), signed(b))
				r.Met = yesNo(a <= b)
			}
			rows = append(rows, r)
		}
	}
	tput("weft", minMTLSvsPlain, "")
	tput("nginx-tls", minMTLSvsTLS, "")
	p99("nginx-tls", "")
	tput("haproxy-tls", minMTLSvsTLS, " (reference)")
	p99("haproxy-tls", " (reference)")
	return rows
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "**no**"
}

// mtlsSection is the report's section on the mutual TLS paths: the
// targets, the round-by-round p99 count and what TLS costs each pair.
func mtlsSection(c *config, byName map[string]*summary) string {
	has := func(n string) bool { s := byName[n]; return s != nil }
	if !has("weft-mtls") && !has("nginx-tls") && !has("haproxy-tls") {
		return ""
	}
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("## Mutual TLS: targets (same run)\n\n")
	w("weft-mtls: both sidecars hold a workload certificate (join tokens), the consumer speaks mutual TLS 1.3 to the provider, whose inbound is `--mtls strict`; measured only after the provider's `weft_protocol_detections_total{listener=\"inbound+mtls\"}` counted the consumer's connection. nginx-tls and haproxy-tls: the same pairs with mutual TLS 1.3 between their hops (ECDSA P-256 certificates made for the run, the back verifying the front's client certificate, the front verifying the back's by name), upstream keep-alive and TLS session reuse. \"Added\" = path − direct (medians of the runs, or of all runs pooled).\n\n")
	w("| target | measured | bar | met |\n|---|---|---|---|\n")
	for _, r := range mtlsTargets(c, byName) {
		w("| %s | %s | %s | %s |\n", r.What, r.Measured, r.Target, r.Met)
	}
	w("\n")
	ok := func(s *summary) bool { return s != nil && s.bp.Skip == "" && s.lat }
	m, direct := byName["weft-mtls"], byName["direct"]
	if ok(m) && ok(direct) {
		for _, other := range []string{"nginx-tls", "haproxy-tls"} {
			if o := byName[other]; ok(o) {
				k, n, d := pairedP99(m, o, direct)
				w("Round by round: weft-mtls's added p99 was at most %s's in %d of %d rounds; median difference %s µs.\n\n", other, k, n, signed(d))
			}
		}
	}
	// What TLS costs each pair: the TLS path next to its plain twin.
	var lines []string
	hi := c.conns[len(c.conns)-1]
	for _, pair := range [][2]string{{"weft-mtls", "weft"}, {"nginx-tls", "nginx"}, {"haproxy-tls", "haproxy"}} {
		t, p := byName[pair[0]], byName[pair[1]]
		if t == nil || p == nil || t.bp.Skip != "" || p.bp.Skip != "" || t.rps[hi] <= 0 || p.rps[hi] <= 0 {
			continue
		}
		lines = append(lines, fmt.Sprintf("| %s vs %s | %s | %.1f vs %.1f | %s |", pair[0], pair[1], ratio(t.rps[hi], p.rps[hi]),
			sum(t.hopCPU[hi]), sum(p.hopCPU[hi]), ratio(sum(t.hopCPU[hi]), sum(p.hopCPU[hi]))))
	}
	if len(lines) > 0 {
		w("What TLS between the hops costs each pair, @%d conns:\n\n| pair | throughput ratio | pair CPU µs/req | CPU ratio |\n|---|---:|---:|---:|\n%s\n\n", hi, strings.Join(lines, "\n"))
	}
	return b.String()
}
