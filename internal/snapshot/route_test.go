package snapshot

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/push"
)

// stateOf adds the resources of a YAML stream to st, as the control
// plane stores them.
func stateOf(t *testing.T, st push.State, yaml string) {
	t.Helper()
	rs, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if err := r.Validate(); err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		st[config.Key(r.Kind, r.Metadata.Name)] = b
	}
}

const canaryRoutes = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: catalog, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: catalog, port: 8080}]
  rules:
  - backendRefs: [{name: catalog, weight: 90}, {group: weftmesh.io, kind: ServiceSubset, name: catalog-v2, weight: 10}]
  - matches: [{headers: [{name: X-User, value: beta}]}]
    backendRefs: [{group: weftmesh.io, kind: ServiceSubset, name: catalog-v2}]
  - matches: [{path: {type: Exact, value: /items}}, {path: {type: PathPrefix, value: /items/long}}]
    backendRefs: [{group: weftmesh.io, kind: ServiceSubset, name: missing}]
---
apiVersion: weftmesh.io/v1alpha1
kind: ServiceSubset
metadata: {name: catalog-v2}
spec: {service: catalog, labels: {version: v2}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: catalog-grpc}
spec:
  parentRefs: [{group: "", kind: Service, name: catalog}]
  rules:
  - matches: [{method: {service: shop.Catalog, method: Get}}]
    backendRefs: [{name: catalog-next}]
`

// Routes reach their parent in Gateway API's precedence order, with
// subsets resolved and a missing one marked invalid.
func TestCompileRoutes(t *testing.T) {
	st := push.State{}
	k, v := instance(t, "catalog", "c1", "10.0.0.1:15006", true)
	st[k] = v
	stateOf(t, st, canaryRoutes)
	var c Compiler
	snap, problems := c.Compile(st, 1)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	var got []string
	for _, r := range snap.Services["catalog"].Routes {
		got = append(got, r.Route+" "+r.PathType+" "+r.Path)
	}
	want := []string{
		"GRPCRoute/catalog-grpc Exact /shop.Catalog/Get",
		"HTTPRoute/catalog Exact /items",
		"HTTPRoute/catalog PathPrefix /items/long",
		"HTTPRoute/catalog PathPrefix /", // one header match
		"HTTPRoute/catalog PathPrefix /",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("precedence:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	rs := snap.Services["catalog"].Routes
	if len(rs[3].Headers) != 1 || rs[3].Headers[0].Name != "x-user" {
		t.Errorf("the header rule: %+v, want x-user (lower case)", rs[3].Headers)
	}
	if b := rs[4].Backends; len(b) != 2 || b[1].Service != "catalog" || b[1].Labels["version"] != "v2" || b[1].Weight != 10 {
		t.Errorf("the split's backends: %+v, want catalog 90 and catalog's version=v2 subset 10", b)
	}
	if b := rs[1].Backends; len(b) != 1 || !strings.Contains(b[0].Invalid, "ServiceSubset/missing does not exist") {
		t.Errorf("a missing subset: %+v, want it invalid, named", b)
	}
}

// Two routes of one parent with a rule that matches the same requests:
// the one Gateway API's precedence puts first wins, and the other is
// named as never winning; rules that differ in any condition, or belong
// to another parent, do not conflict.
func TestRouteConflicts(t *testing.T) {
	rs, err := config.Parse([]byte(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: b-team}
spec:
  parentRefs: [{group: "", kind: Service, name: catalog}]
  rules:
  - matches: [{path: {value: /api/}, headers: [{name: X-User, value: beta}]}]
    backendRefs: [{name: catalog-v2}]
  - matches: [{path: {type: Exact, value: /api}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: a-team}
spec:
  parentRefs: [{group: "", kind: Service, name: catalog}]
  rules:
  - matches: [{path: {value: /api}, headers: [{name: x-user, value: beta}]}]
    backendRefs: [{name: catalog-v3}]
  - matches: [{path: {type: Exact, value: /api/}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: other}
spec:
  parentRefs: [{group: "", kind: Service, name: ratings}]
  rules:
  - matches: [{path: {value: /api}, headers: [{name: x-user, value: beta}]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	got := RouteConflicts(rs)
	want := `[HTTPRoute/b-team rule 0 on catalog (PathPrefix /api/, header x-user=beta): HTTPRoute/a-team rule 0 wins]`
	if fmt.Sprint(got) != want {
		t.Errorf("got %v, want %s", got, want)
	}
}
