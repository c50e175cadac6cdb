package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/proxy/plan"
	"github.com/weftmesh/weft/internal/proxy/stdhttp"
	"github.com/weftmesh/weft/internal/security/authz"
)

// authzMatcher compiles catalog's matcher from AuthorizationPolicies in
// YAML, as a sidecar does from a push.
func authzMatcher(t *testing.T, yaml string) *authz.Matcher {
	t.Helper()
	rs, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	var ps []config.Authorization
	for i := range rs {
		a, err := config.CompileAuthorizationPolicy(&rs[i])
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, a)
	}
	m, err := authz.Compile("catalog", ps)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

const denyRatings = `
apiVersion: weftmesh.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: catalog-deny}
spec:
  service: catalog
  action: DENY
  rules:
  - from: [{service: ratings}]
    to: [{paths: ["/items", "/items/*", "/catalog.Items/*"]}]
`

// authzInbound is catalog's inbound on engine in front of an app that
// answers HTTP/1.1 and h2c (gRPC-shaped when asked in gRPC), and the
// client a peer sidecar would be.
func authzInbound(t *testing.T, engine string) (*stdhttp.Inbound, string, http.RoundTripper, *prometheus.Registry, *plan.Recent) {
	t.Helper()
	app := serveH2C(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Type") == "application/grpc" {
			w.Header().Set("Content-Type", "application/grpc")
			w.Header().Set("Trailer", "Grpc-Status")
			io.Copy(w, r.Body)
			w.Header().Set("Grpc-Status", "0")
			return
		}
		fmt.Fprintf(w, "app %s from %s", r.URL.Path, r.Header.Get(plan.SourceHeader))
	}))
	reg := prometheus.NewRegistry()
	m := plan.NewMetrics(reg)
	in := stdhttp.NewInbound("catalog", "catalog-1", app, stdhttp.NewTransport(), m)
	recent := &plan.Recent{}
	in.RecordInto(recent, nil)
	t.Cleanup(in.CloseIdle)
	cfg := Config{Name: "inbound", Resolve: in.Resolve, H2: in, Metrics: m, Log: discard}
	var client http.RoundTripper
	switch engine {
	case "h1":
		tr := &http.Transport{}
		t.Cleanup(tr.CloseIdleConnections)
		client = tr
	default:
		h2 := stdhttp.NewH2CTransport()
		t.Cleanup(h2.CloseIdleConnections)
		in.Transport, in.H2 = h2, h2 // an h2c app
		cfg.H1 = in
		if engine == "weft" {
			cfg.H2Frames = in.RouteH2
		}
		client = newH2CClient(t)
	}
	return in, serveProxy(t, cfg), client, reg, recent
}

