package plan

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/endpoint"
	"github.com/weftmesh/weft/internal/push"
	"github.com/weftmesh/weft/internal/request"
	"github.com/weftmesh/weft/internal/security/authz"
	"github.com/weftmesh/weft/internal/snapshot"
)

// authzView is a request to an inbound whose reading allocates nothing.
type authzView struct {
	request.View
	method, path []byte
	headers      [][2][]byte
	grpc         bool
}

func (v *authzView) Method() []byte { return v.method }
func (v *authzView) Path() []byte   { return v.path }
func (v *authzView) GRPC() bool     { return v.grpc }
func (v *authzView) Header(name string) []byte {
	for _, h := range v.headers {
		if strings.EqualFold(string(h[0]), name) {
			return h[1]
		}
	}
	return nil
}

func from(source, method, path string, kv ...string) *authzView {
	v := &authzView{method: []byte(method), path: []byte(path)}
	if source != "" {
		v.headers = append(v.headers, [2][]byte{[]byte(SourceHeader), []byte(source)})
	}
	for i := 0; i+1 < len(kv); i += 2 {
		v.headers = append(v.headers, [2][]byte{[]byte(kv[i]), []byte(kv[i+1])})
	}
	return v
}

// matcherOf compiles service's matcher, as a sidecar does, from the
// resources of yaml pushed as the control plane stores them.
func matcherOf(t *testing.T, service, yaml string) *authz.Matcher {
	t.Helper()
	rs, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	st := push.State{}
	for _, r := range rs {
		b, _ := json.Marshal(r)
		st[config.Key(r.Kind, r.Metadata.Name)] = b
	}
	snap, problems := (&snapshot.Compiler{}).Compile(st, 1)
	if len(problems) > 0 {
		t.Fatalf("compile: %v", problems)
	}
	m, err := authz.Compile(service, snap.Authorization)
	if err != nil {
		t.Fatalf("authz.Compile: %v", err)
	}
	return m
}

const catalogPolicies = `
apiVersion: weftmesh.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: catalog}
spec:
  service: catalog
  rules:
  - from: [{service: web}, {service: ratings}]
    to: [{paths: ["/items", "/items/*"]}]
---
apiVersion: weftmesh.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: catalog-deny}
spec:
  service: catalog
  action: DENY
  rules:
  - from: [{service: ratings}]
`

// inboundCluster is the inbound of catalog with its authorization,
// counted in reg.
func inboundCluster(t *testing.T, reg *prometheus.Registry) (*Cluster, *Authorization) {
	t.Helper()
	sm := NewMetrics(reg).ForService("inbound", "catalog")
	c := NewCluster("catalog", []*Endpoint{}, 0, sm)
	a := NewAuthorization("catalog", sm)
	c.Authorize(a)
	return c, a
}

