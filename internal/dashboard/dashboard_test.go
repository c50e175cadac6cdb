package dashboard_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/collect"
	"github.com/weftmesh/weft/internal/control"
	"github.com/weftmesh/weft/internal/control/controltest"
	"github.com/weftmesh/weft/internal/dashboard"
)

// client reaches the servers of one test directly, its connections
// closed when the test ends.
func client(t *testing.T) *http.Client {
	tr := &http.Transport{Proxy: nil}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// controlPlane is a real control plane for one test, and the header
// that carries its API token where its API asks for one (the token is
// in its data dir).
type controlPlane struct {
	addr string
	auth map[string]string
}

func startControl(t *testing.T) *controlPlane {
	dir := t.TempDir()
	c := controltest.Start(t, nil, func(cfg *control.Config) { cfg.DataDir = dir })
	cp := &controlPlane{addr: c.Addr(), auth: map[string]string{}}
	if b, err := os.ReadFile(filepath.Join(dir, "api-token")); err == nil {
		cp.auth["Authorization"] = "Bearer " + strings.TrimSpace(string(b))
	}
	return cp
}

func do(t *testing.T, c *http.Client, method, u string, headers ...map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, header := range headers {
		for k, v := range header {
			req.Header.Set(k, v)
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// report sends the control plane one sidecar's summary: n requests
// received by service from web, failed of them failures, all in bucket 4.
func report(t *testing.T, c *http.Client, addr, service, instance string, n, failed int) {
	t.Helper()
	body := fmt.Sprintf(`{"boot":"b1","seq":1,"series":[
 {"direction":"inbound","source":"web","destination":%q,"requests":%d,"failures":%d,"buckets":[0,0,0,0,%d]},
 {"direction":"outbound","source":"web","destination":%q,"requests":%d,"failures":%d,"buckets":[0,0,0,0,%d]}]}`,
		service, n, failed, n, service, n, failed, n)
	resp, err := c.Post("http://"+addr+"/v1/telemetry/"+service+"/"+instance, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("report: got %s, want 200", resp.Status)
	}
}

func TestAssetsCarryTheCSP(t *testing.T) {
	cp := startControl(t)
	c := client(t)
	base := "http://" + cp.addr
	cases := []struct {
		path, ctype string
		code        int
	}{
		{"/ui/", "text/html", 200},
		{"/ui/js/app.js", "text/javascript", 200},
		{"/ui/style.css", "text/css", 200},
		{"/ui/icon.svg", "image/svg+xml", 200},
		{"/ui/api/overview", "application/json", 200},
		{"/ui/nosuch.js", "", 404},
		{"/ui/js/", "application/json", 404},
		{"/ui/api/nosuch", "application/json", 404},
	}
	for _, tc := range cases {
		resp, body := do(t, c, http.MethodGet, base+tc.path, cp.auth)
		if resp.StatusCode != tc.code || !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.ctype) {
			t.Errorf("GET %s: got %d %s, want %d %s; body %.200s", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), tc.code, tc.ctype, body)
		}
		if got := resp.Header.Get("Content-Security-Policy"); got != dashboard.CSP {
			t.Errorf("GET %s: Content-Security-Policy %q, want %q", tc.path, got, dashboard.CSP)
		}
		if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q, want nosniff", tc.path, got)
		}
	}
	for _, want := range []string{"script-src 'self'", "style-src 'self'", "default-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(dashboard.CSP, want) {
			t.Errorf("CSP %q lacks %q", dashboard.CSP, want)
		}
	}
	if strings.Contains(dashboard.CSP, "unsafe-") {
		t.Errorf("CSP %q allows something unsafe", dashboard.CSP)
	}
	// A browser that asks for /ui is sent to the dashboard.
	noRedirect := *c
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, p := range []string{"/ui"} {
		resp, _ := do(t, &noRedirect, http.MethodGet, base+p)
		if loc := resp.Header.Get("Location"); resp.StatusCode/100 != 3 || !strings.HasSuffix(loc, "/ui/") {
			t.Errorf("GET %s: got %d to %q, want a redirect to /ui/", p, resp.StatusCode, loc)
		}
	}
}

