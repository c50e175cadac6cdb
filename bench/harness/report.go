package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/weftmesh/weft/bench/benchkit"
)

// summary holds the medians of one path.
type summary struct {
	bp        *bpath
	rps       map[int]float64
	wrkP99    map[int]float64
	errs      int64
	hopCPU    map[int][]float64 // conns -> per hop µs/req
	backCPU   map[int]float64
	lat       bool
	achieved  float64
	p50, p90  float64
	p99, max  float64
	latErrs   int
	hopCPULat []float64
	backLat   float64
	rssLat    []float64 // kB
	foreign   float64   // max over runs, %, server CPU
	foreignLG float64   // max over runs, %, load generator CPU
	steal     float64   // max over runs, %
	softirq   float64   // max over wrk runs, %
	tw        []float64 // new TIME_WAIT sockets per wrk run
	lagP99    float64
	// All fixed-rate runs' samples pooled: percentiles over every request.
	pool                         []float64 // sorted, µs
	pp50, pp90, pp99, pp999, pmx float64
	p99Lo, p99Hi                 float64         // range of the per-run p99s
	roundP99                     map[int]float64 // round -> that run's p99
}

func summarize(c *config, bp *bpath) *summary {
	s := &summary{bp: bp, rps: map[int]float64{}, wrkP99: map[int]float64{},
		hopCPU: map[int][]float64{}, backCPU: map[int]float64{}}
	for _, n := range c.conns {
		runs := bp.Tput[n]
		if len(runs) == 0 {
			continue
		}
		var rps, p99, back []float64
		hops := make([][]float64, len(bp.Hops))
		for _, r := range runs {
			rps = append(rps, r.RPS)
			p99 = append(p99, r.P99US)
			back = append(back, r.BackendCPUUS)
			s.errs += r.Errors
			for i := range hops {
				if i < len(r.HopCPUUS) {
					hops[i] = append(hops[i], r.HopCPUUS[i])
				}
			}
			s.foreign = max(s.foreign, r.ForeignPct)
			s.foreignLG = max(s.foreignLG, r.ForeignLGPct)
			s.steal = max(s.steal, r.StealPct)
			s.softirq = max(s.softirq, r.SoftirqPct)
			s.tw = append(s.tw, float64(r.NewTimeWait))
		}
		s.rps[n], s.wrkP99[n], s.backCPU[n] = median(rps), median(p99), median(back)
		for _, h := range hops {
			s.hopCPU[n] = append(s.hopCPU[n], median(h))
		}
	}
	if len(bp.Lat) > 0 {
		s.lat = true
		var a, p50, p90, p99, mx, back, lag []float64
		hops := make([][]float64, len(bp.Hops))
		rss := make([][]float64, len(bp.Hops))
		for _, r := range bp.Lat {
			lg := r.Loadgen
			a = append(a, lg.AchievedRPS)
			p50 = append(p50, lg.P50US)
			p90 = append(p90, lg.P90US)
			p99 = append(p99, lg.P99US)
			mx = append(mx, lg.MaxUS)
			lag = append(lag, lg.LagP99US)
			back = append(back, r.BackendCPUUS)
			s.latErrs += lg.Errors + lg.Non200 + lg.Dropped
			for i := range hops {
				if i < len(r.HopCPUUS) {
					hops[i] = append(hops[i], r.HopCPUUS[i])
				}
				if i < len(r.HopRSSKB) {
					rss[i] = append(rss[i], float64(r.HopRSSKB[i]))
				}
			}
			s.foreign = max(s.foreign, r.ForeignPct)
			s.foreignLG = max(s.foreignLG, r.ForeignLGPct)
		}
		s.achieved, s.p50, s.p90, s.p99, s.max = median(a), median(p50), median(p90), median(p99), median(mx)
		s.roundP99 = map[int]float64{}
		for _, r := range bp.Lat {
			s.pool = append(s.pool, r.Samples...)
			s.roundP99[r.Round] = r.Loadgen.P99US
		}
		sort.Float64s(s.pool)
		s.pp50, s.pp90, s.pp99, s.pp999 = benchkit.Percentile(s.pool, 50), benchkit.Percentile(s.pool, 90), benchkit.Percentile(s.pool, 99), benchkit.Percentile(s.pool, 99.9)
		s.pmx = benchkit.Percentile(s.pool, 100)
		s.p99Lo, s.p99Hi = slices.Min(p99), slices.Max(p99)
		s.backLat, s.lagP99 = median(back), median(lag)
		for i := range hops {
			s.hopCPULat = append(s.hopCPULat, median(hops[i]))
			s.rssLat = append(s.rssLat, median(rss[i]))
		}
	}
	return s
}