func TestRouteAuthorizes(t *testing.T) {
	reg := prometheus.NewRegistry()
	c, a := inboundCluster(t, reg)
	if c.Routed() {
		t.Fatalf("Routed with no matcher set: got true, want false (no route stage)")
	}
	a.Set(matcherOf(t, "catalog", catalogPolicies))
	if !c.Routed() {
		t.Fatalf("Routed with a matcher: got false, want true")
	}
	for _, tc := range []struct {
		name  string
		v     *authzView
		allow bool
		words string // the decision, in the record
	}{
		{"allowed source and path", from("web", "GET", "/items/1"), true, "allowed by AuthorizationPolicy/catalog rule 0"},
		{"deny wins over allow", from("ratings", "GET", "/items"), false, "denied by AuthorizationPolicy/catalog-deny rule 0"},
		{"no source", from("", "GET", "/items"), false, "denied: no rule of AuthorizationPolicy/catalog (ALLOW) matches"},
		{"a source that is no service name is unknown", from("Web!", "GET", "/items"), false, "denied: no rule of AuthorizationPolicy/catalog (ALLOW) matches"},
		{"path not allowed", from("web", "GET", "/admin"), false, "denied: no rule of AuthorizationPolicy/catalog (ALLOW) matches"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			routed, merr := c.Route(tc.v)
			if got := routed.Authorization(); got != tc.words {
				t.Errorf("Authorization: got %q, want %q", got, tc.words)
			}
			if tc.allow {
				if merr != nil || routed.Cluster != c {
					t.Fatalf("got %v to %v, want the request let through to its cluster", merr, routed.Cluster)
				}
				return
			}
			if merr == nil {
				t.Fatalf("got no error, want 403 denied")
			}
			if merr.Status != http.StatusForbidden || merr.Reason != ReasonDenied || merr.GRPCCode() != "7" || merr.Service != "catalog" {
				t.Errorf("got %d %s (gRPC %s) for %q, want 403 denied (gRPC 7) for catalog", merr.Status, merr.Reason, merr.GRPCCode(), merr.Service)
			}
			if !strings.Contains(merr.Message, tc.words) || !strings.Contains(merr.Message, `"catalog"`) {
				t.Errorf("message %q: want it to name the service and say %q", merr.Message, tc.words)
			}
		})
	}
	want := `
# HELP weft_authz_decisions_total Requests the inbound's AuthorizationPolicies decided on, by service and decision (allow or deny); none while no policy applies and the mesh default allows.
# TYPE weft_authz_decisions_total counter
weft_authz_decisions_total{decision="allow",service="catalog"} 1
weft_authz_decisions_total{decision="deny",service="catalog"} 4
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "weft_authz_decisions_total"); err != nil {
		t.Error(err)
	}

	// A change of policy takes effect at the next request; none in force
	// takes the route stage away again.
	changed := strings.Replace(catalogPolicies, "action: DENY\n  rules:\n  - from: [{service: ratings}]", "action: DENY\n  rules:\n  - from: [{service: web}]", 1)
	if changed == catalogPolicies {
		t.Fatal("the policy did not change")
	}
	a.Set(matcherOf(t, "catalog", changed))
	if _, merr := c.Route(from("ratings", "GET", "/items")); merr != nil {
		t.Errorf("after the change, ratings: got %v, want allowed", merr)
	}
	if _, merr := c.Route(from("web", "GET", "/items")); merr == nil || merr.Reason != ReasonDenied {
		t.Errorf("after the change, web: got %v, want denied", merr)
	}
	a.Set(nil)
	if c.Routed() {
		t.Errorf("Routed with the matcher taken away: got true, want false")
	}
}

func TestDeniedRequestIsRecordedWithTheRule(t *testing.T) {
	c, a := inboundCluster(t, prometheus.NewRegistry())
	c.RecordInto(&Recent{}, nil)
	a.Set(matcherOf(t, "catalog", catalogPolicies))
	for id, source := range map[string]string{"denied-1": "ratings", "allowed-1": "web"} {
		routed, merr := c.Route(from(source, "GET", "/items"))
		v := &Visit{Status: 200, Err: merr, Authorization: routed.Authorization(), Bytes: -1}
		if merr != nil {
			v.Status = merr.Status
		}
		c.RecordString(v, id, "GET", "/items", source)
	}
	for id, want := range map[string]string{"denied-1": "denied by AuthorizationPolicy/catalog-deny rule 0", "allowed-1": "allowed by AuthorizationPolicy/catalog rule 0"} {
		got, ok := c.recent.Find(id)
		if !ok || got.Authorization != want {
			t.Errorf("request %s: got %q (found %v), want %q", id, got.Authorization, ok, want)
		}
	}
	// An engine that passes only the error (a denial) still records why.
	_, merr := c.Route(from("ratings", "GET", "/items"))
	c.RecordString(&Visit{Status: 403, Err: merr, Bytes: -1}, "denied-2", "GET", "/items", "ratings")
	if got, _ := c.recent.Find("denied-2"); got.Authorization != "denied by AuthorizationPolicy/catalog-deny rule 0" || got.Error == nil || got.Error.Reason != ReasonDenied {
		t.Errorf("got authorization %q, error %+v; want the deny rule and reason denied", got.Authorization, got.Error)
	}
}

func TestRouteAuthorizedAllocatesNothing(t *testing.T) {
	c, a := inboundCluster(t, prometheus.NewRegistry())
	a.Set(matcherOf(t, "catalog", catalogPolicies))
	v := from("web", "GET", "/items/7", "x-user", "beta")
	var merr *MeshError
	var k Call
	if n := testing.AllocsPerRun(1000, func() {
		_, merr = c.Route(v)
		k.Init(c, v, time.Time{})
	}); n != 0 {
		t.Errorf("Route and Init of an allowed request: got %v allocations, want 0", n)
	}
	if k.authz != "allowed by AuthorizationPolicy/catalog rule 0" {
		t.Errorf("the call's decision: got %q, want allowed by AuthorizationPolicy/catalog rule 0", k.authz)
	}
	if merr != nil {
		t.Errorf("got %v, want allowed", merr)
	}
}

// A TCP connection is decided once, before its first attempt, by the
// peer its mutual TLS proved (ConnFrom), with the HTTP-only fields of
// the rules read as Istio reads them: catalog's ALLOW rule has paths,
// so it admits no connection; the DENY of ratings wins; a plain
// connection names no source. A denial is 403 denied, counted and
// recorded with the peer and the decision.
func TestConnectionsAreAuthorized(t *testing.T) {
	reg := prometheus.NewRegistry()
	c, a := inboundCluster(t, reg)
	c.Endpoints = []*Endpoint{endpoint.New("catalog", "catalog-1", "127.0.0.1:1", nil)}
	c.RecordInto(&Recent{}, nil)
	var k Call
	k.Init(c, ConnFrom("web"), time.Time{})
	if ep := k.Next(); ep == nil {
		t.Fatalf("no policy: got no endpoint, want catalog-1")
	}
	k.Clear()

	a.Set(matcherOf(t, "catalog", catalogPolicies+`---