// TestAssetsHaveNoInlineScriptOrStyle reads every page and script the
// dashboard serves: nothing the CSP would refuse, and no markup built
// from strings.
func TestAssetsHaveNoInlineScriptOrStyle(t *testing.T) {
	cp := startControl(t)
	c := client(t)
	base := "http://" + cp.addr + "/ui/"
	_, index := do(t, c, http.MethodGet, base)
	inline := regexp.MustCompile(`<script(?:\s[^>]*)?>`)
	for _, tag := range inline.FindAllString(index, -1) {
		if !strings.Contains(tag, " src=") {
			t.Errorf("index.html: inline script %s", tag)
		}
	}
	if regexp.MustCompile(`(?i)\sstyle=|\son[a-z]+=|<style`).MatchString(index) {
		t.Errorf("index.html has an inline style or event handler:\n%s", index)
	}
	scripts := regexp.MustCompile(`from '\./([a-z]+\.js)'`)
	seen := map[string]bool{}
	queue := []string{"app.js"}
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		if seen[name] {
			continue
		}
		seen[name] = true
		resp, js := do(t, c, http.MethodGet, base+"js/"+name)
		if resp.StatusCode != 200 {
			t.Errorf("GET js/%s: %d", name, resp.StatusCode)
			continue
		}
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "eval(", "new Function", "setAttribute('style'", "document.write"} {
			if strings.Contains(js, bad) {
				t.Errorf("js/%s uses %s", name, bad)
			}
		}
		for _, m := range scripts.FindAllStringSubmatch(js, -1) {
			queue = append(queue, m[1])
		}
	}
	if len(seen) < 8 {
		t.Errorf("found %d scripts from app.js, want every page's: %v", len(seen), seen)
	}
}

func TestRefusesOtherOriginsAndWrites(t *testing.T) {
	cp := startControl(t)
	c := client(t)
	host := cp.addr
	cases := []struct {
		name   string
		method string
		header map[string]string
		code   int
		want   string
	}{
		{"typed in", "GET", nil, 200, ""},
		{"same origin", "GET", map[string]string{"Sec-Fetch-Site": "same-origin"}, 200, ""},
		{"bookmark", "GET", map[string]string{"Sec-Fetch-Site": "none"}, 200, ""},
		{"own origin", "GET", map[string]string{"Origin": "http://" + host}, 200, ""},
		{"cross site", "GET", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403, "Sec-Fetch-Site: cross-site"},
		{"same site", "GET", map[string]string{"Sec-Fetch-Site": "same-site"}, 403, "Sec-Fetch-Site: same-site"},
		{"other origin", "GET", map[string]string{"Origin": "http://evil.example"}, 403, "came from http://evil.example (Origin)"},
		{"other port", "GET", map[string]string{"Origin": "http://127.0.0.1:1"}, 403, "came from http://127.0.0.1:1"},
		{"opaque origin", "GET", map[string]string{"Origin": "null"}, 403, "came from null"},
		{"write", "POST", nil, 405, "read-only: POST"},
		{"delete", "DELETE", map[string]string{"Sec-Fetch-Site": "same-origin"}, 405, "read-only: DELETE"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, path := range []string{"/ui/", "/ui/api/overview", "/ui/events?page=nope"} {
				resp, body := do(t, c, tc.method, "http://"+host+path, cp.auth, tc.header)
				code := resp.StatusCode
				if tc.code == 200 && path == "/ui/events?page=nope" {
					code = 200 // let through, refused only for its page
					if resp.StatusCode != 400 {
						t.Errorf("%s: got %d, want 400 for the page", path, resp.StatusCode)
					}
				}
				if code != tc.code || !strings.Contains(body, tc.want) {
					t.Errorf("%s %s: got %d %.300s, want %d naming %q", tc.method, path, resp.StatusCode, body, tc.code, tc.want)
				}
				if resp.StatusCode == 403 && !strings.Contains(body, "open http://"+host+"/ui/ directly") {
					t.Errorf("%s: the refusal does not say where the dashboard is: %s", path, body)
				}
				if resp.Header.Get("Content-Security-Policy") != dashboard.CSP {
					t.Errorf("%s: no CSP on a %d", path, resp.StatusCode)
				}
			}
		})
	}
}