// pairedP99 compares the added p99 of paths a and b round by round (the
// runs of one round are adjacent in time, so they share the machine's
// conditions): how many rounds a added no more than b, out of how many, and
// the median difference a − b in µs.
func pairedP99(a, b, direct *summary) (atMost, rounds int, medDiff float64) {
	var diffs []float64
	for round, d := range direct.roundP99 {
		av, aok := a.roundP99[round]
		bv, bok := b.roundP99[round]
		if !aok || !bok {
			continue
		}
		diff := (av - d) - (bv - d)
		diffs = append(diffs, diff)
		if diff <= 0 {
			atMost++
		}
	}
	return atMost, len(diffs), median(diffs)
}

func sum(v []float64) float64 {
	var t float64
	for _, x := range v {
		t += x
	}
	return t
}

func mib(kb float64) string { return fmt.Sprintf("%.1f", kb/1024) }

func f0(v float64) string { return fmt.Sprintf("%.0f", v) }

func signed(v float64) string { return fmt.Sprintf("%+.0f", v) }

func ratio(a, b float64) string {
	if a <= 0 || b <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func writeResults(c *config, env envInfo, all []*bpath) error {
	if err := os.MkdirAll(c.resultsDir, 0o755); err != nil {
		return err
	}
	var sums []*summary
	byName := map[string]*summary{}
	for _, bp := range all {
		s := summarize(c, bp)
		sums = append(sums, s)
		byName[bp.Name] = s
	}
	direct := byName["direct"]
	hasDirect := direct != nil && direct.bp.Skip == ""
	lo, hi := c.conns[0], c.conns[len(c.conns)-1]

	var b bytes.Buffer
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("# Weft benchmark results\n\n")
	w("Run on %s; took %s.\n\n", env.Date, env.Elapsed)
	w("Command (from the repository root):\n\n```\n%s\n```\n\n", env.Command)
	w("Settings: %s. Medians of %d runs. Load generators pinned to CPU %s, backend and proxies to CPU %s.\n\n",
		env.Settings, c.runs, dash(env.LgCPU), dash(env.SrvCPU))
	w("| machine | |\n|---|---|\n")
	w("| nproc | %d |\n| CPU | %s |\n| kernel | %s |\n| Go | %s |\n| nginx | %s |\n| HAProxy | %s |\n| wrk | %s |\n| weft commit | %s |\n| weft sidecars run from | %s |\n| load average at start | %s |\n\n",
		env.NProc, env.CPUModel, env.Kernel, env.GoVersion, env.Nginx, env.HAProxy, env.Wrk, env.WeftCommit, env.WeftSidecar, env.LoadAvg)

	// Skipped paths first, so nobody misses them.
	for _, s := range sums {
		if s.bp.Skip != "" {
			w("> **%s skipped:** %s\n\n", s.bp.Name, oneLine(s.bp.Skip))
		}
	}

	w("## Maximum throughput (wrk)\n\n")
	w("| path | req/s @%d conns | req/s @%d conns | %% of direct @%d | %% of direct @%d | wrk p99 @%d (µs) | errors |\n|---|---:|---:|---:|---:|---:|---:|\n", lo, hi, lo, hi, hi)
	for _, s := range sums {
		if len(s.rps) == 0 {
			w("| %s | – | – | – | – | – | – |\n", s.bp.Name)
			continue
		}
		pl, ph := "–", "–"
		if hasDirect {
			pl = fmt.Sprintf("%.0f%%", 100*s.rps[lo]/direct.rps[lo])
			ph = fmt.Sprintf("%.0f%%", 100*s.rps[hi]/direct.rps[hi])
		}
		w("| %s | %s | %s | %s | %s | %s | %d |\n", s.bp.Name, f0(s.rps[lo]), f0(s.rps[hi]), pl, ph, f0(s.wrkP99[hi]), s.errs)
	}
	w("\n")

	w("## Latency at a fixed %.0f req/s (open loop, bench/loadgen), µs\n\n", c.rate)
	w("| path | achieved req/s | p50 | p90 | p99 | max | added p50 | added p90 | added p99 | added max | errors |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range sums {
		if !s.lat {
			w("| %s | – | – | – | – | – | – | – | – | – | – |\n", s.bp.Name)
			continue
		}
		a50, a90, a99, amx := "–", "–", "–", "–"
		if hasDirect && direct.lat && s.bp.Name != "direct" {
			a50, a90, a99, amx = signed(s.p50-direct.p50), signed(s.p90-direct.p90), signed(s.p99-direct.p99), signed(s.max-direct.max)
		}
		w("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d |\n", s.bp.Name, f0(s.achieved),
			f0(s.p50), f0(s.p90), f0(s.p99), f0(s.max), a50, a90, a99, amx, s.latErrs)
	}
	w("\n")

	w("All %s runs of every path pooled: percentiles over every measured request (the table above takes the median of each run's percentiles). The last column is the range of the runs' own p99s, which shows how much one run's p99 varies on this machine.\n\n", f0(float64(c.latRuns)))
	w("| path | requests | p50 | p90 | p99 | p99.9 | max | added p50 | added p90 | added p99 | added p99.9 | p99 of single runs |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range sums {
		if !s.lat {
			continue
		}
		a50, a90, a99, a999 := "–", "–", "–", "–"
		if hasDirect && direct.lat && s.bp.Name != "direct" {
			a50, a90, a99, a999 = signed(s.pp50-direct.pp50), signed(s.pp90-direct.pp90), signed(s.pp99-direct.pp99), signed(s.pp999-direct.pp999)
		}
		w("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s–%s |\n", s.bp.Name, len(s.pool),
			f0(s.pp50), f0(s.pp90), f0(s.pp99), f0(s.pp999), f0(s.pmx), a50, a90, a99, a999, f0(s.p99Lo), f0(s.p99Hi))
	}
	w("\n")

	w("## CPU per request and memory, per proxy process\n\n")
	w("CPU = utime+stime of the process (nginx: master+worker) during the run ÷ requests completed in it. RSS sums the process tree.\n\n")
	w("| path | hop | CPU µs/req @%d conns | @%d conns | @%.0f req/s | peak RSS (VmHWM) MiB | RSS @%.0f req/s MiB |\n|---|---|---:|---:|---:|---:|---:|\n", lo, hi, c.rate, c.rate)
	for _, s := range sums {
		if s.bp.Skip != "" || len(s.bp.Hops) == 0 {
			continue
		}
		for i, name := range s.bp.HopNames {
			w("| %s | %s | %s | %s | %s | %s | %s |\n", s.bp.Name, name, hopVal(s.hopCPU[lo], i), hopVal(s.hopCPU[hi], i),
				hopVal(s.hopCPULat, i), peak(s.bp.PeakRSS, i), rssVal(s.rssLat, i))
		}
		var pk float64
		for _, v := range s.bp.PeakRSS {
			pk += float64(v)
		}
		w("| %s | **pair total** | **%.1f** | **%.1f** | **%.1f** | **%s** | **%s** |\n", s.bp.Name,
			sum(s.hopCPU[lo]), sum(s.hopCPU[hi]), sum(s.hopCPULat), mib(pk), mib(sum(s.rssLat)))
	}
	w("\nThe backend's own CPU per request, for scale:")
	for _, s := range sums {
		if s.bp.Skip == "" && len(s.backCPU) > 0 {
			w(" %s %.1f µs @%d conns;", s.bp.Name, s.backCPU[hi], hi)
		}
	}
	w(" backend peak RSS %s MiB.\n\n", mib(float64(env.BackendHWMKB)))

	// Same-run comparison.
	weft, ngx, hap := byName["weft"], byName["nginx"], byName["haproxy"]
	ok := func(s *summary) bool { return s != nil && s.bp.Skip == "" }
	w("## Weft compared with nginx and HAProxy (same run)\n\n")
	if !ok(weft) {
		reason := "not in PATHS"
		if weft != nil {
			reason = oneLine(weft.bp.Skip)
		}
		w("No comparison: the weft path was not measured (%s).\n\n", reason)
	} else {
		w("Ratios > 1 mean weft has more of it (good for throughput, bad for CPU, latency and memory).\n\n")
		w("| metric | weft | nginx | haproxy | weft / nginx | weft / haproxy |\n|---|---:|---:|---:|---:|---:|\n")
		row := func(name string, get func(*summary) float64, format string) {
			v := func(s *summary) (string, float64) {
				if !ok(s) {
					return "–", 0
				}
				x := get(s)
				return fmt.Sprintf(format, x), x
			}
			ws, wv := v(weft)
			ns, nv := v(ngx)
			hs, hv := v(hap)
			w("| %s | %s | %s | %s | %s | %s |\n", name, ws, ns, hs, ratio(wv, nv), ratio(wv, hv))
		}
		for _, n := range c.conns {
			n := n
			row(fmt.Sprintf("throughput @%d conns (req/s)", n), func(s *summary) float64 { return s.rps[n] }, "%.0f")
		}
		hopRow := func(label string, i int) {
			for _, n := range c.conns {
				n := n
				row(fmt.Sprintf("%s CPU µs/req @%d conns", label, n), func(s *summary) float64 { return at(s.hopCPU[n], i) }, "%.1f")
			}
			row(fmt.Sprintf("%s CPU µs/req @%.0f req/s", label, c.rate), func(s *summary) float64 { return at(s.hopCPULat, i) }, "%.1f")
		}
		hopRow("front hop (consumer side)", 0)
		hopRow("back hop (provider side)", 1)
		for _, n := range c.conns {
			n := n
			row(fmt.Sprintf("pair CPU µs/req @%d conns", n), func(s *summary) float64 { return sum(s.hopCPU[n]) }, "%.1f")
		}
		if hasDirect && direct.lat {
			row(fmt.Sprintf("added p50 @%.0f req/s (µs)", c.rate), func(s *summary) float64 { return s.p50 - direct.p50 }, "%.0f")
			row(fmt.Sprintf("added p99 @%.0f req/s (µs)", c.rate), func(s *summary) float64 { return s.p99 - direct.p99 }, "%.0f")
			row(fmt.Sprintf("added p99 @%.0f req/s, all runs pooled (µs)", c.rate), func(s *summary) float64 { return s.pp99 - direct.pp99 }, "%.0f")
			row(fmt.Sprintf("added p99.9 @%.0f req/s, all runs pooled (µs)", c.rate), func(s *summary) float64 { return s.pp999 - direct.pp999 }, "%.0f")
		}
		row("peak RSS, pair (MiB)", func(s *summary) float64 {
			var t float64
			for _, v := range s.bp.PeakRSS {
				t += float64(v)
			}
			return t / 1024
		}, "%.1f")
		w("\n")
		if hasDirect && direct.lat && weft.lat {
			for _, other := range []*summary{ngx, hap} {
				if !ok(other) || !other.lat {
					continue
				}
				k, n, d := pairedP99(weft, other, direct)
				w("Round by round (runs of one round are adjacent in time): weft's added p99 was at most %s's in %d of %d rounds; median difference %s µs.\n\n",
					other.bp.Name, k, n, signed(d))
			}
		}
	}

	b.WriteString(mtlsSection(c, byName))

	w("## Run conditions\n\n")
	w("| path | other processes on CPU %s (load), max %% | other processes on CPU %s (servers), max %% | irq+softirq on CPU %s, max %% | steal, max %% | new TIME_WAIT sockets per wrk run (median) |\n|---|---:|---:|---:|---:|---:|\n", dash(env.LgCPU), dash(env.SrvCPU), dash(env.SrvCPU))
	var maxLag float64
	for _, s := range sums {
		maxLag = max(maxLag, s.lagP99)
		if s.bp.Skip != "" {
			continue
		}
		w("| %s | %.1f | %.1f | %.1f | %.1f | %.0f |\n", s.bp.Name, s.foreignLG, s.foreign, s.softirq, s.steal, median(s.tw))
	}
	w("\n")
	w("## Notes\n\n")
	w("- \"Other processes\" is CPU time on a benchmark CPU used by nothing this harness started (builds, tests, editors). Each run waits for both CPUs to be quiet first (up to %s), and a run disturbed by more than %.0f%% is repeated up to %d times and the least disturbed kept (%d repeats this time); above a few %% the numbers are disturbed. Interrupt/softirq time (mostly loopback TCP processing) is not in any process's utime+stime, so per-request CPU slightly understates the kernel's share, equally for every proxy.\n", c.quietWait, c.foreignMax, c.retries, env.Retries)
	w("- New TIME_WAIT sockets: up to a few times the connection count comes from wrk closing its connections at the end of a run (and proxies dropping upstream connections that had a request in flight); a count in the thousands means a hop opens a connection per request.\n")
	w("- Fixed-rate generator: p99 dispatch lateness %.0f µs (not charged to the paths; see bench/README.md).\n", maxLag)
	if len(env.Idle) > 0 {
		var parts []string
		for _, x := range env.Idle {
			parts = append(parts, fmt.Sprintf("%s %.1f%%", x.Name, x.Pct))
		}
		w("- Idle CPU use (no load, 5 s, %% of one CPU): %s.\n", strings.Join(parts, ", "))
	}
	if env.ControlCPUs > 0 {
		w("- The weft control plane runs on CPU %s (it is not on the request path); it used %.1f s of CPU over the whole run.\n", dash(env.LgCPU), env.ControlCPUs)
	}
	w("- Every process on the server CPU has that one CPU only: nginx and HAProxy run one worker/thread, Go processes get GOMAXPROCS=1. Backend and both proxies of a path share it, so max throughput ≈ 1 s ÷ (CPU per request of backend + both hops).\n")
	w("- Raw per-run numbers: %s.\n", "the .json file next to this one")

	stamp := time.Now().Format("20060102-150405")
	md := b.Bytes()
	// The pooled percentiles, since the samples themselves are not kept.
	pooled := map[string]any{}
	for _, s := range sums {
		if s.lat {
			pooled[s.bp.Name] = map[string]any{"requests": len(s.pool), "p50_us": s.pp50, "p90_us": s.pp90,
				"p99_us": s.pp99, "p999_us": s.pp999, "max_us": s.pmx}
		}
	}
	js, _ := json.MarshalIndent(map[string]any{"env": env, "paths": all, "latency_pooled": pooled}, "", "  ")
	files := map[string][]byte{"latest.md": md, "latest.json": js,
		"run-" + stamp + ".md": md, "run-" + stamp + ".json": js}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(c.resultsDir, name), data, 0o644); err != nil {
			return err
		}
	}
	logf("wrote %s", filepath.Join(c.resultsDir, "latest.md"))
	if err := chart(c, env, sums, hasDirect, filepath.Join(c.resultsDir, "latest.png")); err != nil {
		logf("warning: no chart: %v", err)
	} else {
		png, _ := os.ReadFile(filepath.Join(c.resultsDir, "latest.png"))
		_ = os.WriteFile(filepath.Join(c.resultsDir, "run-"+stamp+".png"), png, 0o644)
		logf("wrote %s", filepath.Join(c.resultsDir, "latest.png"))
	}
	fmt.Fprintf(os.Stderr, "\n%s\n", md)
	return nil
}

