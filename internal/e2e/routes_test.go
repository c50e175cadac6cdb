package e2e

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtest"
)

// canaryFleet is a consumer and catalog's two instances, v1 and v2
// (labels version=v1 and version=v2), with a ServiceSubset for each.
func canaryFleet(t *testing.T) *fleet {
	t.Helper()
	m := meshtest.New(t)
	f := &fleet{m: m, cp: m.Control(), service: "catalog"}
	for _, v := range []string{"v1", "v2"} {
		id := "catalog-" + v
		app := m.App(id)
		f.apps = append(f.apps, app)
		f.providers = append(f.providers, m.Sidecar(f.cp, "--service", "catalog", "--id", id, "--app-port", app.Port, "--label", "version="+v))
	}
	f.consumer = m.Sidecar(f.cp, "--service", "web")
	waitEndpoints(t, f.consumer, "catalog", 2)
	apply(t, f, `apiVersion: weftmesh.io/v1alpha1
kind: ServiceSubset
metadata: {name: catalog-v1}
spec: {service: catalog, labels: {version: v1}}
---
apiVersion: weftmesh.io/v1alpha1
kind: ServiceSubset
metadata: {name: catalog-v2}
spec: {service: catalog, labels: {version: v2}}
`)
	return f
}

// apply applies a YAML stream with weft apply.
func apply(t *testing.T, f *fleet, yaml string) {
	t.Helper()
	file := writeFile(t, "resources.yaml", yaml)
	if out, errOut, code := f.m.Weft("apply", "-f", file, "--control", f.cp.Addr); code != 0 {
		t.Fatalf("apply: %s %s", out, errOut)
	}
}

// split is catalog's HTTPRoute sending v1 and v2 the given weights.
func split(v1, v2 int) string {
	return fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: catalog-split, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: catalog}]
  rules:
  - backendRefs:
    - {group: weftmesh.io, kind: ServiceSubset, name: catalog-v1, weight: %d}
    - {group: weftmesh.io, kind: ServiceSubset, name: catalog-v2, weight: %d}
`, v1, v2)
}

// routesInForce waits until the consumer's /config shows catalog's
// routes with backends that contain want.
func routesInForce(t *testing.T, f *fleet, want string) {
	t.Helper()
	f.m.Eventually(10*time.Second, func() (bool, string) {
		_, body := meshtest.Get("http://" + f.consumer.Admin + "/config")
		return strings.Contains(body, want), "consumer /config without " + want
	})
}

// TestWeightedCanary: a 90/10 split over 5,000 requests lands within 3
// points of 90/10; moving it to 0/100 under steady load takes effect in
// under a second after weft apply returns, and no request fails.
func TestWeightedCanary(t *testing.T) {
	t.Parallel()
	f := canaryFleet(t)
	apply(t, f, split(90, 10))
	routesInForce(t, f, `"catalog/catalog-v2 10"`)
	got := f.burst(5000, 8, "/")
	if got.byStatus["200"] != 5000 {
		t.Fatalf("statuses %v, want 5000 × 200", got.byStatus)
	}
	share := float64(got.byBody["instance=catalog-v2"]) / 5000
	if math.Abs(share-0.10) > 0.03 {
		t.Errorf("v2 got %.3f of 5000 requests (%v), want 0.10 ± 0.03", share, got.byBody)
	}

	// Steady load while the split moves to 0/100.
	c := meshtest.ProxyClient(f.consumer.Outbound)
	defer c.CloseIdleConnections()
	var stop atomic.Bool
	var mu sync.Mutex
	var failed []string
	var lastV1 time.Time
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				resp, err := c.Get("http://catalog/")
				if err != nil {
					mu.Lock()
					failed = append(failed, err.Error())
					mu.Unlock()
					continue
				}
				b := make([]byte, 64)
				n, _ := resp.Body.Read(b)
				resp.Body.Close()
				now := time.Now()
				mu.Lock()
				if resp.StatusCode != http.StatusOK {
					failed = append(failed, fmt.Sprint(resp.StatusCode, " ", resp.Header.Get("X-Weft-Error")))
				} else if string(b[:n]) == "instance=catalog-v1" {
					lastV1 = now
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(300 * time.Millisecond) // (load before the change: a window, not a synchronisation)
	apply(t, f, split(0, 100))
	applied := time.Now()
	f.m.Eventually(5*time.Second, func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return time.Since(lastV1) > time.Second, fmt.Sprintf("v1 still answered %s ago", time.Since(lastV1))
	})
	stop.Store(true)
	wg.Wait()
	if len(failed) > 0 {
		t.Errorf("%d requests failed while the split moved: %v", len(failed), failed[:min(len(failed), 5)])
	}
	if took := lastV1.Sub(applied); took > time.Second {
		t.Errorf("v1 answered %s after weft apply returned, want under 1s", took)
	}
	t.Logf("the last answer from v1 came %s after weft apply returned", lastV1.Sub(applied))
}

// TestHeaderRoute: a header match sends only matching requests to v2;
// others match the catch-all rule and go to v1.
func TestHeaderRoute(t *testing.T) {
	t.Parallel()
	f := canaryFleet(t)
	apply(t, f, `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: catalog-beta}