func TestPagesShowWhatTheAPIReports(t *testing.T) {
	cp := startControl(t)
	c := client(t)
	base := "http://" + cp.addr
	report(t, c, cp.addr, "api", "api-1", 40, 4)
	report(t, c, cp.addr, "api", "api-2", 20, 0)

	var stats collect.ServiceList
	getJSON(t, c, base+"/v1/stats?window=5m", &stats, cp.auth)
	var o dashboard.Overview
	getJSON(t, c, base+"/ui/api/overview?window=5m", &o, cp.auth)
	if o.Window != "5m" || len(o.Services) != 1 || o.Services[0].Golden == nil {
		t.Fatalf("overview: got %+v, want api over 5m", o)
	}
	if got, want := *o.Services[0].Golden, stats.Services[0].Golden; got != want {
		t.Errorf("overview of api: got %+v, the API says %+v", got, want)
	}
	if sp := o.Services[0].Spark; sp.Step != "1m" || len(sp.RPS) != 60 || sp.RPS[59] != 1 || len(sp.P99) != 60 {
		t.Errorf("sparkline of api: got step %s, %d points, last rps %v; want 1m, 60, 1 (60 requests in the last minute)", sp.Step, len(sp.RPS), sp.RPS)
	}
	if len(o.Edges) != 1 || o.Edges[0].Source != "web" || o.Edges[0].Requests != 60 {
		t.Errorf("overview edges: got %+v, want web -> api with 60", o.Edges)
	}

	var p dashboard.ServicePage
	getJSON(t, c, base+"/ui/api/service/api?window=5m", &p, cp.auth)
	if p.Golden == nil || *p.Golden != stats.Services[0].Golden || len(p.Instances) != 2 || p.Instances[0].Golden.Requests != 40 {
		t.Errorf("service page: got %+v, want the API's figures and api-1 with 40", p)
	}
	if len(p.In) != 1 || p.In[0].Requests != 60 || len(p.Out) != 0 {
		t.Errorf("service page calls: in %+v, out %+v; want web -> api with 60", p.In, p.Out)
	}

	for path, want := range map[string]struct {
		code int
		body string
	}{
		"/ui/api/service/nosuch":                         {404, "service nosuch not found"},
		"/ui/api/service/Bad_Name":                       {400, `"field": "service"`},
		"/ui/api/overview?window=2h":                     {400, `"field": "window"`},
		"/ui/api/explain?from=web":                       {400, `"field": "to"`},
		"/ui/api/explain?from=web&to=api&path=x":         {400, `"field": "path"`},
		"/ui/api/explain?from=web&to=api&path=/":         {400, `no sidecar of service \"web\"`},
		"/ui/api/live?since=yesterday":                   {400, `"field": "since"`},
		"/ui/api/traces?minDuration=-1s":                 {400, "minDuration"},
		"/ui/api/trace/123":                              {400, ""},
		"/ui/api/trace/0123456789abcdef0123456789abcdef": {404, "not found"},
	} {
		resp, body := do(t, c, http.MethodGet, base+path, cp.auth)
		if resp.StatusCode != want.code || !strings.Contains(body, want.body) {
			t.Errorf("GET %s: got %d %s, want %d with %s", path, resp.StatusCode, body, want.code, want.body)
		}
	}
}

func getJSON(t *testing.T, c *http.Client, u string, v any, header ...map[string]string) {
	t.Helper()
	resp, body := do(t, c, http.MethodGet, u, header...)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: got %d %s", u, resp.StatusCode, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("GET %s: %v in %s", u, err, body)
	}
}

// streamServer is a dashboard over a real control plane's API (reached
// through a reverse proxy), served on its own, so the test sees its
// streams.
func streamServer(t *testing.T, cfg dashboard.Config) (*dashboard.Handler, string, *http.Client) {
	cp := startControl(t)
	target, _ := url.Parse("http://" + cp.addr)
	proxy := httputil.NewSingleHostReverseProxy(target)
	direct := proxy.Director
	proxy.Director = func(r *http.Request) {
		direct(r)
		for k, v := range cp.auth {
			r.Header.Set(k, v)
		}
	}
	tr := &http.Transport{Proxy: nil}
	proxy.Transport = tr
	h, err := dashboard.New(cfg, dashboard.Deps{API: proxy})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		h.Close()
		srv.Close()
		tr.CloseIdleConnections()
	})
	return h, srv.URL, client(t)
}

// event reads the next server-sent event.
func event(t *testing.T, r *bufio.Reader) (name, data string) {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the stream: %v", err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		case line == "" && name != "":
			return name, data
		}
	}
}

// streamsGone waits until no goroutine serves an event stream.
func streamsGone(t *testing.T, h *dashboard.Handler) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		n := h.Streams()
		if n == 0 && !strings.Contains(stacks, "dashboard.(*Handler).events") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("streams: %d open 5s after their pages went away, want 0; goroutines:\n%s", n, stacks)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
}

