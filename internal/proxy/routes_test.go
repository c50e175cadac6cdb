package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/proxy/plan"
	"github.com/weftmesh/weft/internal/snapshot"
)

// TestRoutesEveryEngine: the route stage sends gRPC calls of one method,
// and requests with a header, to the v2 instance and the rest to v1, on
// every engine; a request no rule matches gets 404 no-route.
func TestRoutesEveryEngine(t *testing.T) {
	for _, engine := range engineNames {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			answer := func(who string) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					io.Copy(io.Discard, r.Body)
					if strings.HasPrefix(r.URL.Path, "/new") { // what a rewrite left
						fmt.Fprintf(w, "%s %s host=%s x-backend=%s", who, r.URL.RequestURI(), r.Host, r.Header.Get("X-Backend"))
						return
					}
					if r.URL.Path == "/edited" { // what the request's edits left
						w.Header().Set("X-Internal", "1")
						w.Header().Set("Cache-Control", "max-age=60")
						fmt.Fprintf(w, "%s %s|%s|%s", who, r.Header.Get("X-Env"), strings.Join(r.Header.Values("X-Tag"), ","), r.Header.Get("X-Secret"))
						return
					}
					if r.Header.Get("Content-Type") == "application/grpc" {
						w.Header().Set("Content-Type", "application/grpc")
						w.Header().Set("Trailer", "Grpc-Status")
						w.Write([]byte(who))
						w.Header().Set("Grpc-Status", "0")
						return
					}
					w.Write([]byte(who))
				})
			}
			v2 := []snapshot.Backend{{Service: "svc", Subset: "v2", Labels: map[string]string{"version": "v2"}, Weight: 1}}
			teapot := snapshot.Fault{Name: "teapot", AbortHTTP: http.StatusTeapot, AbortGRPC: 14, AbortPercent: 100}
			v1 := []snapshot.Backend{{Service: "svc", Subset: "v1", Labels: map[string]string{"version": "v1"}, Weight: 1}}
			svc := &snapshot.Service{Name: "svc", Policy: testPolicy(),
				Endpoints: []snapshot.Endpoint{
					{Instance: "svc-v1", Address: serveH2C(t, answer("v1")), Labels: map[string]string{"version": "v1"}, Ready: true},
					{Instance: "svc-v2", Address: serveH2C(t, answer("v2")), Labels: map[string]string{"version": "v2"}, Ready: true},
				},
				Routes: []snapshot.Route{
					{RouteRule: config.RouteRule{Route: "GRPCRoute/svc", GRPC: true, PathType: config.PathExact, Path: "/pkg.Svc/Get",
						ResponseHeaders: &config.HeaderModifier{Add: []config.HeaderValue{{Name: "x-method", Value: "get"}}}}, Backends: v2},
					{RouteRule: config.RouteRule{Route: "HTTPRoute/svc", Rule: 4, PathType: config.PathExact, Path: "/edited",
						RequestHeaders: &config.HeaderModifier{Set: []config.HeaderValue{{Name: "x-env", Value: "canary"}},
							Add: []config.HeaderValue{{Name: "x-tag", Value: "b"}}, Remove: []string{"x-secret"}},
						ResponseHeaders: &config.HeaderModifier{Set: []config.HeaderValue{{Name: "cache-control", Value: "no-store"}},
							Remove: []string{"x-internal"}}}, Backends: v1},
					{RouteRule: config.RouteRule{Route: "GRPCRoute/svc", Rule: 2, GRPC: true, PathType: config.PathExact, Path: "/pkg.Svc/Fail"},
						Faults: []snapshot.Fault{teapot}},
					{RouteRule: config.RouteRule{Route: "HTTPRoute/svc", Rule: 2, PathType: config.PathExact, Path: "/aborted"},
						Faults: []snapshot.Fault{teapot}},
					{RouteRule: config.RouteRule{Route: "HTTPRoute/svc", Rule: 3, PathType: config.PathExact, Path: "/delayed"}, Backends: v1,
						Faults: []snapshot.Fault{{Name: "slow", Delay: 150 * time.Millisecond, DelayPercent: 100}}},
					{RouteRule: config.RouteRule{Route: "HTTPRoute/svc", Rule: 5, PathType: config.PathPrefix, Path: "/old",
						Rewrite: &config.RouteRewrite{Hostname: "svc.internal", Path: &config.PathModifier{Type: config.ReplacePrefixMatch, Value: "/new"}}},
						Backends: []snapshot.Backend{{Service: "svc", Subset: "v1", Labels: map[string]string{"version": "v1"}, Weight: 1,
							RequestHeaders: &config.HeaderModifier{Set: []config.HeaderValue{{Name: "x-backend", Value: "v1"}}}}}},
					{RouteRule: config.RouteRule{Route: "HTTPRoute/svc", Rule: 6, PathType: config.PathExact, Path: "/moved",
						Redirect: &config.RouteRedirect{Hostname: "example.org", Status: http.StatusMovedPermanently,
							Path: &config.PathModifier{Type: config.ReplaceFullPath, Value: "/here"}}}},
					{RouteRule: config.RouteRule{Route: "HTTPRoute/svc", PathType: config.PathPrefix, Path: "/",
						Headers: []config.ValueMatch{{Name: "x-user", Value: "beta"}}}, Backends: v2},
					{RouteRule: config.RouteRule{Route: "HTTPRoute/svc", Rule: 1, PathType: config.PathPrefix, Path: "/app"}, Backends: v1},
					{RouteRule: config.RouteRule{Route: "GRPCRoute/svc", Rule: 1, GRPC: true, PathType: config.PathPrefix, Path: "/pkg.Svc"}, Backends: v1},
				}}
			addr, rt, _, _ := policyOutbound(t, engine, svc)
			send := func(method, path string, grpc bool, header ...string) (*http.Response, string) {
				t.Helper()
				var body io.Reader
				if grpc {
					body = bytes.NewReader([]byte{0, 0, 0, 0, 0})
				}
				req := newH2Request(t, method, addr, "svc", path, body)
				if grpc {
					req.Header.Set("Content-Type", "application/grpc")
				}
				for i := 0; i+1 < len(header); i += 2 {
					req.Header.Set(header[i], header[i+1])
				}
				resp, err := rt.RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				return resp, string(b)
			}
			for _, c := range []struct {
				name, method, path string
				grpc               bool
				header             []string
				want               string
			}{
				{"header", http.MethodGet, "/app/x", false, []string{"X-User", "beta"}, "v2"},
				{"no header", http.MethodGet, "/app/x", false, nil, "v1"},
				{"gRPC method", http.MethodPost, "/pkg.Svc/Get", true, nil, "v2"},
				{"another gRPC method", http.MethodPost, "/pkg.Svc/List", true, nil, "v1"},
			} {
				if engine == "h1" && c.grpc {
					continue // gRPC needs HTTP/2
				}
				resp, body := send(c.method, c.path, c.grpc, c.header...)
				if resp.StatusCode != http.StatusOK || body != c.want {
					t.Errorf("%s: %d %q, want 200 from %s", c.name, resp.StatusCode, body, c.want)
				}
			}
			resp, body := send(http.MethodGet, "/other", false)
			wantMeshError(t, resp, []byte(body), http.StatusNotFound, plan.ReasonNoRoute)

			// Faults: an abort (its gRPC status to a gRPC call), a delay.
			resp, body = send(http.MethodGet, "/aborted", false)
			wantMeshError(t, resp, []byte(body), http.StatusTeapot, plan.ReasonFault)
			if engine != "h1" {
				resp, _ = send(http.MethodPost, "/pkg.Svc/Fail", true)
				if st := resp.Header.Get("Grpc-Status") + resp.Trailer.Get("Grpc-Status"); st != "14" || resp.Header.Get(plan.HeaderError) != plan.ReasonFault {
					t.Errorf("a gRPC call's abort: grpc-status %q, %s %q; want 14, fault-injected", st, plan.HeaderError, resp.Header.Get(plan.HeaderError))
				}
			}
			// Header modifiers: on the request the instance gets, on the
			// response the client gets.
			resp, body = send(http.MethodGet, "/edited", false, "X-Env", "prod", "X-Tag", "a", "X-Secret", "s")
			if body != "v1 canary|a,b|" || resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("X-Internal") != "" {
				t.Errorf("edited: %q, cache-control %q, x-internal %q; want %q, no-store, none",
					body, resp.Header.Get("Cache-Control"), resp.Header.Get("X-Internal"), "v1 canary|a,b|")
			}
			if engine != "h1" {
				if resp, _ = send(http.MethodPost, "/pkg.Svc/Get", true); resp.Header.Get("X-Method") != "get" {
					t.Errorf("a gRPC rule's response header: x-method %q, want get", resp.Header.Get("X-Method"))
				}
			}
			// URLRewrite (path and host) with a backendRef's own header
			// modifier; RequestRedirect answered by the mesh.
			resp, body = send(http.MethodGet, "/old/items?q=1", false)
			if want := "v1 /new/items?q=1 host=svc.internal x-backend=v1"; body != want {
				t.Errorf("rewritten: %d %q, want %q", resp.StatusCode, body, want)
			}
			resp, body = send(http.MethodGet, "/moved?q=1", false)
			if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "http://example.org/here?q=1" ||
				resp.Header.Get(plan.HeaderError) != plan.ReasonRedirected {
				t.Errorf("redirected: %d, Location %q, %s %q; want 301 to http://example.org/here?q=1, redirected",
					resp.StatusCode, resp.Header.Get("Location"), plan.HeaderError, resp.Header.Get(plan.HeaderError))
			}
			start := time.Now()
			resp, body = send(http.MethodGet, "/delayed", false)
			if took := time.Since(start); resp.StatusCode != http.StatusOK || body != "v1" || took < 150*time.Millisecond {
				t.Errorf("delayed: %d %q after %s, want 200 from v1 after at least 150ms", resp.StatusCode, body, took)
			}
		})
	}
}