apiVersion: weftmesh.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: catalog-tcp}
spec: {service: catalog, rules: [{from: [{service: web}]}]}
`))
	for _, tc := range []struct {
		name, peer string
		allow      bool
		message    string // (the denial's)
	}{
		{"an ALLOW rule by source admits web", "web", true, ""},
		{"deny wins over allow", "ratings", false, `a TCP connection from service "ratings" to "catalog" is denied by AuthorizationPolicy/catalog-deny rule 0`},
		{"an ALLOW rule with paths admits no connection", "reviews", false,
			`a TCP connection from service "reviews" to "catalog" is denied: no rule of AuthorizationPolicy/catalog, AuthorizationPolicy/catalog-tcp (ALLOW) matches (a rule with to or when never matches a TCP connection)`},
		{"a plain connection names no source", "", false, `a TCP connection that names no calling service (not mutual TLS) to "catalog" is denied: no rule`},
		{"a peer that is no service name is none", "Web!", false, "names no calling service"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var k Call
			k.Init(c, ConnFrom(tc.peer), time.Time{})
			ep := k.Next()
			if tc.allow {
				if ep == nil {
					t.Fatalf("got %v, want catalog-1", k.Result())
				}
				if k.authz != "" {
					t.Errorf("the call's decision: got %q, want none (a connection's is its own)", k.authz)
				}
				return
			}
			if ep != nil {
				t.Fatalf("got %s, want the connection refused before any attempt", ep.Instance)
			}
			merr := k.Result()
			if merr.Status != http.StatusForbidden || merr.Reason != ReasonDenied || !strings.Contains(merr.Message, tc.message) {
				t.Fatalf("got %d %s %q, want 403 denied saying %q", merr.Status, merr.Reason, merr.Message, tc.message)
			}
			if !strings.HasPrefix(merr.Authorization(), "denied") {
				t.Errorf("Authorization: got %q, want the denial", merr.Authorization())
			}
		})
	}
	want := `
# HELP weft_authz_decisions_total Requests the inbound's AuthorizationPolicies decided on, by service and decision (allow or deny); none while no policy applies and the mesh default allows.
# TYPE weft_authz_decisions_total counter
weft_authz_decisions_total{decision="allow",service="catalog"} 1
weft_authz_decisions_total{decision="deny",service="catalog"} 4
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "weft_authz_decisions_total"); err != nil {
		t.Error(err)
	}

	// The record: the peer as the source, the decision, and the 403 of
	// the mesh error (nothing is sent: the connection is closed).
	k.Init(c, ConnFrom("ratings"), time.Time{})
	k.Next()
	c.RecordConn(Conn{Start: time.Now(), End: time.Now(), Err: k.Result(), Peer: "ratings"})
	c.RecordConn(Conn{Start: time.Now(), End: time.Now(), Endpoint: c.Endpoints[0], Peer: "web"})
	c.RecordConn(Conn{Start: time.Now(), End: time.Now(), Endpoint: c.Endpoints[0]})
	got := c.recent.Since(time.Time{}, 3)
	if len(got) != 3 {
		t.Fatalf("recorded %d connections, want 3", len(got))
	}
	if g := got[0]; g.Method != "TCP" || g.Source != "ratings" || g.Status != http.StatusForbidden || g.Error == nil || g.Error.Reason != ReasonDenied ||
		g.Authorization != "denied by AuthorizationPolicy/catalog-deny rule 0" {
		t.Errorf("the denied connection: got %+v, want TCP from ratings, 403 denied by AuthorizationPolicy/catalog-deny rule 0", g)
	}
	if g := got[1]; g.Source != "web" || g.Error != nil || g.Instance != "catalog-1" {
		t.Errorf("the allowed connection: got %+v, want TCP from web to catalog-1", g)
	}
	if g := got[2]; g.Source != UnknownSource {
		t.Errorf("a plain connection: got source %q, want %q", g.Source, UnknownSource)
	}
}

// ConnFrom's view carries only the peer, as SourceHeader; deciding on
// it allocates nothing, and a request's view is no connection.
func TestConnView(t *testing.T) {
	v := ConnFrom("web")
	if got := string(v.Header(SourceHeader)); got != "web" {
		t.Errorf("Header(%s): got %q, want web", SourceHeader, got)
	}
	if v.Method() != nil || v.Path() != nil || v.Header("x-user") != nil {
		t.Errorf("got method %q, path %q, x-user %q; want none", v.Method(), v.Path(), v.Header("x-user"))
	}
	if ConnFrom("") != request.None {
		t.Errorf("ConnFrom(\"\"): want request.None")
	}
	if _, conn := connPeer(from("web", "GET", "/")); conn {
		t.Errorf("a request's view taken for a connection")
	}
	c, a := inboundCluster(t, prometheus.NewRegistry())
	a.Set(matcherOf(t, "catalog", catalogPolicies+"---\napiVersion: weftmesh.io/v1alpha1\nkind: AuthorizationPolicy\n"+
		"metadata: {name: catalog-tcp}\nspec: {service: catalog, rules: [{from: [{service: web}]}]}\n"))
	var merr *MeshError
	if n := testing.AllocsPerRun(1000, func() { merr = c.authorizeConn(v) }); n != 0 {
		t.Errorf("authorizeConn of an allowed connection: got %v allocations, want 0", n)
	}
	if merr != nil {
		t.Errorf("got %v, want web's connection allowed", merr)
	}
}
