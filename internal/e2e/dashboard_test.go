package e2e

import (
	"context"
	"fmt"
	"net/http"
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

	"github.com/chromedp/chromedp"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/collect"
	"github.com/weftmesh/weft/internal/collect/traces"
	"github.com/weftmesh/weft/internal/meshtest"
)

// chromium is the path of Debian's chromium, or "" when it is not installed.
func chromium() string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// artifacts is the directory the test's screenshots go to: under
// $WEFT_TEST_ARTIFACTS when it is set, else a temporary one.
func artifacts(t *testing.T) string {
	dir := os.Getenv("WEFT_TEST_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	dir = filepath.Join(dir, "dashboard")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifacts: %v", err)
	}
	return dir
}

// browser is one headless Chromium tab and what its pages wrote to the
// console as errors.
type browser struct {
	t    *testing.T
	ctx  context.Context
	dir  string
	mu   sync.Mutex
	errs []string
}

func startBrowser(t *testing.T, bin string) *browser {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.UserDataDir(t.TempDir()))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTime := context.WithTimeout(ctx, 90*time.Second)
	b := &browser{t: t, ctx: ctx, dir: artifacts(t)}
	done := make(chan struct{})
	t.Cleanup(func() {
		cancelTime()
		cancelTab()
		cancelAlloc()
		<-done
	})
	if err := chromedp.Do(ctx); err != nil {
		close(done)
		t.Fatalf("start %s: %v", bin, err)
	}
	msgs := chromedp.Console(ctx)
	go func() {
		defer close(done)
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				b.mu.Lock()
				b.errs = append(b.errs, fmt.Sprintf("%s (%s:%d)", m.String(), m.URL, m.Line))
				b.mu.Unlock()
			}
		}
	}()
	return b
}

func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v; console errors so far: %v", what, err, b.consoleErrors())
	}
}

func (b *browser) consoleErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errs...)
}

// eval runs a JavaScript expression in the page.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// shot saves a screenshot of what the viewport shows.
func (b *browser) shot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(b.dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot %s", p)
}

// cells is the data-value of every figure in the elements sel matches,
// by field: {"catalog": {"requests": "12", ...}} keyed by the element's
// attribute key.
func cells(b *browser, sel, key string) map[string]map[string]string {
	return eval[map[string]map[string]string](b, fmt.Sprintf(`(() => {
		const out = {};
		for (const row of document.querySelectorAll(%q)) {
			const k = row.getAttribute(%q);
			out[k] = {};
			for (const c of row.querySelectorAll('[data-field]')) out[k][c.dataset.field] = c.dataset.value;
		}
		return out;
	})()`, sel, key))
}

// sameGolden says how the figures a page shows differ from the API's.
func sameGolden(what string, got map[string]string, want collect.Golden) []string {
	var bad []string
	check := func(field string, w float64) {
		g, err := strconv.ParseFloat(got[field], 64)
		if err != nil || g != w {
			bad = append(bad, fmt.Sprintf("%s %s: the page shows %q, the API says %v", what, field, got[field], w))
		}
	}
	check("requests", float64(want.Requests))
	check("rps", want.RPS)
	check("successRate", want.SuccessRate)
	check("p99", float64(want.P99))
	return bad
}

