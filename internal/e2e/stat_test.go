package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/collect"
	"github.com/weftmesh/weft/internal/meshtest"
)

// TestStat: two callers (web, batch) send api requests the app answers
// 200 or 500; the sidecars report every 200ms, and weft stat shows, for
// the service, its instance and each edge, exactly what the sidecars'
// /metrics show for the same series: requests, failures and every
// histogram bucket, and exactly what was sent on top of what was there;
// a sidecar that stops sends its last figures.
func TestStat(t *testing.T) {
	t.Parallel()
	m := meshtest.New(t)
	cp := m.Control()
	app := m.App("api-1")
	fast := "--report-interval=200ms"
	api := m.Sidecar(cp, "--service", "api", "--id", "api-1", "--app-port", app.Port, fast)
	web := m.Sidecar(cp, "--service", "web", fast)
	batch := m.Sidecar(cp, "--service", "batch", fast)
	waitInstances(t, web, "api", 1)
	waitInstances(t, batch, "api", 1)

	// What the mesh counted so far (the requests above), once the
	// collection center agrees with every sidecar.
	seen := func() statFigures {
		t.Helper()
		var last statFigures
		m.Eventually(20*time.Second, func() (bool, string) {
			last = statFigures{
				metrics: map[string]figures{
					"api":          scrape(api, "inbound", "", "api"),
					"api-1":        scrape(api, "inbound", "", "api"),
					"web -> api":   scrape(web, "outbound", "web", "api"),
					"batch -> api": scrape(batch, "outbound", "batch", "api"),
					"api <- web":   scrape(api, "inbound", "web", "api"),
					"api <- batch": scrape(api, "inbound", "batch", "api"),
				},
				stat: statOf(t, m, cp),
			}
			for k, want := range last.metrics {
				if strings.Contains(k, "<-") {
					continue // the inbound by source: in /metrics, not in weft stat
				}
				if got := last.stat[k]; got != want {
					return false, fmt.Sprintf("%s: weft stat has %v, the sidecar's /metrics %v", k, got, want)
				}
			}
			return true, ""
		})
		return last
	}
	before := seen()
	send(t, web, 40)   // 30 answered 200, 10 answered 500 by the app
	send(t, batch, 12) // 9 and 3
	after := seen()
	t.Logf("weft stat after: %v", after.stat)

	grew := map[string][2]uint64{ // requests, failures
		"api": {52, 13}, "api-1": {52, 13},
		"web -> api": {40, 10}, "batch -> api": {12, 3},
		"api <- web": {40, 10}, "api <- batch": {12, 3},
	}
	for k, want := range grew {
		b, a := before.metrics[k], after.metrics[k]
		if got := [2]uint64{a.requests - b.requests, a.failures - b.failures}; got != want {
			t.Errorf("%s: /metrics grew by %v requests and failures, want %v", k, got, want)
		}
		if !strings.Contains(k, "<-") {
			b, a := before.stat[k], after.stat[k]
			if got := [2]uint64{a.requests - b.requests, a.failures - b.failures}; got != want {
				t.Errorf("%s: weft stat grew by %v requests and failures, want %v", k, got, want)
			}
			if got := a.count() - b.count(); got != want[0] {
				t.Errorf("%s: weft stat's histogram grew by %d, want %d", k, got, want[0])
			}
		}
	}

	// A thousand distinct paths make no more series: the figures are
	// kept by service, instance and edge, not by path.
	for i := range 1000 {
		if resp, body, err := meshtest.Via(web.Outbound, "api", fmt.Sprintf("/p/%d", i)); err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET /p/%d: %v %v %s", i, err, resp, body)
		}
	}
	final := seen()
	if got, want := final.stat["web -> api"].requests-after.stat["web -> api"].requests, uint64(1000); got != want {
		t.Errorf("web -> api after 1,000 paths: grew by %d, want %d", got, want)
	}
	_, metrics := meshtest.Get("http://" + cp.Addr + "/metrics")
	for _, want := range []string{"weft_collect_series 3\n", "weft_collect_series_dropped_total 0\n"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("control plane /metrics: want %q (api-1, web -> api, batch -> api), got:\n%s", want, grepMetric(metrics, "weft_collect"))
		}
	}

	// The table says the same.
	out, stderr, code := m.Weft("stat", "--window", "1h", "--control", cp.Addr)
	a := final.stat["api"]
	wantRow := fmt.Sprintf("api 1 %d %.2f%%", a.requests, 100*(1-float64(a.failures)/float64(a.requests)))
	if code != 0 || !strings.Contains(squeezeSpaces(out), wantRow) {
		t.Errorf("weft stat: exit %d, got\n%s%s\nwant a row starting %q", code, out, stderr, wantRow)
	}

	// A sidecar that stops sends what it counted since its last report:
	// with an interval of an hour, that is everything.
	late := m.Sidecar(cp, "--service", "late", "--report-interval", "1h")
	waitInstances(t, late, "api", 1)
	send(t, late, 8)
	counted := scrape(late, "outbound", "late", "api")
	late.Signal(syscall.SIGTERM)
	if code := late.ExitCode(t, 20*time.Second); code != 0 {
		t.Fatalf("late sidecar after SIGTERM: exit %d, want 0", code)
	}
	var got figures
	m.Eventually(10*time.Second, func() (bool, string) {
		got = statOf(t, m, cp)["late -> api"]
		return got == counted, fmt.Sprintf("late -> api: weft stat has %v, the sidecar counted %v", got, counted)
	})
	if counted.requests < 8 {
		t.Errorf("late -> api: the sidecar counted %d requests, want at least the 8 sent", counted.requests)
	}
}