// A DENY policy on catalog's inbound, on every engine: the source it
// names gets 403 denied (a gRPC call, grpc-status 7 PERMISSION_DENIED),
// counted and recorded with the rule; another source passes; a change of
// policy takes effect at the next request, on the same connection.
func TestAuthorizationEveryEngine(t *testing.T) {
	for _, engine := range engineNames {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			in, addr, client, reg, recent := authzInbound(t, engine)
			send := func(source, path, id string) (*http.Response, []byte) {
				t.Helper()
				req := newH2Request(t, http.MethodGet, addr, "catalog", path, nil)
				req.Header.Set(plan.SourceHeader, source)
				req.Header.Set(plan.RequestIDHeader, id)
				return h2Do(t, client, req)
			}
			grpc := func(source string) *http.Response {
				t.Helper()
				req := newH2Request(t, http.MethodPost, addr, "catalog", "/catalog.Items/Get", bytes.NewReader([]byte("\x00\x00\x00\x00\x02hi")))
				req.Header.Set("Content-Type", "application/grpc")
				req.Header.Set("Te", "trailers")
				req.Header.Set(plan.SourceHeader, source)
				resp, _ := h2Do(t, client, req)
				return resp
			}
			if resp, body := send("ratings", "/items", "before-1"); resp.StatusCode != http.StatusOK {
				t.Fatalf("no policy yet: got %d %q, want 200", resp.StatusCode, body)
			}

			in.SetAuthorization(authzMatcher(t, denyRatings))
			resp, body := send("web", "/items/1", "web-1")
			if resp.StatusCode != http.StatusOK || string(body) != "app /items/1 from web" {
				t.Errorf("web: got %d %q, want 200 %q", resp.StatusCode, body, "app /items/1 from web")
			}
			resp, body = send("ratings", "/items/1", "ratings-1")
			wantMeshError(t, resp, body, http.StatusForbidden, plan.ReasonDenied)
			var e plan.MeshError
			_ = json.Unmarshal(body, &e)
			if want := `service "ratings" calling "catalog" is denied by AuthorizationPolicy/catalog-deny rule 0`; e.Message != want || e.Service != "catalog" {
				t.Errorf("body: got service %q message %q, want catalog and %q", e.Service, e.Message, want)
			}
			if resp, body := send("ratings", "/other", "ratings-2"); resp.StatusCode != http.StatusOK {
				t.Errorf("ratings on a path the rule does not name: got %d %q, want 200", resp.StatusCode, body)
			}
			if engine != "h1" {
				if resp := grpc("ratings"); resp.StatusCode != http.StatusOK || resp.Header.Get("Grpc-Status") != "7" || resp.Header.Get(plan.HeaderError) != plan.ReasonDenied {
					t.Errorf("gRPC from ratings: got %d grpc-status %q %s %q, want 200, grpc-status 7 and denied",
						resp.StatusCode, resp.Header.Get("Grpc-Status"), plan.HeaderError, resp.Header.Get(plan.HeaderError))
				}
				if resp := grpc("web"); resp.StatusCode != http.StatusOK || resp.Trailer.Get("Grpc-Status") != "0" {
					t.Errorf("gRPC from web: got %d grpc-status %q, want 200 and 0", resp.StatusCode, resp.Trailer.Get("Grpc-Status"))
				}
			}
			denied := 1.0
			if engine != "h1" {
				denied = 2
			}
			if n := sample(t, reg, "weft_authz_decisions_total", "service", "catalog", "decision", "deny"); n != denied {
				t.Errorf("weft_authz_decisions_total deny: got %v, want %v", n, denied)
			}
			if n := sample(t, reg, "weft_requests_total", "direction", "inbound", "source_service", "ratings", "response_code", "403"); n != 1 {
				t.Errorf("weft_requests_total inbound from ratings 403: got %v, want 1", n)
			}
			if got, ok := recent.Find("web-1"); !ok || got.Authorization != "allowed by the mesh-wide default (allow)" || got.Status != http.StatusOK {
				t.Errorf("record of the allowed request: got %+v (found %v), want 200 and the default", got, ok)
			}
			if got, ok := recent.Find("ratings-1"); !ok || got.Authorization != "denied by AuthorizationPolicy/catalog-deny rule 0" || got.Status != http.StatusForbidden {
				t.Errorf("record of the denied request: got %+v (found %v), want 403 and the deny rule", got, ok)
			}

			// The rule now names web: ratings passes, web is denied.
			in.SetAuthorization(authzMatcher(t, strings.Replace(denyRatings, "{service: ratings}", "{service: web}", 1)))
			if resp, body := send("ratings", "/items", "ratings-3"); resp.StatusCode != http.StatusOK {
				t.Errorf("after the change, ratings: got %d %q, want 200", resp.StatusCode, body)
			}
			resp, body = send("web", "/items", "web-2")
			wantMeshError(t, resp, body, http.StatusForbidden, plan.ReasonDenied)

			// No policy: everyone passes again.
			in.SetAuthorization(nil)
			if resp, body := send("web", "/items", "web-3"); resp.StatusCode != http.StatusOK {
				t.Errorf("no policy: got %d %q, want 200", resp.StatusCode, body)
			}
		})
	}
}

// The mesh-wide default deny, on the fast path: a caller with no
// sidecar (no x-weft-source) is denied unless an ALLOW rule names
// unknown callers.
func TestAuthorizationDefaultDeny(t *testing.T) {
	in, addr, client, _, _ := authzInbound(t, "h1")
	in.SetAuthorization(authzMatcher(t, `
apiVersion: weftmesh.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: mesh}
spec: {default: deny}
---
apiVersion: weftmesh.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: catalog-health}
spec:
  service: catalog
  rules: [{from: [{service: unknown}], to: [{methods: [GET], paths: [/healthz]}]}]
`))
	for _, tc := range []struct {
		path   string
		status int
	}{{"/healthz", http.StatusOK}, {"/items", http.StatusForbidden}} {
		resp, body := h2Do(t, client, newH2Request(t, http.MethodGet, addr, "catalog", tc.path, nil))
		if resp.StatusCode != tc.status {
			t.Errorf("GET %s with no source: got %d %q, want %d", tc.path, resp.StatusCode, body, tc.status)
		}
	}
}