func TestDashboardInChromium(t *testing.T) {
	bin := chromium()
	if bin == "" {
		t.Skip("chromium not found on PATH (Debian's package chromium; .ci/run installs it): the dashboard's browser test needs it")
	}
	t.Parallel()
	m := meshtest.New(t)
	p := m.Start("demo", m.Bins.Weft, nil,
		"demo", "--listen", "127.0.0.1:0", "--outbound", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--load-interval", "0")
	dash := p.WaitLog(t, regexp.MustCompile(`Dashboard: (http://(\S+)/ui/)(\S*)`), 60*time.Second)
	ui, login := dash[1], dash[1]+dash[3] // with the API token in the fragment, as the demo prints it
	cp := api.NewClient(dash[2])          // with the token the control plane left for its user, when its API asks for one
	apiGet := func(path string, v any) error { return cp.Do(context.Background(), http.MethodGet, path, nil, v) }
	outbound := p.WaitLog(t, regexp.MustCompile(`curl -x http://(\S+) http://catalog/items`), time.Second)[1]

	// Traffic, then figures that hold still: n requests through web
	// (web -> catalog -> ratings), each one traced, and an alarm on catalog.
	const n = 20
	for i := range n {
		resp, body, err := meshtest.Via(outbound, "web", "/")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("request %d through web: %v %s", i, err, body)
		}
	}
	rule := writeFile(t, "rule.yaml", `apiVersion: weftmesh.io/v1alpha1
kind: AlertRule
metadata: {name: catalog-busy}
spec:
  service: catalog
  condition: {metric: rps, op: above, value: 0.01}
  window: 5m
  summary: catalog is called
---
apiVersion: weftmesh.io/v1alpha1
kind: Fault
metadata: {name: catalog-broken}
spec:
  abort: {httpStatus: 503, percent: 100}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: catalog}
spec:
  parentRefs: [{group: "", kind: Service, name: catalog}]
  rules:
  - matches: [{path: {type: Exact, value: /broken}}]
    filters: [{type: ExtensionRef, extensionRef: {group: weftmesh.io, kind: Fault, name: catalog-broken}}]
  - matches: [{path: {type: PathPrefix, value: /}}]
`)
	if out, errOut, code := m.Weft("apply", "-f", rule, "--control", dash[2]); code != 0 {
		t.Fatalf("weft apply: %s%s", out, errOut)
	}
	// Requests web's sidecar aborts with a fault, once it has the route:
	// mesh errors of catalog, and none reaches it.
	admin := p.WaitLog(t, regexp.MustCompile(`curl http://(\S+)/config`), time.Second)[1]
	m.Eventually(10*time.Second, func() (bool, string) {
		var cfg struct {
			Services map[string]struct {
				Routes []struct{ Route string } `json:"routes"`
			} `json:"services"`
		}
		if err := getJSON("http://"+admin+"/config", &cfg); err != nil {
			return false, err.Error()
		}
		r := cfg.Services["catalog"].Routes
		return len(r) == 2, fmt.Sprintf("web's sidecar routes catalog with %v, want HTTPRoute/catalog's 2 rules", r)
	})
	const broken = 3
	for range broken {
		if resp, _, err := meshtest.Via(outbound, "catalog", "/broken"); err != nil || resp.Header.Get("x-weft-error") != "fault-injected" {
			t.Fatalf("GET catalog/broken: %v %v", resp, err)
		}
	}
	var stats collect.ServiceList
	var edges collect.EdgeList
	var services []api.Service
	m.Eventually(20*time.Second, func() (bool, string) {
		if err := apiGet("/v1/stats?window=5m", &stats); err != nil {
			return false, err.Error()
		}
		got := map[string]uint64{}
		for _, s := range stats.Services {
			got[s.Service] = s.Requests
		}
		var alerts []struct{ State string }
		apiGet("/v1/alerts", &alerts)
		return got["web"] == n && got["catalog"] == n && got["ratings"] == n && len(alerts) == 1 && alerts[0].State == "firing",
			fmt.Sprintf("requests counted %v, alerts %v; want %d each, catalog-busy firing", got, alerts, n)
	})
	// Every request's trace, whole: its root came, and spans of web,
	// catalog and ratings (each sidecar exports its spans in batches).
	var list []traces.Summary
	m.Eventually(15*time.Second, func() (bool, string) {
		if err := apiGet("/v1/traces?service=catalog&limit=100", &list); err != nil {
			return false, err.Error()
		}
		whole := 0
		for _, s := range list {
			if s.HasRoot && len(s.Services) == 3 {
				whole++
			}
		}
		return len(list) == n && whole == n, fmt.Sprintf("%d traces of catalog, %d whole; want %d, all whole", len(list), whole, n)
	})
	if err := apiGet("/v1/stats?window=5m&edges=true", &edges); err != nil {
		t.Fatal(err)
	}
	if err := apiGet("/v1/services", &services); err != nil {
		t.Fatal(err)
	}

	b := startBrowser(t, bin)
	b.do("viewport", chromedp.EmulateViewport(1280, 800))
	// The console is read: an error the page writes is seen.
	// Without the token the dashboard asks for it; the demo's link gives it.
	b.do("open the dashboard without the token", chromedp.Navigate(ui), chromedp.WaitVisible(chromedp.CSS(`#token-form`)))
	b.do("open the dashboard with the demo's link", chromedp.Navigate(login), chromedp.WaitVisible(chromedp.CSS(`#services`)))
	if h := eval[string](b, `location.hash`); strings.Contains(h, "token") {
		t.Errorf("after the demo's link: at %q, want the token gone from the address", h)
	}
	b.do("open the overview", chromedp.Navigate(ui+"#/?window=5m"))
	eval[bool](b, `console.error("weft-e2e-probe"), true`)
	meshtest.Eventually(t, 5*time.Second, func() (bool, string) {
		errs := b.consoleErrors()
		return slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, "weft-e2e-probe") }), fmt.Sprintf("console errors %v, want the probe", errs)
	})
	b.mu.Lock()
	b.errs = nil
	b.mu.Unlock()

	// Overview: each service's figures are the API's.
	b.do("overview", chromedp.WaitVisible(chromedp.CSS(`#services tr[data-service="catalog"] td[data-field="requests"]`)))
	shown := cells(b, "#services tr[data-service]", "data-service")
	for _, s := range stats.Services {
		for _, bad := range sameGolden("overview "+s.Service, shown[s.Service], s.Golden) {
			t.Error(bad)
		}
	}
	for _, s := range services {
		if got := shown[s.Name]["ready"]; got != strconv.Itoa(s.Ready) {
			t.Errorf("overview %s: ready %q, the API says %d", s.Name, got, s.Ready)
		}
	}
	if cls := eval[string](b, `document.querySelector('#services tr[data-service="catalog"]').className`); cls != "alarm-firing" {
		t.Errorf("overview: catalog's row has class %q, want alarm-firing while catalog-busy fires", cls)
	}
	b.shot("overview-1280x800")

	// Topology: the call graph's edges are the API's; a click on a node
	// opens the service.
	b.do("topology", chromedp.Navigate(ui+"#/topology?window=5m"),
		chromedp.WaitVisible(chromedp.CSS(`g.node[data-service="catalog"] rect`)),
		chromedp.WaitVisible(chromedp.CSS(`table.edges tr[data-source="web"][data-destination="catalog"]`)))
	for _, e := range edges.Edges {
		row := eval[map[string]string](b, fmt.Sprintf(`(() => { const out = {}; const r = document.querySelector('table.edges tr[data-source=%q][data-destination=%q]');
			if (r) for (const c of r.querySelectorAll('[data-field]')) out[c.dataset.field] = c.dataset.value; return out; })()`, e.Source, e.Destination))
		for _, bad := range sameGolden("topology "+e.Source+" -> "+e.Destination, row, e.Golden) {
			t.Error(bad)
		}
		if !eval[bool](b, fmt.Sprintf(`!!document.querySelector('g.edge[data-source=%q][data-destination=%q] path')`, e.Source, e.Destination)) {
			t.Errorf("topology: no edge drawn from %s to %s", e.Source, e.Destination)
		}
	}
	b.shot("topology-1280x800")
	b.do("click catalog in the topology", chromedp.Click(chromedp.CSS(`g.node[data-service="catalog"] rect`)),
		chromedp.WaitVisible(chromedp.CSS(`#instances tr[data-instance="catalog-v2"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#service-traces a.trace-link`)))
	if h := eval[string](b, `location.hash`); h != "#/service/catalog?window=5m" {
		t.Errorf("after the click: at %q, want #/service/catalog?window=5m", h)
	}
	var catalog collect.ServiceList
	if err := apiGet("/v1/stats/catalog?window=5m", &catalog); err != nil {
		t.Fatal(err)
	}
	tiles := eval[map[string]string](b, `Object.fromEntries([...document.querySelectorAll('.tiles [data-field]')].map((e) => [e.dataset.field, e.dataset.value]))`)
	for _, bad := range sameGolden("service catalog", tiles, catalog.Services[0].Golden) {
		t.Error(bad)
	}
	inst := cells(b, "#instances tr[data-instance]", "data-instance")
	for _, is := range catalog.Services[0].Instances {
		if got := inst[is.Instance]["requests"]; got != strconv.FormatUint(is.Requests, 10) {
			t.Errorf("service catalog, instance %s: %q requests, the API says %d", is.Instance, got, is.Requests)
		}
	}
	if seen := eval[string](b, `document.querySelector('#instances tr[data-instance="catalog-v1"] .seen-by').textContent`); !strings.Contains(seen, "web/web-1: ready") {
		t.Errorf("catalog-v1 as web's sidecar sees it: %q, want web/web-1: ready ...", seen)
	}
	if got := cells(b, "#errors tr[data-reason]", "data-reason")["fault-injected"]["count"]; got != strconv.Itoa(broken) {
		t.Errorf("service catalog: %q fault-injected errors, want the %d web's sidecar answered", got, broken)
	}
	if rules := eval[int](b, `document.querySelectorAll('#routes table.routes tbody tr').length`); rules != 2 {
		t.Errorf("service catalog: %d route rules shown, want HTTPRoute/catalog's 2", rules)
	}
	refs := eval[[]string](b, `[...document.querySelectorAll('#resources details')].map((d) => d.dataset.ref)`)
	if !slices.Contains(refs, "HTTPRoute/catalog") || !slices.Contains(refs, "Fault/catalog-broken") {
		t.Errorf("service catalog: resources %v, want HTTPRoute/catalog and Fault/catalog-broken as YAML", refs)
	}
	b.shot("service-1280x800")
	// The explain view, for a request typed in.
	b.do("explain", chromedp.SetValue(chromedp.CSS(`#explain-path`), "/items"), chromedp.Click(chromedp.CSS(`#explain-go`)),
		chromedp.WaitVisible(chromedp.CSS(`#explain-decision`)))
	if d := eval[string](b, `document.querySelector('#explain-out').textContent`); !strings.Contains(d, "GET /items to catalog, as sidecar web/web-1") || !strings.Contains(d, "catalog-v2") {
		t.Errorf("explain GET /items from web: %q, want the request and catalog's instances", d)
	}
	b.shot("explain-1280x800")

	// A click on a trace opens its waterfall: every span of the trace.
	id := eval[string](b, `document.querySelector('#service-traces tr[data-trace]').dataset.trace`)
	b.do("click a trace", chromedp.Click(chromedp.CSS(`#service-traces a.trace-link`)), chromedp.WaitVisible(chromedp.CSS(`#waterfall .span-row`)))
	var tree traces.Tree
	if err := apiGet("/v1/traces/"+id, &tree); err != nil {
		t.Fatal(err)
	}
	if rows := eval[int](b, `document.querySelectorAll('#waterfall .span-row').length`); rows != tree.Spans || tree.Spans < 4 {
		t.Errorf("waterfall of %s: %d rows, the API holds %d spans (want at least web, catalog and ratings')", id, rows, tree.Spans)
	}
	b.do("a span's detail", chromedp.Click(chromedp.CSS(`#waterfall .span-row:last-child .wf-label`)), chromedp.WaitVisible(chromedp.CSS(`#span table.attributes`)))
	b.shot("trace-1280x800")

	// Traces: the search by service lists what the API lists.
	b.do("traces", chromedp.Navigate(ui+"#/traces?service=catalog"), chromedp.WaitVisible(chromedp.CSS(`#traces-out tr[data-trace]`)))
	if err := apiGet("/v1/traces?service=catalog", &list); err != nil {
		t.Fatal(err)
	}
	if rows := eval[int](b, `document.querySelectorAll('#traces-out tr[data-trace]').length`); rows != len(list) {
		t.Errorf("traces of catalog: %d rows, want the API's %d", rows, len(list))
	}
	b.shot("traces-1280x800")

	// Alarms: the rule, firing.
	b.do("alarms", chromedp.Navigate(ui+"#/alarms"), chromedp.WaitVisible(chromedp.CSS(`#alarms-firing .rule[data-rule="catalog-busy"]`)))
	b.shot("alarms-1280x800")

	// Live requests: what the sidecars hold, then new requests as they
	// end, without a reload.
	b.do("live", chromedp.Navigate(ui+"#/live"), chromedp.WaitVisible(chromedp.CSS(`#live-rows tr`)))
	before := eval[int](b, `document.querySelectorAll('#live-rows tr').length`)
	_, body, err := meshtest.Via(outbound, "catalog", "/items")
	if err != nil {
		t.Fatal(err)
	}
	meshtest.Eventually(t, 10*time.Second, func() (bool, string) {
		rows := eval[int](b, `document.querySelectorAll('#live-rows tr').length`)
		return rows > before, fmt.Sprintf("%d rows, want more than %d after a request (%.80s)", rows, before, body)
	})
	b.shot("live-1280x800")

	// The overview moves with the figures, without a reload.
	b.do("overview again", chromedp.Navigate(ui+"#/?window=5m"), chromedp.WaitVisible(chromedp.CSS(`#services tr[data-service="catalog"]`)))
	meshtest.Eventually(t, 15*time.Second, func() (bool, string) {
		got := cells(b, "#services tr[data-service]", "data-service")["catalog"]["requests"]
		return got == strconv.Itoa(n+1), fmt.Sprintf("catalog shows %s requests, want %d after one more", got, n+1)
	})

	// Every page at 390 wide, as a phone shows it.
	b.do("phone", chromedp.EmulateViewport(390, 844))
	for _, pg := range []struct{ name, hash, wait string }{
		{"overview", "#/?window=5m", `#services tr[data-service="catalog"]`},
		{"topology", "#/topology?window=5m", `g.node[data-service="catalog"] rect`},
		{"service", "#/service/catalog?window=5m", `#instances tr[data-instance="catalog-v1"]`},
		{"trace", "#/trace/" + id, `#waterfall .span-row`},
		{"traces", "#/traces?service=catalog", `#traces-out tr[data-trace]`},
		{"alarms", "#/alarms", `.rule[data-rule="catalog-busy"]`},
		{"live", "#/live", `#live-rows tr`},
	} {
		b.do(pg.name+" at 390 wide", chromedp.Navigate(ui+pg.hash), chromedp.WaitVisible(chromedp.CSS(pg.wait)))
		if w := eval[int](b, `document.documentElement.scrollWidth`); w > 390 {
			t.Errorf("%s at 390 wide: the page is %dpx wide, want no sideways scroll outside its tables", pg.name, w)
		}
		b.shot(pg.name + "-390x844")
	}
	if errs := b.consoleErrors(); len(errs) > 0 {
		t.Errorf("console errors on the dashboard's pages:\n%s", strings.Join(errs, "\n"))
	}
}
