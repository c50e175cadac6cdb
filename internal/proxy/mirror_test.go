package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/proxy/plan"
	"github.com/weftmesh/weft/internal/proxy/stdhttp"
	"github.com/weftmesh/weft/internal/snapshot"
)

// shadowApp is a mirror's app: it records what it gets and answers as
// mode says (answer, fail with 500, reset, or hang until released).
type shadowApp struct {
	mu      sync.Mutex
	got     []string // "METHOD PATH host=H x-env=E body=B"
	mode    string
	release chan struct{}
}

func (a *shadowApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	a.mu.Lock()
	a.got = append(a.got, fmt.Sprintf("%s %s host=%s x-env=%s body=%s", r.Method, r.URL.Path, r.Host, r.Header.Get("X-Env"), b))
	mode := a.mode
	a.mu.Unlock()
	switch mode {
	case "fail":
		http.Error(w, "shadow failed", http.StatusInternalServerError)
	case "reset":
		panic(http.ErrAbortHandler)
	case "hang":
		select {
		case <-a.release:
		case <-r.Context().Done():
		}
	}
	w.Write([]byte("from the shadow"))
}

func (a *shadowApp) seen() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.got...)
}

func (a *shadowApp) setMode(m string) {
	a.mu.Lock()
	a.mode = m
	a.mu.Unlock()
}

// A route rule's RequestMirror on every engine: each request the rule
// routes is answered by its backend, and a copy (Host marked -shadow,
// the rule's request edits, the same body) reaches the mirror; what the
// mirror does with it, answer, fail, reset or hang, never reaches the
// caller; copies past the bound in flight are shed and counted, and a
// body the engine cannot have whole (a chunked HTTP/1.1 one) is not
// copied.
func TestMirrorsEveryEngine(t *testing.T) {
	for _, engine := range engineNames {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			main := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				if r.Header.Get("Content-Type") == "application/grpc" {
					w.Header().Set("Content-Type", "application/grpc")
					w.Header().Set("Trailer", "Grpc-Status")
					w.Write(b)
					w.Header().Set("Grpc-Status", "0")
					return
				}
				fmt.Fprintf(w, "main %s x-env=%s body=%s", r.URL.Path, r.Header.Get("X-Env"), b)
			})
			shadow := &shadowApp{release: make(chan struct{})}
			svc := &snapshot.Service{Name: "svc", Policy: testPolicy(), Endpoints: []snapshot.Endpoint{
				{Instance: "svc-1", Address: serveH2C(t, main), Ready: true}},
				Routes: []snapshot.Route{{RouteRule: config.RouteRule{Route: "HTTPRoute/svc", PathType: config.PathPrefix, Path: "/",
					RequestHeaders: &config.HeaderModifier{Set: []config.HeaderValue{{Name: "x-env", Value: "canary"}}}},
					Mirrors: []snapshot.Mirror{{Backend: snapshot.Backend{Service: "shadow"}, Percent: 100}}}}}
			shadowSvc := &snapshot.Service{Name: "shadow", Policy: testPolicy(), Endpoints: []snapshot.Endpoint{
				{Instance: "shadow-1", Address: serveH2C(t, shadow), Ready: true}}}
			const bound = 2
			addr, rt, reg, _ := meshOutbound(t, engine, func(o *stdhttp.Outbound) { o.MaxMirrors = bound }, svc, shadowSvc)
			send := func(method, path, body string, grpc bool) {
				t.Helper()
				var rd io.Reader
				if body != "" {
					rd = strings.NewReader(body)
				}
				req := newH2Request(t, method, addr, "svc", path, rd)
				if grpc {
					req.Header.Set("Content-Type", "application/grpc")
				}
				resp, got := h2Do(t, rt, req)
				want := fmt.Sprintf("main %s x-env=canary body=%s", path, body)
				if grpc {
					want = body
				}
				if resp.StatusCode != http.StatusOK || string(got) != want {
					t.Fatalf("%s %s: got %d %q, want 200 %q", method, path, resp.StatusCode, got, want)
				}
			}
			sent := func() float64 {
				return sample(t, reg, "weft_mirrors_total", "service", "svc", "mirror", "shadow", "outcome", plan.MirrorSent)
			}

			// idle waits until no copy is in flight, so that the next
			// copies find room (at most bound go at once; more are shed).
			idle := func() {
				waitFor(t, 5*time.Second, "no copy in flight", func() bool {
					return sample(t, reg, "weft_requests_in_flight", "direction", "mirror", "service", "shadow") == 0
				})
			}

			// Answered by the mirror: the copies arrive as sent.
			send(http.MethodGet, "/items", "", false)
			send(http.MethodPost, "/orders", "order=1", false)
			want := []string{"GET /items host=svc-shadow x-env=canary body=", "POST /orders host=svc-shadow x-env=canary body=order=1"}
			if engine != "h1" {
				idle() // (the two copies above take the room there is)
				send(http.MethodPost, "/pkg.Svc/Get", "\x00\x00\x00\x00\x02hi", true)
				want = append(want, "POST /pkg.Svc/Get host=svc-shadow x-env=canary body=\x00\x00\x00\x00\x02hi")
			}
			waitFor(t, 15*time.Second, "the copies at the mirror", func() bool { return len(shadow.seen()) == len(want) })
			got := shadow.seen()
			slices.Sort(got) // (copies go in parallel)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("copies:\n%q\nwant\n%q", got, want)
			}
			waitFor(t, 5*time.Second, "the copies' answers counted", func() bool {
				return sample(t, reg, "weft_requests_total", "direction", "mirror", "destination_service", "shadow", "response_code", "200") == float64(len(want))
			})
			if s := sent(); s != float64(len(want)) {
				t.Errorf("counted %v sent, want %d", s, len(want))
			}

			// Failing or resetting: the caller sees none of it. (net/http's
			// client may send a reset GET again on a new connection.)
			for _, mode := range []string{"fail", "reset"} {
				idle()
				shadow.setMode(mode)
				before := len(shadow.seen())
				send(http.MethodGet, "/items", "", false)
				send(http.MethodPost, "/orders", "order=2", false)
				waitFor(t, 5*time.Second, "the copies at the mirror in mode "+mode, func() bool { return len(shadow.seen()) >= before+2 })
			}

			// Hanging: the caller is answered while the mirror holds its
			// copies; past the bound, copies are shed.
			idle()
			shadow.setMode("hang")
			shed := func() float64 {
				return sample(t, reg, "weft_mirrors_total", "service", "svc", "mirror", "shadow", "outcome", plan.MirrorBusy)
			}
			// (A reset copy above may have been shed while an earlier one
			// was still in flight: count from here.)
			before, total, shedBefore := len(shadow.seen()), sent(), shed()
			for i := range bound + 2 {
				send(http.MethodGet, fmt.Sprintf("/held/%d", i), "", false)
			}
			waitFor(t, 5*time.Second, "the held copies at the mirror", func() bool { return len(shadow.seen()) == before+bound })
			if busy := shed() - shedBefore; busy != 2 || sent() != total+bound {
				t.Errorf("with the mirror hanging: %v more sent and %v more shed, want %d and 2", sent()-total, busy, bound)
			}
			close(shadow.release)

			if engine == "h1" {
				// A chunked body is streamed: not mirrored, counted.
				req := newH2Request(t, http.MethodPost, addr, "svc", "/chunked", io.MultiReader(bytes.NewReader([]byte("a")), strings.NewReader("b")))
				req.ContentLength = -1
				if resp, got := h2Do(t, rt, req); resp.StatusCode != http.StatusOK || string(got) != "main /chunked x-env=canary body=ab" {
					t.Errorf("chunked: %d %q", resp.StatusCode, got)
				}
				if n := sample(t, reg, "weft_mirrors_total", "service", "svc", "mirror", "shadow", "outcome", plan.MirrorBodyStreamed); n != 1 {
					t.Errorf("chunked: %v counted body-streamed, want 1", n)
				}
			}
		})
	}
}

