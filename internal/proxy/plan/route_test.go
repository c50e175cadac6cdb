package plan

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/push"
	"github.com/weftmesh/weft/internal/registry"
	"github.com/weftmesh/weft/internal/request"
	"github.com/weftmesh/weft/internal/snapshot"
)

// routedTable is a table compiled, as a sidecar compiles a push, from
// the resources of yaml and the instances given (service, id, labels).
func routedTable(t *testing.T, yaml string, instances ...registry.Instance) *Table {
	t.Helper()
	return routedTableWith(t, nil, nil, yaml, instances...)
}

// routedTableWith is routedTable with metrics m and mirrorer mr (either
// may be nil).
func routedTableWith(t *testing.T, m *Metrics, mr Mirrorer, yaml string, instances ...registry.Instance) *Table {
	t.Helper()
	st := push.State{}
	for i, in := range instances {
		in.Address = "127.0.0.1:" + string(rune('1'+i))
		in.Ready = true
		b, _ := json.Marshal(in)
		st[registry.Key(in.Service, in.ID)] = b
	}
	if yaml != "" {
		rs, err := config.Parse([]byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if err := r.Validate(); err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(r)
			st[config.Key(r.Kind, r.Metadata.Name)] = b
		}
	}
	var c snapshot.Compiler
	snap, problems := c.Compile(st, 1)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	tb := NewTable(m, Policy{})
	tb.SetMirrorer(mr)
	if errs := tb.Update(snap); len(errs) > 0 {
		t.Fatal(errs)
	}
	return tb
}

// routeView is a request for the route stage.
type routeView struct {
	request.View
	method, path string
	headers      map[string]string
	grpc         bool
}

func (v routeView) Method() []byte { return []byte(v.method) }
func (v routeView) Path() []byte   { return []byte(v.path) }
func (v routeView) GRPC() bool     { return v.grpc }
func (v routeView) Header(n string) []byte {
	if h, ok := v.headers[n]; ok {
		return []byte(h)
	}
	return nil
}

func get(path string, headers ...string) routeView {
	v := routeView{method: http.MethodGet, path: path, headers: map[string]string{}}
	for i := 0; i+1 < len(headers); i += 2 {
		v.headers[headers[i]] = headers[i+1]
	}
	return v
}

const testRoutes = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: catalog}
spec:
  parentRefs: [{group: "", kind: Service, name: catalog}]
  rules:
  - matches: [{path: {value: /api}}]
    backendRefs: [{name: catalog, weight: 90}, {group: weftmesh.io, kind: ServiceSubset, name: v2, weight: 10}]
  - matches:
    - headers: [{name: x-user, value: beta}]
    - queryParams: [{name: canary, type: RegularExpression, value: "y(es)?"}]
    - method: DELETE
      path: {type: RegularExpression, value: "/items/[0-9]+"}
    backendRefs: [{group: weftmesh.io, kind: ServiceSubset, name: v2}]
  - matches: [{path: {type: Exact, value: /gone}}]
    backendRefs: [{name: nowhere}]
  - matches: [{path: {type: Exact, value: /parent}}]
---
apiVersion: weftmesh.io/v1alpha1
kind: ServiceSubset
metadata: {name: v2}
spec: {service: catalog, labels: {version: v2}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: catalog}
spec:
  parentRefs: [{group: "", kind: Service, name: catalog}]
  rules:
  - matches: [{method: {service: shop.Catalog, method: Watch}}]
    backendRefs: [{group: weftmesh.io, kind: ServiceSubset, name: v2}]
