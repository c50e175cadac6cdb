package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtest"
)

// An AuthorizationPolicy with real binaries: a DENY for one calling
// service gets it 403 denied at catalog's inbound while another caller
// passes; a changed policy is in force within a second; weft explain
// names the rule that decided, of a request served and of one asked
// about; catalog's sidecar counts the decisions.
func TestAuthorizationPolicy(t *testing.T) {
	t.Parallel()
	m := meshtest.New(t)
	cp := m.Control()
	app := m.App("catalog-1")
	provider := m.Sidecar(cp, "--service", "catalog", "--id", "catalog-1", "--app-port", app.Port)
	web := m.Sidecar(cp, "--service", "web")
	ratings := m.Sidecar(cp, "--service", "ratings")
	waitInstances(t, web, "catalog", 1)
	waitInstances(t, ratings, "catalog", 1)

	call := func(from *meshtest.Sidecar, id string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://catalog/items", nil)
		if id != "" {
			req.Header.Set("X-Request-Id", id)
		}
		resp, _, err := meshtest.ViaRequest(from.Outbound, req)
		if err != nil {
			t.Fatalf("GET http://catalog/items: %v", err)
		}
		return resp.StatusCode, resp.Header.Get("X-Weft-Error")
	}
	apply := func(denied string) {
		t.Helper()
		f := writeFile(t, "authz-"+denied+".yaml", `apiVersion: weftmesh.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: catalog-deny}
spec:
  service: catalog
  action: DENY
  rules:
  - from: [{service: `+denied+`}]
    to: [{methods: [GET], paths: ["/items", "/items/*"]}]
`)
		if out, errOut, code := m.Weft("apply", "-f", f, "--control", cp.Addr); code != 0 {
			t.Fatalf("weft apply (exit %d): %s %s", code, out, errOut)
		}
	}
	// wantDenied waits at most d for from's calls to be denied, and
	// other's to pass.
	wantDenied := func(from, other *meshtest.Sidecar, d time.Duration) {
		t.Helper()
		meshtest.Eventually(t, d, func() (bool, string) {
			code, reason := call(from, "")
			okCode, _ := call(other, "")
			return code == http.StatusForbidden && reason == "denied" && okCode == http.StatusOK,
				fmt.Sprintf("denied caller got %d %q, the other %d", code, reason, okCode)
		})
	}

	apply("ratings")
	wantDenied(ratings, web, 10*time.Second)
	if code, reason := call(ratings, "e2e-denied-1"); code != http.StatusForbidden || reason != "denied" {
		t.Fatalf("ratings: got %d %q, want 403 denied", code, reason)
	}

	// Of the request served: catalog's sidecar took it in and denied it.
	out, errOut, code := m.Weft("explain", "--control", cp.Addr, "--from", "catalog", "--request-id", "e2e-denied-1")
	for _, want := range []string{"Request e2e-denied-1: GET /items", "Taken in (inbound) from ratings", "Answer: 403",
		`Mesh error: denied: service "ratings" calling "catalog" is denied by AuthorizationPolicy/catalog-deny rule 0`} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("weft explain --request-id (exit %d, %s):\n%s\nwant %q in it", code, errOut, out, want)
		}
	}
	if _, body := meshtest.Get("http://" + provider.Admin + "/explain?request-id=e2e-denied-1"); !strings.Contains(body, `"authorization": "denied by AuthorizationPolicy/catalog-deny rule 0"`) {
		t.Errorf("catalog's admin /explain?request-id:\n%s\nwant the authorization decision in it", body)
	}
	if code, _ := call(web, "e2e-allowed-1"); code != http.StatusOK {
		t.Fatalf("web: got %d, want 200", code)
	}
	if _, body := meshtest.Get("http://" + provider.Admin + "/explain?request-id=e2e-allowed-1"); !strings.Contains(body, `"authorization": "allowed by the mesh-wide default (allow)"`) {
		t.Errorf("catalog's admin /explain?request-id of an allowed request:\n%s\nwant the authorization decision in it", body)
	}
	// Of a request asked about, from the caller's sidecar.
	out, errOut, code = m.Weft("explain", "--control", cp.Addr, "--from", "ratings", "--to", "catalog", "GET", "/items/7")
	for _, want := range []string{"authorization at the inbound of catalog: denied by AuthorizationPolicy/catalog-deny rule 0",
		`403 denied: service "ratings" calling "catalog" is denied by AuthorizationPolicy/catalog-deny rule 0`} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("weft explain --to (exit %d, %s):\n%s\nwant %q in it", code, errOut, out, want)
		}
	}
	out, _, _ = m.Weft("explain", "--control", cp.Addr, "--from", "web", "--to", "catalog", "/items")
	if !strings.Contains(out, "authorization at the inbound of catalog: allowed by the mesh-wide default (allow)") {
		t.Errorf("weft explain from web:\n%s\nwant it allowed by the default", out)
	}

	// The policy now names web: in force within a second of the apply.
	apply("web")
	start := time.Now()
	wantDenied(web, ratings, time.Second)
	t.Logf("the changed policy was in force %s after weft apply returned", time.Since(start))

	if n := provider.Metric(`weft_authz_decisions_total{decision="deny",service="catalog"}`); n < 2 {
		t.Errorf("catalog's weft_authz_decisions_total deny: got %v, want at least 2", n)
	}
	if n := provider.Metric(`weft_authz_decisions_total{decision="allow",service="catalog"}`); n < 1 {
		t.Errorf("catalog's weft_authz_decisions_total allow: got %v, want at least 1", n)
	}

	// Deleted: everyone passes again.
	if out, errOut, code := m.Weft("delete", "authorizationpolicy", "catalog-deny", "--control", cp.Addr); code != 0 {
		t.Fatalf("weft delete (exit %d): %s %s", code, out, errOut)
	}
	meshtest.Eventually(t, 10*time.Second, func() (bool, string) {
		code, reason := call(web, "")
		return code == http.StatusOK, fmt.Sprintf("web got %d %q", code, reason)
	})
}
