package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtest"
)

// fleet is a service with n instances (a test app and its sidecar each)
// and a consumer sidecar that calls it.
type fleet struct {
	m         *meshtest.Mesh
	cp        *meshtest.Control
	service   string
	apps      []*meshtest.App
	providers []*meshtest.Sidecar
	consumer  *meshtest.Sidecar
}

// newFleet starts a control plane, n instances of service (app flags
// appArgs, sidecar flags sidecarArgs) and a consumer, and waits until the
// consumer routes to all of them.
func newFleet(t *testing.T, service string, n int, appArgs, sidecarArgs []string) *fleet {
	t.Helper()
	m := meshtest.New(t)
	f := &fleet{m: m, cp: m.Control(), service: service}
	for i := range n {
		id := fmt.Sprintf("%s-%d", service, i)
		app := m.App(id, appArgs...)
		args := append([]string{"--service", service, "--id", id, "--app-port", app.Port}, sidecarArgs...)
		f.apps = append(f.apps, app)
		f.providers = append(f.providers, m.Sidecar(f.cp, args...))
	}
	f.consumer = m.Sidecar(f.cp, "--service", "client-"+service)
	waitEndpoints(t, f.consumer, service, n)
	return f
}

// apply applies a TrafficPolicy for the fleet's service and waits until
// the consumer runs with it (its /config shows balancer).
func (f *fleet) apply(t *testing.T, spec, balancer string) {
	t.Helper()
	applyPolicy(t, f.m, f.cp, f.consumer, f.service, spec, balancer)
}

// applyPolicy applies a TrafficPolicy for service and waits until
// consumer runs with it (its /config shows balancer).
func applyPolicy(t *testing.T, m *meshtest.Mesh, cp *meshtest.Control, consumer *meshtest.Sidecar, service, spec, balancer string) {
	t.Helper()
	doc := fmt.Sprintf("apiVersion: weftmesh.io/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: %s}\nspec:\n%s", service, spec)
	file := writeFile(t, "policy-"+service+".yaml", doc)
	if _, errOut, code := m.Weft("apply", "-f", file, "--control", cp.Addr); code != 0 {
		t.Fatalf("apply %s: %s", doc, errOut)
	}
	m.Eventually(10*time.Second, func() (bool, string) {
		p := serviceConfig(t, consumer, service).Policy
		return p.Balancer == balancer, fmt.Sprintf("consumer policy %+v, want balancer %s", p, balancer)
	})
}

// roundRobin makes service's balancer round robin, for tests that count
// where requests go.
func roundRobin(t *testing.T, m *meshtest.Mesh, cp *meshtest.Control, consumer *meshtest.Sidecar, service string) {
	t.Helper()
	applyPolicy(t, m, cp, consumer, service, "  loadBalancer: {policy: round-robin}\n", "round-robin")
}

type configEndpoint struct {
	Instance    string `json:"instance"`
	Health      string `json:"health"`
	Attempts    uint64 `json:"attempts"`
	Failures    uint64 `json:"failures"`
	EjectReason string `json:"ejectReason"`
	OpenConns   int    `json:"openConnections"`
}

type configService struct {
	Policy struct {
		Balancer string `json:"balancer"`
	} `json:"policy"`
	Endpoints []configEndpoint `json:"endpoints"`
}

// serviceView is the consumer's /config entry of the fleet's service.
func (f *fleet) serviceView(t *testing.T) configService {
	t.Helper()
	return serviceConfig(t, f.consumer, f.service)
}