func TestEventsStreamUntilThePageGoes(t *testing.T) {
	h, base, c := streamServer(t, dashboard.Config{Interval: 100 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/ui/events?page=overview", nil)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" || resp.Header.Get("Content-Security-Policy") == "" {
		t.Fatalf("got %d %s, want 200 text/event-stream with the CSP", resp.StatusCode, ct)
	}
	r := bufio.NewReader(resp.Body)
	var times []time.Time
	for range 3 {
		name, data := event(t, r)
		var o dashboard.Overview
		if name != "update" || json.Unmarshal([]byte(data), &o) != nil {
			t.Fatalf("event %s %.200s, want an update with the overview", name, data)
		}
		times = append(times, o.Time)
	}
	if !times[2].After(times[0]) {
		t.Errorf("updates at %v, want each newer", times)
	}
	if n := h.Streams(); n != 1 {
		t.Errorf("streams open: got %d, want 1", n)
	}
	cancel() // the page goes away
	streamsGone(t, h)
}

func TestEventsEndWhenTheDashboardCloses(t *testing.T) {
	h, base, c := streamServer(t, dashboard.Config{Interval: time.Hour, MaxStreams: 1})
	resp, err := c.Get(base + "/ui/events?page=alarms")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	if name, _ := event(t, r); name != "update" {
		t.Fatalf("first event %q, want update", name)
	}
	// One stream at most: the next is refused, and says why.
	resp2, body := do(t, c, http.MethodGet, base+"/ui/events?page=overview")
	if resp2.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "too many dashboard pages open") {
		t.Errorf("second stream: got %d %s, want 503 too many", resp2.StatusCode, body)
	}
	h.Close()
	if _, err := io.Copy(io.Discard, r); err != nil {
		t.Errorf("stream after Close: %v, want its end", err)
	}
	streamsGone(t, h)
}

func TestEventsRefuseBadPages(t *testing.T) {
	_, base, c := streamServer(t, dashboard.Default())
	for path, want := range map[string]string{
		"/ui/events":                          `page=\"\"`,
		"/ui/events?page=traces":              `page=\"traces\"`,
		"/ui/events?page=service&name=Nope!":  `"field": "service"`,
		"/ui/events?page=overview&window=1ms": `"field": "window"`,
	} {
		resp, body := do(t, c, http.MethodGet, base+path)
		if resp.StatusCode != 400 || !strings.Contains(body, want) {
			t.Errorf("GET %s: got %d %s, want 400 with %s", path, resp.StatusCode, body, want)
		}
	}
}

func TestNewChecksItsConfig(t *testing.T) {
	if _, err := dashboard.New(dashboard.Default(), dashboard.Deps{}); err == nil || !strings.Contains(err.Error(), "API") {
		t.Errorf("New without an API: got %v, want an error naming it", err)
	}
	if _, err := dashboard.New(dashboard.Config{Interval: time.Millisecond}, dashboard.Deps{API: http.NewServeMux()}); err == nil {
		t.Error("New with a 1ms interval: no error")
	}
}

func TestFiguresAskForTheAPIToken(t *testing.T) {
	cp := startControl(t)
	if cp.auth["Authorization"] == "" {
		t.Skip("this control plane's API asks for no token")
	}
	c := client(t)
	base := "http://" + cp.addr
	token := strings.TrimPrefix(cp.auth["Authorization"], "Bearer ")
	cookie := func(v string) map[string]string { return map[string]string{"Cookie": dashboard.TokenCookie + "=" + v} }
	cases := []struct {
		name, path string
		header     map[string]string
		code       int
		want       string
	}{
		{"page without the token", "/ui/", nil, 200, "<script"},
		{"script without the token", "/ui/js/app.js", nil, 200, "import"},
		{"figures without the token", "/ui/api/overview", nil, 401, "needs this control plane's API token"},
		{"stream without the token", "/ui/events?page=overview", nil, 401, "file api-token"},
		{"session without the token", "/ui/api/session", nil, 401, "API token"},
		{"wrong cookie", "/ui/api/overview", cookie("nope"), 401, "wrong API token"},
		{"wrong bearer", "/ui/api/overview", map[string]string{"Authorization": "Bearer nope"}, 401, "wrong API token"},
		{"cookie", "/ui/api/session", cookie(token), 200, `"authorized": true`},
		{"bearer", "/ui/api/overview", cp.auth, 200, `"services"`},
	}
	for _, tc := range cases {
		resp, body := do(t, c, http.MethodGet, base+tc.path, tc.header)
		if resp.StatusCode != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s: got %d %.200s, want %d with %q", tc.name, resp.StatusCode, body, tc.code, tc.want)
		}
		if strings.Contains(body, token) {
			t.Errorf("%s: the answer shows the token", tc.name)
		}
	}
}