spec:
  parentRefs: [{group: "", kind: Service, name: catalog}]
  rules:
  - matches: [{headers: [{name: X-User, value: beta}]}]
    backendRefs: [{group: weftmesh.io, kind: ServiceSubset, name: catalog-v2}]
  - backendRefs: [{group: weftmesh.io, kind: ServiceSubset, name: catalog-v1}]
`)
	routesInForce(t, f, `header x-user=beta`)
	c := meshtest.ProxyClient(f.consumer.Outbound)
	defer c.CloseIdleConnections()
	for i := range 40 {
		req, _ := http.NewRequest(http.MethodGet, "http://catalog/", nil)
		want := "instance=catalog-v1"
		if i%2 == 0 {
			req.Header.Set("X-User", "beta")
			want = "instance=catalog-v2"
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 64)
		n, _ := resp.Body.Read(b)
		resp.Body.Close()
		if got := string(b[:n]); got != want {
			t.Fatalf("request %d (x-user beta: %v): %q, want %q", i, i%2 == 0, got, want)
		}
	}

	// Broken files change nothing: each is refused with the file, line,
	// resource and field, by the CLI and by the control plane's API, and
	// the route in force keeps its revision and its routing.
	before, _, _ := f.m.Weft("get", "httproute", "catalog-beta", "-o", "yaml", "--control", f.cp.Addr)
	good := `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: catalog-beta}
spec:
  parentRefs: [{group: "", kind: Service, name: catalog}]
  rules:
  - matches: [{headers: [{name: X-User, value: beta}]}]
    backendRefs: [{name: catalog, weight: 1}]
`
	for _, c := range []struct{ name, doc, want string }{
		{"invalid YAML", good + "  - matches: [{\n", "resources.yaml: document 1: yaml: line 9: did not find expected node content"},
		{"an unknown field", strings.Replace(good, "    backendRefs", "    backendRef", 1), `resources.yaml:8: HTTPRoute/catalog-beta: spec.rules[0].backendRef: unknown field "backendRef"`},
		{"a bad regular expression", strings.Replace(good, "value: beta}", "type: RegularExpression, value: \"be(ta\"}", 1),
			`resources.yaml:7: HTTPRoute/catalog-beta: spec.rules[0].matches[0].headers[0].value: "be(ta" is not a regular expression`},
		{"a weight that does not parse", strings.Replace(good, "weight: 1", "weight: heavy", 1), `resources.yaml:8: HTTPRoute/catalog-beta: spec.rules[0].backendRefs[0].weight:`},
	} {
		file := writeFile(t, "resources.yaml", c.doc)
		if _, errOut, code := f.m.Weft("apply", "-f", file, "--control", f.cp.Addr); code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("%s: apply exited %d with %q, want an error with %q", c.name, code, errOut, c.want)
		}
		status, body := f.cp.API(http.MethodPost, "/v1/resources", "application/yaml", strings.NewReader(c.doc))
		if status != http.StatusUnprocessableEntity || (!strings.Contains(string(body), `"field"`) && c.name != "invalid YAML") {
			t.Errorf("%s: the API answered %d %s, want 422 naming the field", c.name, status, body)
		}
	}
	if after, _, _ := f.m.Weft("get", "httproute", "catalog-beta", "-o", "yaml", "--control", f.cp.Addr); after != before {
		t.Errorf("the route in force changed after refused applies:\n%s\nwas\n%s", after, before)
	}

	// weft explain says the same, from web's sidecar.
	out, errOut, code := f.m.Weft("explain", "--control", f.cp.Addr, "--from", "web", "--to", "catalog", "GET", "/items", "-H", "X-User: beta")
	for _, want := range []string{"GET /items -H 'X-User: beta' from web/", "HTTPRoute/catalog-beta rule 0", "matches",
		"Decision: routed by HTTPRoute/catalog-beta rule 0", "Backend catalog/catalog-v2, 100% of requests", "catalog-v2"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("weft explain (exit %d, %s):\n%s\nwant %q in it", code, errOut, out, want)
		}
	}
	t.Logf("weft explain:\n%s", out)
	if strings.Contains(out, "catalog-v1 ") {
		t.Errorf("weft explain for a beta user lists v1 as a candidate:\n%s", out)
	}
	// And of a request already served, by its x-request-id.
	req, _ := http.NewRequest(http.MethodGet, "http://catalog/items", nil)
	req.Header.Set("X-User", "beta")
	req.Header.Set("X-Request-Id", "e2e-beta-1")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	out, errOut, code = f.m.Weft("explain", "--control", f.cp.Addr, "--from", "web", "--request-id", "e2e-beta-1")
	for _, want := range []string{"Request e2e-beta-1: GET /items from web/", "Decision: routed by HTTPRoute/catalog-beta rule 0",
		"Backend: catalog/catalog-v2", "Instance: catalog-v2 (1 attempt)", "Answer: 200 after"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("weft explain --request-id (exit %d, %s):\n%s\nwant %q in it", code, errOut, out, want)
		}
	}
	if _, errOut, code := f.m.Weft("explain", "--control", f.cp.Addr, "--from", "web", "--request-id", "never-sent"); code == 0 ||
		!strings.Contains(errOut, "none of the 1 sidecars of web sent request never-sent") {
		t.Errorf("explain of an id never sent: exit %d, %q", code, errOut)
	}
	out, _, code = f.m.Weft("explain", "--control", f.cp.Addr, "--from", "web", "--to", "catalog", "/items")
	for _, want := range []string{"no: no header x-user (want x-user=beta)", "Decision: routed by HTTPRoute/catalog-beta rule 1", "Backend catalog/catalog-v1"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("weft explain without the header (exit %d):\n%s\nwant %q in it", code, out, want)
		}
	}
}

// TestFaultInjection: a 50% abort answers its status to 50% (within 5
// points) of 2,000 requests; a delay adds its delay to every request it
// matches (compared with undelayed ones in the same run); a rule's
// timeouts bound a request the service's policy would let wait.
func TestFaultInjection(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "fltsvc", 1, nil, nil)
	apply(t, f, `apiVersion: weftmesh.io/v1alpha1