func at(v []float64, i int) float64 {
	if i < len(v) {
		return v[i]
	}
	return 0
}

func hopVal(v []float64, i int) string {
	if i < len(v) {
		return fmt.Sprintf("%.1f", v[i])
	}
	return "–"
}

func peak(v []int64, i int) string {
	if i < len(v) {
		return mib(float64(v[i]))
	}
	return "–"
}

func rssVal(v []float64, i int) string {
	if i < len(v) {
		return mib(v[i])
	}
	return "–"
}

func dash(s string) string {
	if s == "" {
		return "(not pinned)"
	}
	return s
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ⏎ ")
	if len(s) > 600 {
		s = s[:600] + "…"
	}
	return s
}

// chart draws throughput and added latency per path with gnuplot.
func chart(c *config, env envInfo, sums []*summary, hasDirect bool, out string) error {
	if _, err := exec.LookPath("gnuplot"); err != nil {
		return err
	}
	lo, hi := c.conns[0], c.conns[len(c.conns)-1]
	var t, l bytes.Buffer
	var direct *summary
	for _, s := range sums {
		if s.bp.Name == "direct" {
			direct = s
		}
	}
	nl := 0
	for _, s := range sums {
		if s.bp.Skip != "" {
			continue
		}
		fmt.Fprintf(&t, "%s %.0f %.0f\n", s.bp.Name, s.rps[lo], s.rps[hi])
		if s.bp.Name != "direct" && hasDirect && s.lat && direct.lat {
			fmt.Fprintf(&l, "%s %.0f %.0f\n", s.bp.Name, s.p50-direct.p50, s.p99-direct.p99)
			nl++
		}
	}
	tdat := filepath.Join(c.workDir, "tput.dat")
	ldat := filepath.Join(c.workDir, "lat.dat")
	if err := os.WriteFile(tdat, t.Bytes(), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(ldat, l.Bytes(), 0o644); err != nil {
		return err
	}
	title := fmt.Sprintf("Weft bench %s (weft %s) — %d CPUs (%s), 1 CPU for backend+proxies, medians of %d runs",
		env.Date, env.WeftCommit, env.NProc, env.CPUModel, c.runs)
	var g bytes.Buffer
	fmt.Fprintf(&g, `set terminal pngcairo size 1500,650 font "DejaVu Sans,11"
set output %q
set multiplot layout 1,2 title %q font ",12"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set key top right
set xtics nomirror
set yrange [0:*]
set offsets 0,0,graph 0.1,0
set title "Max throughput (wrk), req/s — higher is better"
set ylabel "requests per second"
plot %q using 2:xtic(1) title "%d connections" lc rgb "#4c72b0", \
     "" using 3 title "%d connections" lc rgb "#55a868", \
     "" using ($0-1.0/6):2:(sprintf("%%.0f",$2)) with labels offset 0,0.8 font ",9" notitle, \
     "" using ($0+1.0/6):3:(sprintf("%%.0f",$3)) with labels offset 0,0.8 font ",9" notitle
`, out, title, tdat, lo, hi)
	if nl > 0 {
		fmt.Fprintf(&g, `set title "Latency added over direct at %.0f req/s, µs — lower is better"
set ylabel "µs added (path minus direct)"
set yrange [*:*]
set xzeroaxis lt -1
plot %q using 2:xtic(1) title "added p50" lc rgb "#8172b2", \
     "" using 3 title "added p99" lc rgb "#c44e52", \
     "" using ($0-1.0/6):2:(sprintf("%%.0f",$2)) with labels offset 0,0.8 font ",9" notitle, \
     "" using ($0+1.0/6):3:(sprintf("%%.0f",$3)) with labels offset 0,0.8 font ",9" notitle
`, c.rate, ldat)
	} else {
		fmt.Fprintf(&g, "set title \"no latency comparison (direct or proxy paths missing)\"\nunset key\nplot [0:1][0:1] 0 notitle\n")
	}
	fmt.Fprintf(&g, "unset multiplot\n")
	gp := filepath.Join(c.workDir, "chart.gp")
	if err := os.WriteFile(gp, g.Bytes(), 0o644); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if o, err := runCmd(ctx, "gnuplot", gp); err != nil {
		return fmt.Errorf("gnuplot: %v: %s", err, o)
	}
	return nil
}
