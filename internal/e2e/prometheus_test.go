package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/internal/meshtest"
)

// dashboardFile is the Grafana dashboard Weft ships, from the module root.
const dashboardFile = "deploy/grafana/weft-mesh.json"

// panelQuery is one query of one panel of the dashboard.
type panelQuery struct {
	panel, ref, expr string
}

func (q panelQuery) String() string { return fmt.Sprintf("panel %q query %s", q.panel, q.ref) }

// dashboard is what the tests read of the dashboard's JSON.
type dashboard struct {
	SchemaVersion int    `json:"schemaVersion"`
	UID           string `json:"uid"`
	Title         string `json:"title"`
	Panels        []panel
	Templating    struct {
		List []struct {
			Name, Type string
			Query      any
			Definition string
			Datasource *datasourceRef
		}
	}
}

type panel struct {
	ID         int
	Type       string
	Title      string
	Datasource *datasourceRef
	GridPos    struct{ H, W, X, Y int }
	Targets    []struct {
		RefID      string `json:"refId"`
		Expr       string
		Datasource *datasourceRef
	}
	Panels []panel // a collapsed row's
}

type datasourceRef struct{ Type, UID string }

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	root, err := meshtest.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, dashboardFile))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// panels is every panel, those inside collapsed rows included.
func (d dashboard) panels() []panel {
	var all []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			all = append(all, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return all
}

func (d dashboard) queries() []panelQuery {
	var qs []panelQuery
	for _, p := range d.panels() {
		for _, tg := range p.Targets {
			qs = append(qs, panelQuery{p.Title, tg.RefID, tg.Expr})
		}
	}
	return qs
}

// grafanaVars stands in for Grafana's template variables: $service as a
// multi-value selection (Grafana's regex form), $__rate_interval as a
// window of several 1s scrapes.
var grafanaVars = strings.NewReplacer(
	"${datasource}", "", "$datasource", "",
	"${service}", "(echo|interop)", "$service", "(echo|interop)",
	"${__rate_interval}", "15s", "$__rate_interval", "15s",
)

var metricName = regexp.MustCompile(`\bweft_[a-z_]+\b`)

// TestGrafanaDashboard checks what Grafana needs to import the dashboard
// and what the docs promise of it, without Grafana.
func TestGrafanaDashboard(t *testing.T) {
	t.Parallel()
	d := readDashboard(t)
	if d.SchemaVersion < 36 || d.UID == "" || d.Title == "" {
		t.Errorf("schemaVersion %d, uid %q, title %q: want a schemaVersion of Grafana 10 (36 or more), a uid and a title", d.SchemaVersion, d.UID, d.Title)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		switch v.Name {
		case "datasource":
			if v.Type != "datasource" || v.Query != "prometheus" {
				t.Errorf("variable datasource: got type %q query %v, want a datasource variable of type prometheus", v.Type, v.Query)
			}
		case "service":
			want := "label_values(weft_requests_total, destination_service)"
			q, _ := v.Query.(map[string]any)
			if v.Type != "query" || v.Definition != want || q["query"] != want || v.Datasource == nil || v.Datasource.UID != "${datasource}" {
				t.Errorf("variable service: got type %q definition %q query %v datasource %v, want a query %q on ${datasource}", v.Type, v.Definition, v.Query, v.Datasource, want)
			}
		}
	}
	if vars["datasource"] == "" || vars["service"] == "" {
		t.Errorf("variables: got %v, want datasource and service", vars)
	}

	root, err := meshtest.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	var documented strings.Builder
	for _, f := range []string{"README.md", "docs/observability.md"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		documented.Write(b)
	}

	ids := map[int]string{}
	for _, p := range d.panels() {
		if other, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", other, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if g := p.GridPos; g.W < 1 || g.H < 1 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v does not fit Grafana's 24 columns", p.Title, g)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || *p.Datasource != (datasourceRef{"prometheus", "${datasource}"}) {
			t.Errorf("panel %q: datasource %v, want {prometheus ${datasource}}", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			q := panelQuery{p.Title, tg.RefID, tg.Expr}
			if tg.RefID == "" || strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("%s: want a refId and an expression, got %q", q, tg.Expr)
			}
			if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
				t.Errorf("%s: datasource %v, want ${datasource}", q, tg.Datasource)
			}
			// Each side counts every request: a figure that does not
			// pick a direction counts it twice.
			if strings.Contains(tg.Expr, "weft_request") && !strings.Contains(tg.Expr, `direction="`) {
				t.Errorf("%s: %s\nuses the request metrics without choosing a direction", q, tg.Expr)
			}
			for _, name := range metricName.FindAllString(tg.Expr, -1) {
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_count"), "_sum")
				if !strings.Contains(documented.String(), "`"+base+"`") && !strings.Contains(documented.String(), "`"+base+"{") {
					t.Errorf("%s uses %s, which neither README.md nor docs/observability.md documents", q, base)
				}
			}
		}
	}
}