`

func TestRouteMatches(t *testing.T) {
	tb := routedTable(t, testRoutes,
		registry.Instance{Service: "catalog", ID: "v1", Labels: map[string]string{"version": "v1"}},
		registry.Instance{Service: "catalog", ID: "v2", Labels: map[string]string{"version": "v2"}})
	parent := tb.Lookup("catalog")
	if !parent.Routed() {
		t.Fatal("catalog has routes: want Routed")
	}
	toV2 := func(v request.View) bool {
		t.Helper()
		r, merr := parent.Route(v)
		c := r.Cluster
		if merr != nil && merr.Reason == ReasonNoRoute {
			return false
		}
		if merr != nil {
			t.Fatalf("%+v: %v", v, merr)
		}
		return len(c.Endpoints) == 1 && c.Endpoints[0].Instance == "v2"
	}
	for _, c := range []struct {
		name string
		v    routeView
		v2   bool
	}{
		{"header", get("/", "x-user", "beta"), true},
		{"header, other value", get("/parent", "x-user", "alpha"), false},
		{"query by regex", get("/x?a=1&canary=yes"), true},
		{"query regex matches whole values", get("/x?canary=yess"), false},
		{"method and path regex", routeView{method: http.MethodDelete, path: "/items/42"}, true},
		{"path regex is whole", routeView{method: http.MethodDelete, path: "/items/42/x"}, false},
		{"gRPC method", routeView{method: http.MethodPost, path: "/shop.Catalog/Watch", grpc: true}, true},
		{"gRPC route, not gRPC", routeView{method: http.MethodPost, path: "/shop.Catalog/Watch"}, false},
	} {
		if got := toV2(c.v); got != c.v2 {
			t.Errorf("%s: to v2 %v, want %v", c.name, got, c.v2)
		}
	}
	// The default rule (PathPrefix /, no backends): the parent itself,
	// all its instances.
	if r, _ := parent.Route(get("/parent")); r.Cluster != parent {
		t.Errorf("a rule without backends: got %v, want the parent", r.Cluster)
	}
	if _, merr := parent.Route(get("/gone")); merr == nil || merr.Status != 500 || merr.Reason != ReasonInvalidBackend {
		t.Errorf("a backend that does not exist: %v, want 500 invalid-backend", merr)
	}
	// PathPrefix /api matches /api and /api/x, not /apix (which no
	// rule matches).
	for path, want := range map[string]bool{"/api": true, "/api/x": true, "/apix": false} {
		if _, merr := parent.Route(get(path)); (merr == nil) != want {
			t.Errorf("%s: routed %v (%v), want %v", path, merr == nil, merr, want)
		}
	}
}

// A 90/10 split lands within a point of 90/10 over 20,000 choices.
func TestRouteWeights(t *testing.T) {
	tb := routedTable(t, testRoutes,
		registry.Instance{Service: "catalog", ID: "v1", Labels: map[string]string{"version": "v1"}},
		registry.Instance{Service: "catalog", ID: "v2", Labels: map[string]string{"version": "v2"}})
	parent := tb.Lookup("catalog")
	const n = 20000
	subset := 0
	for range n {
		r, merr := parent.Route(get("/api/items"))
		c := r.Cluster
		if merr != nil {
			t.Fatal(merr)
		}
		if len(c.Endpoints) == 1 { // the subset (the whole service has two)
			subset++
		}
	}
	if share := float64(subset) / n; math.Abs(share-0.10) > 0.01 {
		t.Errorf("the v2 subset got %.3f of requests, want 0.10 ± 0.01", share)
	}
}

// A request no rule matches gets 404 no-route, naming the routes.
func TestNoRoute(t *testing.T) {
	tb := routedTable(t, `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: only-api}
spec:
  parentRefs: [{group: "", kind: Service, name: catalog}]
  rules: [{matches: [{path: {value: /api}}]}]
`, registry.Instance{Service: "catalog", ID: "c1"})
	_, merr := tb.Lookup("catalog").Route(get("/other"))
	if merr == nil || merr.Status != http.StatusNotFound || merr.Reason != ReasonNoRoute || merr.Message != "no rule of HTTPRoute/only-api matches GET /other" {
		t.Fatalf("got %+v, want 404 no-route naming HTTPRoute/only-api", merr)
	}
	if tb2 := routedTable(t, "", registry.Instance{Service: "catalog", ID: "c1"}); tb2.Lookup("catalog").Routed() {
		t.Error("a service without routes is Routed")
	}
}

const faultRoutes = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: catalog}
spec:
  parentRefs: [{group: "", kind: Service, name: catalog}]
  rules:
  - matches: [{path: {value: /abort}}]
    filters: [{type: ExtensionRef, extensionRef: {group: weftmesh.io, kind: Fault, name: half-abort}}]
  - matches: [{path: {value: /delay}}]
    filters: [{type: ExtensionRef, extensionRef: {group: weftmesh.io, kind: Fault, name: slow}}]
  - matches: [{path: {value: /missing}}]
    filters: [{type: ExtensionRef, extensionRef: {group: weftmesh.io, kind: Fault, name: nope}}]
  - matches: [{path: {value: /bounded}}]
    timeouts: {request: 300ms, backendRequest: 100ms}
    retry: {codes: [503], attempts: 1, backoff: 50ms}
---
apiVersion: weftmesh.io/v1alpha1
kind: Fault
metadata: {name: half-abort}
spec: {abort: {httpStatus: 418, grpcStatus: 14, percent: 50}}
---
apiVersion: weftmesh.io/v1alpha1
kind: Fault
metadata: {name: slow}
spec: {delay: {fixedDelay: 250ms, percent: 100}}
`