// serviceConfig is a sidecar's /config entry of service.
func serviceConfig(t *testing.T, sc *meshtest.Sidecar, service string) configService {
	t.Helper()
	_, body := meshtest.Get("http://" + sc.Admin + "/config")
	var v struct {
		Services map[string]configService `json:"services"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("/config of %s: %v: %.300s", sc.Admin, err, body)
	}
	return v.Services[service]
}

// endpoint is the consumer's view of instance i.
func (f *fleet) endpoint(t *testing.T, i int) configEndpoint {
	t.Helper()
	id := fmt.Sprintf("%s-%d", f.service, i)
	for _, e := range f.serviceView(t).Endpoints {
		if e.Instance == id {
			return e
		}
	}
	return configEndpoint{Instance: id, Health: "absent"}
}

// fault sets the test app's fault (see testapp's /fault).
func fault(t *testing.T, app *meshtest.App, query string) {
	t.Helper()
	if code, body := meshtest.Get("http://" + app.Addr + "/fault?" + query); code != 200 {
		t.Fatalf("fault %s: %d %s", query, code, body)
	}
}

// tally counts the answers of concurrent requests by instance and status.
type tally struct {
	mu       sync.Mutex
	byBody   map[string]int
	byStatus map[string]int
	n        int
}

// burst sends n GETs of path to the fleet's service through the consumer
// from workers concurrent callers.
func (f *fleet) burst(n, workers int, path string) *tally {
	c := meshtest.ProxyClient(f.consumer.Outbound)
	defer c.CloseIdleConnections()
	tl := &tally{byBody: map[string]int{}, byStatus: map[string]int{}}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				status, body := "error", ""
				resp, err := c.Get("http://" + f.service + path)
				if err == nil {
					b := make([]byte, 256)
					k, _ := resp.Body.Read(b)
					resp.Body.Close()
					body = string(b[:k])
					status = fmt.Sprint(resp.StatusCode)
					if e := resp.Header.Get("X-Weft-Error"); e != "" {
						status += " " + e
					}
				} else {
					status = err.Error()
				}
				tl.mu.Lock()
				tl.n++
				tl.byStatus[status]++
				if status == "200" {
					tl.byBody[body]++
				}
				tl.mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return tl
}

// TestSlowInstanceGetsLittleTraffic: three instances, one answering 200
// ms slower. With the default balancer (P2C over peak-EWMA) it gets under
// 10% of 2,000 requests at 10 concurrent callers; once fast again it gets
// its share back within 30 s.
func TestSlowInstanceGetsLittleTraffic(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "slowsvc", 3, nil, nil)
	fault(t, f.apps[2], "delay=200ms")
	got := f.burst(2000, 10, "/")
	if got.byStatus["200"] != 2000 {
		t.Fatalf("answers %v, want 2000 × 200", got.byStatus)
	}
	slow := got.byBody["instance=slowsvc-2"]
	if slow >= 200 {
		t.Errorf("the slow instance got %d of 2000 requests (%v), want under 10%%", slow, got.byBody)
	}
	fault(t, f.apps[2], "")
	f.m.Eventually(30*time.Second, func() (bool, string) {
		got := f.burst(150, 3, "/")
		share := got.byBody["instance=slowsvc-2"]
		return share >= 25, fmt.Sprintf("the instance made fast again got %d of the last 150 requests (%v)", share, got.byBody)
	})
}

// TestFailingInstanceIsAvoided: three instances, one answering 503 at once
// to everything. With the default policy at least 99.9% of 2,000
// requests succeed (503 is retried on another instance), and the failing
// one gets under 5% of the attempts.
func TestFailingInstanceIsAvoided(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "failsvc", 3, nil, nil)
	fault(t, f.apps[0], "status=503")
	got := f.burst(2000, 10, "/")
	if ok := got.byStatus["200"]; ok < 1998 {
		t.Errorf("%d of 2000 requests succeeded (%v), want at least 99.9%%", ok, got.byStatus)
	}
	bad := f.endpoint(t, 0)
	if bad.Attempts >= 100 {
		t.Errorf("the failing instance got %d attempts (%+v), want under 5%% of 2000", bad.Attempts, bad)
	}
}

// TestHungInstanceIsEjected: one instance of three accepts requests and
// never answers. Requests to it time out as configured, it is ejected,
// and later requests succeed; over HTTP/1.1, HTTP/2 and gRPC.
func TestHungInstanceIsEjected(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		appArgs []string
		proto   string
		call    func(ctx context.Context, outbound, service string) meshAnswer
		ok      string
	}{
		{"HTTP/1.1", nil, "http", callHTTP1, "HTTP 200"},
		{"HTTP/2", []string{"--h2c"}, "h2c", callH2C, "HTTP 200"},
		{"gRPC", []string{"--grpc"}, "h2c", callGRPC, "gRPC OK"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			svc := "hang" + strings.NewReplacer("/", "", ".", "").Replace(strings.ToLower(c.name))
			m := meshtest.New(t)
			f := &fleet{m: m, cp: m.Control(), service: svc}
			for i := range 3 {
				args := c.appArgs
				if i == 0 {
					args = []string{"--hang", "--h2c"}
				}
				id := fmt.Sprintf("%s-%d", svc, i)
				app := m.App(id, args...)
				f.providers = append(f.providers, m.Sidecar(f.cp, "--service", svc, "--id", id, "--app-port", app.Port, "--app-protocol", c.proto))
			}
			f.consumer = m.Sidecar(f.cp, "--service", "client-"+svc)
			waitEndpoints(t, f.consumer, svc, 3)
			f.apply(t, "  timeouts: {request: 300ms}\n  outlierDetection: {consecutiveGatewayErrors: 1}\n", "peak-ewma")

			timedOut := 0
			for i := 0; i < 40; i++ {
				start := time.Now()
				got := c.call(context.Background(), f.consumer.Outbound, svc)
				if got.status != c.ok {
					timedOut++
					if took := time.Since(start); got.weftError != "upstream-timeout" || took > 2*time.Second {
						t.Fatalf("request %d: got %s after %s, want %s or upstream-timeout after about 300ms", i, got, took, c.ok)
					}
				}
			}
			if timedOut == 0 || timedOut > 4 {
				t.Errorf("%d of 40 requests timed out, want 1 to 4 (the hung instance tried early, and ejected at its first timeout)", timedOut)
			}
			if e := f.endpoint(t, 0); e.Health != "ejected" {
				t.Errorf("hung instance in the consumer's /config: %+v, want ejected", e)
			}
			series := fmt.Sprintf(`weft_outlier_ejections_total{reason="gateway-errors",service=%q}`, svc)
			if n := f.consumer.Metric(series); n < 1 {
				t.Errorf("%s = %g, want at least 1", series, n)
			}
		})
	}
}

// TestActiveCheckSeesAStoppedPeer: the registry still lists an instance
// whose sidecar is stopped (SIGSTOP: the kernel accepts connections, nothing
// answers); the consumer's own probes mark it down within three intervals,
// and it gets no traffic.
func TestActiveCheckSeesAStoppedPeer(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "probesvc", 2, nil, []string{"--lease-ttl", "60s"})
	f.apply(t, "  loadBalancer: {policy: round-robin}\n  healthCheck: {interval: 200ms, timeout: 100ms, unhealthyThreshold: 3, healthyThreshold: 1}\n", "round-robin")
	f.burst(20, 2, "/") // the consumer now uses both peers
	f.providers[1].Signal(syscall.SIGSTOP)
	defer f.providers[1].Signal(syscall.SIGCONT)
	stopped := time.Now()
	f.m.Eventually(5*time.Second, func() (bool, string) {
		e := f.endpoint(t, 1)
		return e.Health == "probe-down", fmt.Sprintf("%+v", e)
	})
	if n := f.consumer.Metric(`weft_endpoints{health="probe-down",service="probesvc"}`); n != 1 {
		t.Errorf("weft_endpoints probe-down = %g, want 1", n)
	}
	if took := time.Since(stopped); took > 3*200*time.Millisecond+500*time.Millisecond {
		t.Errorf("marked down after %s, want within about three intervals (600ms)", took)
	}
	got := f.burst(200, 4, "/")
	if got.byStatus["200"] != 200 || got.byBody["instance=probesvc-1"] != 0 {
		t.Errorf("with one peer stopped: %v %v, want 200 × 200 from probesvc-0", got.byStatus, got.byBody)
	}
	f.providers[1].Signal(syscall.SIGCONT)
	f.m.Eventually(5*time.Second, func() (bool, string) {
		e := f.endpoint(t, 1)
		return e.Health == "ready", fmt.Sprintf("after SIGCONT: %+v", e)
	})
}

// TestCircuitBreakerOpensAndCloses: the breaker opens when the failure
// ratio passes its threshold, fails fast with 503 circuit-open, half-opens
// after openFor and closes again once the instance recovers.
func TestCircuitBreakerOpensAndCloses(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "cbsvc", 1, nil, nil)
	f.apply(t, "  retries: {attempts: 1}\n  circuitBreaker: {failureRatio: 0.5, minRequests: 10, window: 10s, openFor: 1s, halfOpenRequests: 2}\n", "peak-ewma")
	fault(t, f.apps[0], "status=500")
	got := f.burst(10, 1, "/")
	if got.byStatus["500"] != 10 {
		t.Fatalf("before the breaker opens: %v, want 10 × 500 from the app", got.byStatus)
	}
	got = f.burst(10, 1, "/")
	if got.byStatus["503 circuit-open"] != 10 {
		t.Fatalf("breaker open: %v, want 10 × 503 circuit-open", got.byStatus)
	}
	fault(t, f.apps[0], "")
	f.m.Eventually(5*time.Second, func() (bool, string) {
		got := f.burst(5, 1, "/")
		return got.byStatus["200"] == 5, fmt.Sprintf("after recovery: %v", got.byStatus)
	})
}

// TestClientRateLimit: over a few seconds of overload the admitted rate
// stays within 10% of the configured one (plus the burst); the others get
// 429 rate-limited with Retry-After.
func TestClientRateLimit(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "rlsvc", 1, nil, nil)
	f.apply(t, "  rateLimit: {client: {requestsPerSecond: 50, burst: 5}}\n", "peak-ewma")
	c := meshtest.ProxyClient(f.consumer.Outbound)
	defer c.CloseIdleConnections()
	var ok, limited int
	start := time.Now()
	for time.Since(start) < 3*time.Second {
		resp, err := c.Get("http://rlsvc/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		switch {
		case resp.StatusCode == 200:
			ok++
		case resp.StatusCode == 429 && resp.Header.Get("X-Weft-Error") == "rate-limited" && resp.Header.Get("Retry-After") != "":
			limited++
		default:
			t.Fatalf("got %d %q", resp.StatusCode, resp.Header.Get("X-Weft-Error"))
		}
	}
	want := 50*time.Since(start).Seconds() + 5
	if float64(ok) < 0.9*want || float64(ok) > 1.1*want || limited == 0 {
		t.Errorf("admitted %d, limited %d in %s, want about %.0f admitted", ok, limited, time.Since(start).Round(time.Millisecond), want)
	}
}

// TestRetryBudgetBoundsRetries: with every instance failing, retries stay
// within the budget (20% of requests plus 10 per second over its 10 s
// window, by default).
func TestRetryBudgetBoundsRetries(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "budgetsvc", 2, nil, nil)
	for _, a := range f.apps {
		fault(t, a, "status=503")
	}
	start := time.Now()
	got := f.burst(500, 4, "/")
	took := time.Since(start).Seconds()
	if got.byStatus["503"] != 500 {
		t.Errorf("answers %v, want 500 × 503 from the apps", got.byStatus)
	}
	retries := f.consumer.Metric(`weft_retries_total{service="budgetsvc"}`)
	denied := f.consumer.Metric(`weft_retry_budget_exhausted_total{service="budgetsvc"}`)
	// 20% of the requests, plus the floor of 10 a second banked over the
	// budget's 10 s window.
	if limit := 0.2*500 + 10*10.0; retries > limit || retries < 0 || denied <= 0 {
		t.Errorf("%g retries (%g denied by the budget) for 500 requests in %.1fs, want at most %.0f and some denied", retries, denied, took, limit)
	}
}

// TestBadPolicyIsRefused: a policy with a bad field is refused naming the
// field, and the one in force stays.
func TestBadPolicyIsRefused(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "badsvc", 1, nil, nil)
	f.apply(t, "  loadBalancer: {policy: least-request}\n", "least-request")
	for _, c := range []struct{ spec, field string }{
		{"  timeouts: {request: -1s}\n", "spec.timeouts.request"},
		{"  loadBalancer: {policy: fastest}\n", "spec.loadBalancer.policy"},
		{"  retries: {budget: {percent: 150}}\n", "spec.retries.budget.percent"},
	} {
		doc := "apiVersion: weftmesh.io/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: badsvc}\nspec:\n" + c.spec
		_, errOut, code := f.m.Weft("apply", "-f", writeFile(t, "bad.yaml", doc), "--control", f.cp.Addr)
		if code == 0 || !strings.Contains(errOut, c.field) {
			t.Errorf("apply %q: exit %d, stderr %q; want a refusal naming %s", c.spec, code, errOut, c.field)
		}
	}
	if p := f.serviceView(t).Policy; p.Balancer != "least-request" {
		t.Errorf("policy in force after refused applies: %+v, want least-request", p)
	}
	if got := f.burst(20, 2, "/"); got.byStatus["200"] != 20 {
		t.Errorf("traffic after refused applies: %v", got.byStatus)
	}
}

// TestKilledInstanceAtSteadyRate: three instances at 200 requests/s, one
// killed with SIGKILL (sidecar and app): no request fails.
func TestKilledInstanceAtSteadyRate(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "killsvc", 3, nil, nil)
	c := meshtest.ProxyClient(f.consumer.Outbound)
	defer c.CloseIdleConnections()
	var failed []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	tick := time.NewTicker(5 * time.Millisecond) // 200 requests/s
	defer tick.Stop()
	start := time.Now()
	killed := false
	for now := range tick.C {
		if now.Sub(start) > 4*time.Second {
			break
		}
		if !killed && now.Sub(start) > time.Second {
			killed = true
			f.providers[1].Signal(syscall.SIGKILL)
			f.apps[1].Signal(syscall.SIGKILL)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Get("http://killsvc/")
			msg := ""
			if err != nil {
				msg = err.Error()
			} else {
				resp.Body.Close()
				if resp.StatusCode != 200 {
					msg = fmt.Sprintf("%d %s", resp.StatusCode, resp.Header.Get("X-Weft-Error"))
				}
			}
			if msg != "" {
				mu.Lock()
				failed = append(failed, msg)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(failed) > 0 {
		t.Errorf("%d requests failed around the SIGKILL: %v", len(failed), failed[:min(len(failed), 5)])
	}
}

// TestServerRateLimitAndFallback: the service's own sidecar limits what
// its inbound lets in (plain clients included), and with no ready
// instance callers get the policy's fallback answer.
func TestServerRateLimitAndFallback(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "srvsvc", 1, nil, []string{"--health-path", "/health"})
	f.apply(t, "  rateLimit: {server: {requestsPerSecond: 1, burst: 2}}\n"+
		"  fallback: {status: 200, headers: {content-type: application/json}, body: '{\"items\": []}'}\n", "peak-ewma")
	inbound := "http://" + f.providers[0].Inbound + "/"
	f.m.Eventually(10*time.Second, func() (bool, string) {
		var got []int
		for range 4 {
			code, _ := meshtest.Get(inbound)
			got = append(got, code)
		}
		return got[3] == http.StatusTooManyRequests, fmt.Sprintf("4 requests at once to the inbound: %v, want the last 429", got)
	})

	// The app fails its health check: no ready instance, the fallback.
	if code, _ := meshtest.Get("http://" + f.apps[0].Addr + "/sick"); code != 200 {
		t.Fatal("could not make the app sick")
	}
	f.m.Eventually(10*time.Second, func() (bool, string) {
		resp, body, err := meshtest.Via(f.consumer.Outbound, "srvsvc", "/")
		if err != nil {
			return false, err.Error()
		}
		return resp.StatusCode == 200 && body == `{"items": []}` && resp.Header.Get("X-Weft-Error") == "no-ready-instance",
			fmt.Sprintf("%d %q x-weft-error %q", resp.StatusCode, body, resp.Header.Get("X-Weft-Error"))
	})
}

// TestRateLimitEveryEngine: the client-side limit answers the same on
// HTTP/1.1, HTTP/2 and gRPC: 429 rate-limited, for gRPC a trailers-only
// UNAVAILABLE saying rate-limited.
func TestRateLimitEveryEngine(t *testing.T) {
	t.Parallel()
	m := meshtest.New(t)
	cp := m.Control()
	h2app := m.App("rlh-1", "--h2c")
	grpcApp := m.App("rlg-1", "--grpc")
	m.Sidecar(cp, "--service", "rlh", "--id", "rlh-1", "--app-port", h2app.Port, "--app-protocol", "h2c")
	m.Sidecar(cp, "--service", "rlg", "--id", "rlg-1", "--app-port", grpcApp.Port, "--app-protocol", "h2c")
	consumer := m.Sidecar(cp, "--service", "client-rl")
	waitEndpoints(t, consumer, "rlh", 1)
	waitEndpoints(t, consumer, "rlg", 1)
	limit := "  rateLimit: {client: {requestsPerSecond: 1, burst: 1}}\n"
	applyPolicy(t, m, cp, consumer, "rlh", limit, "peak-ewma")
	applyPolicy(t, m, cp, consumer, "rlg", limit, "peak-ewma")
	for _, c := range []struct {
		name, service string
		call          func(ctx context.Context, outbound, service string) meshAnswer
		ok, limited   string
	}{
		{"HTTP/1.1", "rlh", callHTTP1, "HTTP 200", "HTTP 429"},
		{"HTTP/2", "rlh", callH2C, "HTTP 200", "HTTP 429"},
		{"gRPC", "rlg", callGRPC, "gRPC OK", "gRPC Unavailable"},
	} {
		// Once a token is back, one call passes and the next, at once, is
		// refused.
		m.Eventually(5*time.Second, func() (bool, string) {
			got := c.call(context.Background(), consumer.Outbound, c.service)
			return got.status == c.ok, c.name + ": " + got.String()
		})
		got := c.call(context.Background(), consumer.Outbound, c.service)
		if got.status != c.limited || got.weftError != "rate-limited" {
			t.Errorf("%s, second call within the second: %s, want %s rate-limited", c.name, got, c.limited)
		}
	}
}

// TestServerRateLimitPerSource: rateLimit.server.perSource gives each
// calling service its own bucket on the provider's inbound: one caller
// over its burst gets 429 rate-limited naming it, while another is
// still let in.
func TestServerRateLimitPerSource(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "pssvc", 1, nil, nil)
	other := f.m.Sidecar(f.cp, "--service", "ps-other")
	waitEndpoints(t, other, "pssvc", 1)
	f.apply(t, "  rateLimit: {server: {perSource: {requestsPerSecond: 0.2, burst: 3}}}\n", "peak-ewma")
	// The provider applies the policy from its own push: until then the
	// caller is not limited.
	var body string
	f.m.Eventually(10*time.Second, func() (bool, string) {
		resp, b, err := meshtest.Via(f.consumer.Outbound, "pssvc", "/")
		if err != nil {
			return false, err.Error()
		}
		body = b
		return resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("X-Weft-Error") == "rate-limited",
			fmt.Sprintf("%d %q, want the caller limited", resp.StatusCode, b)
	})
	if !strings.Contains(body, `service \"client-pssvc\" is over its rate limit`) {
		t.Errorf("the refusal says %q, want it to name the calling service client-pssvc", body)
	}
	for i := range 3 {
		resp, b, err := meshtest.Via(other.Outbound, "pssvc", "/")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d from another service: %v %v %q, want 200 (its own bucket)", i, err, resp, b)
		}
	}
}

// TestMaxConnectionsQueuesThenOverflows: with maxConnections 2 and
// maxPendingRequests 2, eight concurrent HTTP/1.1 requests to an
// instance that takes a second each: two go at once, two wait for their
// connections and are answered after them, and four get 503
// circuit-open at once. The consumer never opens a third connection.
func TestMaxConnectionsQueuesThenOverflows(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "mcsvc", 1, nil, nil)
	f.apply(t, "  timeouts: {request: 10s}\n  circuitBreaker: {maxConnections: 2, maxPendingRequests: 2}\n", "peak-ewma")
	fault(t, f.apps[0], "delay=1s")
	start := time.Now()
	got := f.burst(8, 8, "/")
	took := time.Since(start)
	if got.byStatus["200"] != 4 || got.byStatus["503 circuit-open"] != 4 {
		t.Fatalf("eight at once: %v, want 4 × 200 and 4 × 503 circuit-open", got.byStatus)
	}
	if took < 2*time.Second {
		t.Errorf("the burst took %s, want at least 2s: the waiting requests go after the first two", took)
	}
	if e := f.endpoint(t, 0); e.OpenConns != 2 {
		t.Errorf("the consumer's /config: %+v, want 2 connections open to the instance", e)
	}
}