// TestPrometheus starts a control plane and three sidecars (web calls
// echo over HTTP/1.1 and interop over gRPC), checks every /metrics with
// promtool, then has a real Prometheus scrape them, with the targets
// `weft get proxies -o json` gives, and runs every query of the Grafana
// dashboard against it.
func TestPrometheus(t *testing.T) {
	// Not parallel: Prometheus's port is picked, released and bound again
	// (it does not say which port it took when given port 0).
	promtool, _ := exec.LookPath("promtool")
	prom, _ := exec.LookPath("prometheus")
	if promtool == "" && prom == "" {
		t.Skip("promtool and prometheus are not installed (the Debian package prometheus has both; .ci/run installs it)")
	}
	m := meshtest.New(t)
	cp := m.Control()
	echoApp := m.App("echo-1")
	echo := m.Sidecar(cp, "--service", "echo", "--id", "echo-1", "--app-port", echoApp.Port)
	grpcApp := m.App("interop-1", "--grpc")
	interop := m.Sidecar(cp, "--service", "interop", "--id", "interop-1", "--app-port", grpcApp.Port, "--app-protocol", "h2c")
	web := m.Sidecar(cp, "--service", "web", "--id", "web-1")
	waitInstances(t, web, "echo", 1)
	startTraffic(t, web)

	// Every series the panels need exists before the first check: both
	// answers of echo and interop's failures, on each side.
	for _, w := range []struct {
		admin  string
		labels []string
	}{
		{web.Admin, []string{`direction="outbound"`, `destination_service="echo"`, `response_code="500"`}},
		{echo.Admin, []string{`direction="inbound"`, `destination_service="echo"`, `response_code="200"`}},
		{echo.Admin, []string{`direction="inbound"`, `destination_service="echo"`, `response_code="500"`}},
		{web.Admin, []string{`direction="outbound"`, `destination_service="interop"`, `grpc_status="12"`}},
		{interop.Admin, []string{`direction="inbound"`, `destination_service="interop"`, `grpc_status="12"`}},
	} {
		m.Eventually(15*time.Second, func() (bool, string) {
			n := metricSum(w.admin, "weft_requests_total", w.labels...)
			return n > 0, fmt.Sprintf("weft_requests_total%v at %s: got %v, want some", w.labels, w.admin, n)
		})
	}
	targets := map[string]string{"control": cp.Addr, "web": web.Admin, "echo": echo.Admin, "interop": interop.Admin}

	t.Run("promtool check metrics", func(t *testing.T) {
		if promtool == "" {
			t.Skip("promtool is not installed (Debian: apt-get install prometheus)")
		}
		for name, addr := range targets {
			code, body := meshtest.Get("http://" + addr + "/metrics")
			if code != 200 {
				t.Fatalf("%s /metrics: got %d, want 200: %.300s", name, code, body)
			}
			// promtool prints a line per problem, lint warnings
			// included (exit status 3), and nothing when all is well.
			cmd := exec.Command(promtool, "check", "metrics")
			cmd.Stdin = strings.NewReader(body)
			out, err := cmd.CombinedOutput()
			if err != nil || len(out) > 0 {
				t.Errorf("promtool check metrics on the /metrics of %s (%s): %v\n%s", name, addr, err, out)
			}
		}
	})

	t.Run("Prometheus runs every query of the dashboard", func(t *testing.T) {
		if prom == "" {
			t.Skip("prometheus is not installed (Debian: apt-get install prometheus)")
		}
		api := startPrometheus(t, m, prom, cp)
		checkDashboardQueries(t, api)
	})
}