// Faults: an abort for half of the requests (its gRPC status for gRPC
// calls), a delay for all, a Fault that is not there; a rule's timeouts
// and retry override the service's.
func TestRouteFaultsAndOverrides(t *testing.T) {
	tb := routedTable(t, faultRoutes, registry.Instance{Service: "catalog", ID: "c1"})
	parent := tb.Lookup("catalog")
	aborted := 0
	const n = 4000
	for range n {
		_, merr := parent.Route(get("/abort"))
		if merr != nil {
			if merr.Status != 418 || merr.Reason != ReasonFault || merr.Message != `HTTPRoute/catalog rule 0: Fault/half-abort aborted the request with 418` {
				t.Fatalf("abort: %+v", merr)
			}
			aborted++
		}
	}
	if share := float64(aborted) / n; math.Abs(share-0.5) > 0.03 {
		t.Errorf("aborted %.3f of requests, want 0.50 ± 0.03", share)
	}
	for {
		if _, merr := parent.Route(routeView{method: http.MethodPost, path: "/abort", grpc: true}); merr != nil {
			if merr.GRPCCode() != "14" {
				t.Errorf("a gRPC call's abort: grpc-status %s, want 14", merr.GRPCCode())
			}
			break
		}
	}
	if r, merr := parent.Route(get("/delay")); merr != nil || r.Delay != 250*time.Millisecond || r.Cluster != parent {
		t.Errorf("delay: %v %v %v, want 250ms to the parent", r.Cluster, r.Delay, merr)
	}
	if _, merr := parent.Route(get("/missing")); merr == nil || merr.Status != 500 || merr.Reason != ReasonInvalidFilter ||
		!strings.Contains(merr.Message, "Fault/nope does not exist") {
		t.Errorf("a missing Fault: %+v, want 500 invalid-filter naming it", merr)
	}
	r, merr := parent.Route(get("/bounded"))
	c := r.Cluster
	if merr != nil || c == parent {
		t.Fatalf("bounded: %v %v, want the parent under the rule's overrides", c, merr)
	}
	if c.Overall != 300*time.Millisecond || c.Timeout != 100*time.Millisecond || !c.PerTry || c.MaxAttempts != 2 ||
		!c.RetryOn.Status(503) || c.RetryOn.Status(502) || !c.RetryOn.ConnectFailure || c.RetryBackoff.Base != 50*time.Millisecond {
		t.Errorf("the rule's overrides: overall %s, try %s (per try %v), attempts %d, retry 503 %v 502 %v, backoff %s",
			c.Overall, c.Timeout, c.PerTry, c.MaxAttempts, c.RetryOn.Status(503), c.RetryOn.Status(502), c.RetryBackoff.Base)
	}
	if len(c.Endpoints) != 1 || c.Endpoints[0] != parent.Endpoints[0] {
		t.Error("the overridden cluster does not share the parent's endpoints")
	}
}

// BenchmarkRouteTenRules: the route stage's cost for a request that the
// last of ten rules matches (bench/configs/routes-10.yaml).
func BenchmarkRouteTenRules(b *testing.B) {
	raw, err := os.ReadFile("../../../bench/configs/routes-10.yaml")
	if err != nil {
		b.Fatal(err)
	}
	t := &testing.T{}
	tb := routedTable(t, string(raw), registry.Instance{Service: "backend", ID: "b1"})
	c := tb.Lookup("backend")
	v := &bytesView{method: []byte("GET"), path: []byte("/")}
	b.ReportAllocs()
	for b.Loop() {
		if _, merr := c.Route(v); merr != nil {
			b.Fatal(merr)
		}
	}
}

// bytesView is a view that allocates nothing, as the engines' do.
type bytesView struct {
	request.View
	method, path []byte
}

func (v *bytesView) Method() []byte       { return v.method }
func (v *bytesView) Path() []byte         { return v.path }
func (v *bytesView) GRPC() bool           { return false }
func (v *bytesView) Header(string) []byte { return nil }

// A rule's header modifiers reach the engines as edits: fields set
// replace every value, removed ones go, added ones join those kept.
func TestRouteHeaderEdits(t *testing.T) {
	tb := routedTable(t, `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: catalog}
spec:
  parentRefs: [{group: "", kind: Service, name: catalog}]
  rules:
  - matches: [{path: {value: /edited}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: X-Env, value: canary}]
        add: [{name: X-Tag, value: b}]
        remove: [X-Secret]
    - type: ResponseHeaderModifier
      responseHeaderModifier: {set: [{name: Cache-Control, value: no-store}]}
  - matches: [{path: {value: /plain}}]
`, registry.Instance{Service: "catalog", ID: "c1"})
	parent := tb.Lookup("catalog")
	r, merr := parent.Route(get("/edited"))
	if merr != nil || r.Request == nil || r.Response == nil {
		t.Fatalf("got %+v %v, want request and response edits", r, merr)
	}
	h := http.Header{"X-Env": {"prod", "dev"}, "X-Tag": {"a"}, "X-Secret": {"s"}, "Accept": {"*/*"}}
	r.Request.Apply(h)
	want := http.Header{"X-Env": {"canary"}, "X-Tag": {"a", "b"}, "Accept": {"*/*"}}
	if fmt.Sprint(h) != fmt.Sprint(want) {
		t.Errorf("applied: %v, want %v", h, want)
	}
	for name, drops := range map[string]bool{"x-env": true, "X-SECRET": true, "x-tag": false, "accept": false} {
		if r.Request.Drops([]byte(name)) != drops || r.Request.DropsString(name) != drops {
			t.Errorf("Drops(%s) = %v, want %v", name, !drops, drops)
		}
	}
	var written []string
	r.Response.Each(func(n, v string) { written = append(written, n+": "+v) })
	if fmt.Sprint(written) != "[cache-control: no-store]" {
		t.Errorf("response edits write %v", written)
	}
	if r, _ := parent.Route(get("/plain")); r.Request != nil || r.Response != nil {
		t.Errorf("a rule without modifiers has edits %+v", r)
	}
}