kind: Fault
metadata: {name: half-503}
spec: {abort: {httpStatus: 503, percent: 50}}
---
apiVersion: weftmesh.io/v1alpha1
kind: Fault
metadata: {name: slow-200ms}
spec: {delay: {fixedDelay: 200ms, percent: 100}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: fltsvc}
spec:
  parentRefs: [{group: "", kind: Service, name: fltsvc}]
  rules:
  - matches: [{path: {value: /flaky}}]
    filters: [{type: ExtensionRef, extensionRef: {group: weftmesh.io, kind: Fault, name: half-503}}]
  - matches: [{path: {value: /delayed}}]
    filters: [{type: ExtensionRef, extensionRef: {group: weftmesh.io, kind: Fault, name: slow-200ms}}]
  - matches: [{path: {value: /slow}}]
    timeouts: {request: 300ms}
  - backendRefs: [{name: fltsvc}]
`)
	f.m.Eventually(10*time.Second, func() (bool, string) {
		_, body := meshtest.Get("http://" + f.consumer.Admin + "/config")
		return strings.Contains(body, `"PathPrefix /slow"`), "consumer /config without the routes"
	})
	got := f.burst(2000, 8, "/flaky")
	aborted := got.byStatus["503 fault-injected"]
	if aborted+got.byStatus["200"] != 2000 {
		t.Fatalf("statuses %v, want only 200 and 503 fault-injected", got.byStatus)
	}
	if share := float64(aborted) / 2000; math.Abs(share-0.5) > 0.05 {
		t.Errorf("%.3f of 2,000 requests aborted, want 0.50 ± 0.05", share)
	}

	c := meshtest.ProxyClient(f.consumer.Outbound)
	defer c.CloseIdleConnections()
	timed := func(path string) (time.Duration, int) {
		start := time.Now()
		resp, err := c.Get("http://fltsvc" + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return time.Since(start), resp.StatusCode
	}
	var plain, delayed []time.Duration
	for range 10 {
		d, code := timed("/")
		plain = append(plain, d)
		dd, dcode := timed("/delayed")
		delayed = append(delayed, dd)
		if code != 200 || dcode != 200 {
			t.Fatalf("statuses %d and %d, want 200", code, dcode)
		}
	}
	for i := range delayed {
		if delayed[i] < 200*time.Millisecond {
			t.Errorf("a delayed request took %s, want at least the 200ms delay", delayed[i])
		}
	}
	t.Logf("median latency: %s plain, %s delayed", percentile(plain, 50), percentile(delayed, 50))
	// (Each delayed request took at least the 200ms, checked above; the
	// two medians are of different requests, so their difference may
	// fall a little short of it when the plain ones were slower.)
	if added := percentile(delayed, 50) - percentile(plain, 50); added < 150*time.Millisecond || added > 400*time.Millisecond {
		t.Errorf("the delay added %s at the median, want about 200ms", added)
	}

	start := time.Now()
	resp, err := c.Get("http://fltsvc/slow?d=3s")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if took := time.Since(start); resp.StatusCode != http.StatusGatewayTimeout || resp.Header.Get("X-Weft-Error") != "upstream-timeout" || took > 2*time.Second {
		t.Errorf("/slow under the rule's 300ms timeout: %d %q after %s, want 504 upstream-timeout in about 300ms", resp.StatusCode, resp.Header.Get("X-Weft-Error"), took)
	}
}