// traffic is what startTraffic's goroutine saw, for a failure message.
type traffic struct {
	mu     sync.Mutex
	counts map[string]int
}

func (tr *traffic) add(outcome string) {
	tr.mu.Lock()
	tr.counts[outcome]++
	tr.mu.Unlock()
}

// startTraffic sends through web, until the test ends, three 200s and one
// 500 from echo's app, and one gRPC call interop's app refuses
// (UNIMPLEMENTED, so interop never succeeds), every 20 ms.
func startTraffic(t *testing.T, web *meshtest.Sidecar) {
	client := meshtest.ProxyClient(web.Outbound)
	conn, err := grpc.NewClient("passthrough:///"+web.Outbound,
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("interop"))
	if err != nil {
		t.Fatal(err)
	}
	tc := testgrpc.NewTestServiceClient(conn)
	tr := &traffic{counts: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			path := "/"
			if i%4 == 3 {
				path = "/status?code=500"
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://echo"+path, nil)
			if resp, err := client.Do(req); err == nil {
				resp.Body.Close()
				tr.add("http " + strconv.Itoa(resp.StatusCode))
			} else {
				tr.add("http error")
			}
			if i%4 == 0 {
				callCtx, callCancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := tc.UnimplementedCall(callCtx, &testgrpc.Empty{})
				callCancel()
				tr.add("grpc " + status.Code(err).String())
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		client.CloseIdleConnections()
		conn.Close()
		if t.Failed() {
			tr.mu.Lock()
			t.Logf("traffic sent through web: %v", tr.counts)
			tr.mu.Unlock()
		}
	})
}

// proxyInfo is what the tests read of `weft get proxies -o json`.
type proxyInfo struct {
	Service, ID, Admin string
}

// startPrometheus runs a Prometheus that scrapes every second the
// sidecars, found with `weft get proxies -o json` and written out as a
// file_sd target file (as docs/observability.md does it), and the control
// plane; it returns the base URL of its API once it has scraped each
// target. The process is killed when the test ends.
func startPrometheus(t *testing.T, m *meshtest.Mesh, bin string, cp *meshtest.Control) string {
	t.Helper()
	out, stderr, code := m.Weft("get", "proxies", "--control", cp.Addr, "-o", "json")
	var proxies []proxyInfo
	if err := json.Unmarshal([]byte(out), &proxies); code != 0 || err != nil {
		t.Fatalf("weft get proxies -o json: exit %d, %v\n%s%s", code, err, out, stderr)
	}
	type targetGroup struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	var groups []targetGroup
	for _, p := range proxies {
		groups = append(groups, targetGroup{[]string{p.Admin}, map[string]string{"instance": p.ID, "weft_service": p.Service}})
	}
	dir := t.TempDir()
	sd, err := json.Marshal(groups)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"weft-sidecars.json": string(sd),
		"prometheus.yml": fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
- job_name: weft-sidecars
  file_sd_configs:
  - files: [%q]
- job_name: weft-control
  static_configs:
  - targets: [%q]
`, filepath.Join(dir, "weft-sidecars.json"), cp.Addr),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	addr := "127.0.0.1:" + freePort(t)
	p := m.Start("prometheus", bin, nil,
		"--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr)
	api := "http://" + addr

	want := map[string]bool{"weft-control/" + cp.Addr: true}
	for _, p := range proxies {
		want["weft-sidecars/"+p.ID] = true
	}
	if len(want) != 4 {
		t.Fatalf("weft get proxies: got %v, want web, echo and interop", proxies)
	}
	m.Eventually(20*time.Second, func() (bool, string) {
		select {
		case <-p.Done():
			t.Fatalf("prometheus exited:\n%s", p.Output())
		default:
		}
		var r struct {
			Data struct {
				ActiveTargets []struct {
					Labels    map[string]string
					Health    string
					LastError string
				}
			}
		}
		if err := getJSON(api+"/api/v1/targets", &r); err != nil {
			return false, err.Error()
		}
		up := 0
		for _, tg := range r.Data.ActiveTargets {
			if tg.Health == "up" && want[tg.Labels["job"]+"/"+tg.Labels["instance"]] {
				up++
			}
		}
		return up == len(want), fmt.Sprintf("targets %+v, want %v up", r.Data.ActiveTargets, want)
	})
	return api
}

// promResult is one series of an instant query's answer.
type promResult struct {
	Metric map[string]string
	Value  [2]any // time, value as a string
}

func (r promResult) value() float64 {
	s, _ := r.Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return math.NaN()
	}
	return v
}

// query runs an instant query; it fails on an error or a warning.
func query(api, expr string) ([]promResult, error) {
	var r struct {
		Status, Error, ErrorType string
		Warnings                 []string
		Data                     struct {
			ResultType string
			Result     []promResult
		}
	}
	if err := getJSON(api+"/api/v1/query?"+url.Values{"query": {expr}}.Encode(), &r); err != nil {
		return nil, err
	}
	if r.Status != "success" || len(r.Warnings) > 0 {
		return nil, fmt.Errorf("status %s, %s: %s, warnings %v", r.Status, r.ErrorType, r.Error, r.Warnings)
	}
	if r.Data.ResultType != "vector" {
		return nil, fmt.Errorf("result type %s, want vector", r.Data.ResultType)
	}
	return r.Data.Result, nil
}

// getJSON decodes the JSON body of GET u; Prometheus answers a bad query
// with 400 and a JSON body that says why.
func getJSON(u string, v any) error {
	resp, err := meshtest.Client.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("GET %s: %d, %w", u, resp.StatusCode, err)
	}
	return nil
}

// valuesBy is a result's values keyed by the given labels' values.
func valuesBy(rs []promResult, labels ...string) map[string]float64 {
	out := map[string]float64{}
	for _, r := range rs {
		var key []string
		for _, l := range labels {
			key = append(key, r.Metric[l])
		}
		out[strings.Join(key, "->")] = r.value()
	}
	return out
}

// checkDashboardQueries runs every query of the dashboard, with the
// template variables replaced, and checks what the core panels show: each
// must be valid, and those below must have data, and the right data.
func checkDashboardQueries(t *testing.T, api string) {
	d := readDashboard(t)
	// The service variable's query, as Grafana runs it.
	meshtest.Eventually(t, 10*time.Second, func() (bool, string) {
		var r struct{ Data []string }
		if err := getJSON(api+"/api/v1/label/destination_service/values?"+url.Values{"match[]": {"weft_requests_total"}}.Encode(), &r); err != nil {
			return false, err.Error()
		}
		return slices.Contains(r.Data, "echo") && slices.Contains(r.Data, "interop"), fmt.Sprintf("label_values(weft_requests_total, destination_service): got %v, want echo and interop", r.Data)
	})

	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	// want says whether a query's answer is what the panel should show;
	// queries not named here need only be valid.
	want := map[string]func(rs []promResult) (bool, string){
		"Requests/s A": func(rs []promResult) (bool, string) {
			v := valuesBy(rs, "destination_service")
			return v["echo"] > 0 && v["interop"] > 0, fmt.Sprintf("got %v, want echo and interop above 0", v)
		},
		// echo's app answers a quarter of requests 500; every gRPC
		// call to interop fails with HTTP 200 and grpc-status 12.
		"Success rate A": func(rs []promResult) (bool, string) {
			v := valuesBy(rs, "destination_service")
			_, ok := v["interop"]
			return v["echo"] > 0.5 && v["echo"] < 0.95 && ok && v["interop"] == 0, fmt.Sprintf("got %v, want echo near 0.75 and interop 0", v)
		},
		"Calls by source service A": func(rs []promResult) (bool, string) {
			v := valuesBy(rs, "source_service", "destination_service")
			return v["web->echo"] > 0 && v["web->interop"] > 0, fmt.Sprintf("got %v, want web->echo and web->interop above 0", v)
		},
		"Calls by source service B": func(rs []promResult) (bool, string) {
			v := valuesBy(rs, "source_service", "destination_service")
			_, ok := v["web->interop"]
			return v["web->echo"] > 0.5 && v["web->echo"] < 0.95 && ok && v["web->interop"] == 0, fmt.Sprintf("got %v, want web->echo near 0.75 and web->interop 0", v)
		},
		"Endpoints by health A": func(rs []promResult) (bool, string) {
			v := valuesBy(rs, "service", "health")
			return v["echo->healthy"] == 1 && v["interop->healthy"] == 1, fmt.Sprintf("got %v, want one healthy endpoint of echo and of interop", v)
		},
		"Sidecar streams A": func(rs []promResult) (bool, string) {
			v := valuesBy(rs)
			return v[""] == 3, fmt.Sprintf("got %v, want 3", v)
		},
		"Instances by state A": func(rs []promResult) (bool, string) {
			v := valuesBy(rs, "service", "state")
			return v["echo->ready"] == 1 && v["interop->ready"] == 1, fmt.Sprintf("got %v, want echo and interop with one ready instance", v)
		},
	}
	// Latencies, of each service and of each edge: two, in seconds.
	latency := func(rs []promResult) (bool, string) {
		v := valuesBy(rs, "source_service", "destination_service")
		if len(v) != 2 {
			return false, fmt.Sprintf("got %v, want echo and interop", v)
		}
		for k, s := range v {
			if !finite(s) || s <= 0 || s > 10 {
				return false, fmt.Sprintf("got %v, want a latency in seconds for %s", v, k)
			}
		}
		return true, ""
	}
	for _, k := range []string{"Latency (p50, p95, p99) A", "Latency (p50, p95, p99) B", "Latency (p50, p95, p99) C", "Calls by source service C"} {
		want[k] = latency
	}

	seen := map[string]bool{}
	for _, q := range d.queries() {
		t.Run(q.panel+" "+q.ref, func(t *testing.T) {
			expr := grafanaVars.Replace(q.expr)
			if strings.Contains(expr, "$") {
				t.Fatalf("%s: a template variable the test does not stand in for:\n%s", q, expr)
			}
			check := want[q.panel+" "+q.ref]
			seen[q.panel+" "+q.ref] = true
			if check == nil {
				if _, err := query(api, expr); err != nil {
					t.Errorf("%s: %v\n%s", q, err, expr)
				}
				return
			}
			meshtest.Eventually(t, 15*time.Second, func() (bool, string) {
				rs, err := query(api, expr)
				if err != nil {
					t.Fatalf("%s: %v\n%s", q, err, expr)
				}
				ok, last := check(rs)
				return ok, fmt.Sprintf("%s: %s\n%s", q, last, expr)
			})
		})
	}
	for k := range want {
		if !seen[k] {
			t.Errorf("the dashboard has no query %q", k)
		}
	}
}