// send makes n requests to api through s, every fourth answered 500.
func send(t *testing.T, s *meshtest.Sidecar, n int) {
	t.Helper()
	for i := range n {
		want := 200
		if i%4 == 3 {
			want = 500 // never five in a row: no outlier ejection
		}
		resp, body, err := meshtest.Via(s.Outbound, "api", "/status?code="+strconv.Itoa(want))
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != want {
			t.Fatalf("request %d: got %d %s, want %d", i, resp.StatusCode, body, want)
		}
	}
}

// figures are requests, failures and the latency histogram of one key.
type figures struct {
	requests, failures uint64
	buckets            [collect.NumBuckets]uint64
}

func (f figures) count() uint64 {
	var n uint64
	for _, b := range f.buckets {
		n += b
	}
	return n
}

func (f figures) String() string {
	return fmt.Sprintf("{requests %d failures %d buckets %v}", f.requests, f.failures, f.buckets)
}

type statFigures struct{ metrics, stat map[string]figures }

// statOf is what weft stat -o json says of api, api-1 and the edges to api.
func statOf(t *testing.T, m *meshtest.Mesh, cp *meshtest.Control) map[string]figures {
	t.Helper()
	out := map[string]figures{}
	var services collect.ServiceList
	weftJSON(t, m, &services, "stat", "api", "--window", "1h", "-o", "json", "--control", cp.Addr)
	for _, s := range services.Services {
		out[s.Service] = fromStat(s.Golden, s.Histogram)
		for _, in := range s.Instances {
			out[in.Instance] = fromStat(in.Golden, in.Histogram)
		}
	}
	var edges collect.EdgeList
	weftJSON(t, m, &edges, "stat", "--edges", "--window", "1h", "-o", "json", "--control", cp.Addr)
	for _, e := range edges.Edges {
		out[e.Source+" -> "+e.Destination] = fromStat(e.Golden, e.Histogram)
	}
	return out
}

func weftJSON(t *testing.T, m *meshtest.Mesh, v any, args ...string) {
	t.Helper()
	out, stderr, code := m.Weft(args...)
	if code != 0 {
		// Not there yet (the first report), or a real failure: the caller
		// polls and reports what it saw last.
		return
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("weft %s: %v in\n%s%s", strings.Join(args, " "), err, out, stderr)
	}
}

func fromStat(g collect.Golden, h collect.Histogram) figures {
	f := figures{requests: g.Requests, failures: g.Failures}
	copy(f.buckets[:], h.Buckets)
	return f
}

var seriesRE = regexp.MustCompile(`^(\w+)\{(.*)\} (\S+)$`)
var labelRE = regexp.MustCompile(`(\w+)="((?:[^"\\]|\\.)*)"`)

// scrape sums a sidecar's /metrics series of one direction, source ("":
// any) and destination: requests, failures (5xx, or grpc-status not 0)
// and histogram buckets (made per bucket from the cumulative ones).
func scrape(s *meshtest.Sidecar, direction, source, destination string) figures {
	_, body := meshtest.Get("http://" + s.Admin + "/metrics")
	var f figures
	cum := map[float64]uint64{}
	for _, line := range strings.Split(body, "\n") {
		g := seriesRE.FindStringSubmatch(line)
		if g == nil {
			continue
		}
		labels := map[string]string{}
		for _, l := range labelRE.FindAllStringSubmatch(g[2], -1) {
			labels[l[1]] = l[2]
		}
		if labels["direction"] != direction || labels["destination_service"] != destination ||
			(source != "" && labels["source_service"] != source) {
			continue
		}
		v, _ := strconv.ParseFloat(g[3], 64)
		n := uint64(math.Round(v))
		switch g[1] {
		case "weft_requests_total":
			f.requests += n
			if code, gs := labels["response_code"], labels["grpc_status"]; strings.HasPrefix(code, "5") || (gs != "" && gs != "0") {
				f.failures += n
			}
		case "weft_request_duration_seconds_bucket":
			le, _ := strconv.ParseFloat(labels["le"], 64) // +Inf parses as infinity
			cum[le] += n
		}
	}
	les := make([]float64, 0, len(cum))
	for le := range cum {
		les = append(les, le)
	}
	sort.Float64s(les)
	var prev uint64
	for i, le := range les {
		if i < collect.NumBuckets {
			f.buckets[i] = cum[le] - prev
		}
		prev = cum[le]
	}
	return f
}

func squeezeSpaces(s string) string { return strings.Join(strings.Fields(s), " ") }

func grepMetric(body, prefix string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
