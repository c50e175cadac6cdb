package proxy

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/proxy/plan"
	"github.com/weftmesh/weft/internal/snapshot"
)

// Every engine names each request (x-request-id: the client's, or one
// it makes) and keeps what it did with it for weft explain --request-id:
// the rule, the backend, the instance, the attempts, the status, and the
// mesh's own answer when it made one.
func TestRequestIDsEveryEngine(t *testing.T) {
	for _, engine := range engineNames {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			answer := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprint(w, r.Header.Get("X-Request-Id"))
			})
			v1 := []snapshot.Backend{{Service: "svc", Subset: "v1", Labels: map[string]string{"version": "v1"}, Weight: 1}}
			svc := &snapshot.Service{Name: "svc", Policy: testPolicy(),
				Endpoints: []snapshot.Endpoint{{Instance: "svc-v1", Address: serveH2C(t, answer), Labels: map[string]string{"version": "v1"}, Ready: true}},
				Routes:    []snapshot.Route{{RouteRule: config.RouteRule{Route: "HTTPRoute/svc", PathType: config.PathPrefix, Path: "/app"}, Backends: v1}}}
			addr, rt, _, table := policyOutbound(t, engine, svc)
			send := func(path, id string) (*http.Response, string) {
				req := newH2Request(t, http.MethodGet, addr, "svc", path, nil)
				if id != "" {
					req.Header.Set("X-Request-Id", id)
				}
				resp, body := h2Do(t, rt, req)
				return resp, string(body)
			}
			if _, body := send("/app/items", "req-1"); body != "req-1" {
				t.Errorf("the instance got x-request-id %q, want the client's req-1", body)
			}
			_, made := send("/app/items", "")
			if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(made) {
				t.Errorf("the instance got x-request-id %q, want 32 hex digits made by the sidecar", made)
			}
			// An empty or oversized id is replaced, not passed on (nor
			// left out of the record and the access log).
			for _, bad := range []string{"", strings.Repeat("x", plan.MaxRequestID+1)} {
				req := newH2Request(t, http.MethodGet, addr, "svc", "/app/items", nil)
				req.Header["X-Request-Id"] = []string{bad}
				_, body := h2Do(t, rt, req)
				if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(string(body)) {
					t.Errorf("a client id of %d bytes: the instance got %q, want a new one of 32 hex digits", len(bad), body)
				}
			}
			if resp, _ := send("/other", "req-404"); resp.StatusCode != http.StatusNotFound {
				t.Fatalf("/other: %d, want 404 no-route", resp.StatusCode)
			}
			waitFor(t, 5*time.Second, "the requests recorded", func() bool { // (HTTP/2: once the stream has ended)
				for _, id := range []string{"req-1", made, "req-404"} {
					if _, ok := table.Recent().Find(id); !ok {
						return false
					}
				}
				return true
			})
			for _, id := range []string{"req-1", made} {
				got, ok := table.Recent().Find(id)
				if !ok || got.Rule != "HTTPRoute/svc rule 0" || got.Backend != "svc/v1" || got.Instance != "svc-v1" ||
					got.Attempts != 1 || got.Status != 200 || got.Method != "GET" || got.Path != "/app/items" || got.Service != "svc" || got.Error != nil {
					t.Errorf("request %s: got %+v (found %v), want GET /app/items routed by rule 0 to svc/v1, instance svc-v1, 1 attempt, 200", id, got, ok)
				}
			}
			if got, _ := table.Recent().Find("req-404"); got.Status != 404 || got.Error == nil || got.Error.Reason != plan.ReasonNoRoute {
				t.Errorf("the unrouted request: got %+v, want 404 with the no-route error", got)
			}
		})
	}
}