// Copies never touch the policy state of the service real callers use:
// a route that sends every request to subset v1 and mirrors it to a
// failing v2 of the same service does not open the service's breaker.
func TestMirrorsLeaveTheBreakerAlone(t *testing.T) {
	for _, engine := range engineNames {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("v1")) })
			failing := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "v2 fails", http.StatusInternalServerError)
			})
			p := testPolicy()
			p.Resource = "TrafficPolicy/svc"
			p.CircuitBreaker = snapshot.CircuitBreaker{FailureRatio: 0.5, MinRequests: 5, Window: 10 * time.Second, OpenFor: 30 * time.Second, HalfOpenRequests: 1}
			svc := &snapshot.Service{Name: "svc", Policy: p, Endpoints: []snapshot.Endpoint{
				{Instance: "svc-v1", Address: serveH2C(t, ok), Labels: map[string]string{"version": "v1"}, Ready: true},
				{Instance: "svc-v2", Address: serveH2C(t, failing), Labels: map[string]string{"version": "v2"}, Ready: true}},
				Routes: []snapshot.Route{{RouteRule: config.RouteRule{Route: "HTTPRoute/svc", PathType: config.PathPrefix, Path: "/"},
					Backends: []snapshot.Backend{{Service: "svc", Subset: "v1", Labels: map[string]string{"version": "v1"}, Weight: 1}},
					Mirrors:  []snapshot.Mirror{{Backend: snapshot.Backend{Service: "svc", Subset: "v2", Labels: map[string]string{"version": "v2"}}, Percent: 100}}}}}
			addr, rt, reg, _ := meshOutbound(t, engine, nil, svc)
			for i := range 40 {
				resp, body := h2Do(t, rt, newH2Request(t, http.MethodGet, addr, "svc", "/", nil))
				if resp.StatusCode != http.StatusOK || string(body) != "v1" {
					t.Fatalf("request %d: %d %q, want 200 from v1 (the mirror's failures must not open the breaker)", i, resp.StatusCode, body)
				}
			}
			waitFor(t, 5*time.Second, "the copies answered", func() bool {
				return sample(t, reg, "weft_requests_total", "direction", "mirror", "destination_service", "svc", "response_code", "500") == 40
			})
		})
	}
}
