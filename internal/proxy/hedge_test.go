package proxy

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/snapshot"
)

// TestHedgingEveryEngine: with hedging after 30 ms, a request whose
// first try goes to an instance that takes 2 s is sent to the other
// instance too, and the fast answer is relayed, on every engine: HTTP/1.1
// GETs, HTTP/2 GETs and gRPC-shaped POSTs whose body is kept and sent
// again. Round robin sends every other request to the slow instance
// first, so half of them are hedged; the slow attempts are dropped
// (their handlers see the cancellation), and nothing stays in flight.
func TestHedgingEveryEngine(t *testing.T) {
	for _, c := range []struct {
		engine string
		grpc   bool
	}{{"h1", false}, {"weft", false}, {"weft", true}, {"x/net", false}, {"x/net", true}} {
		name := c.engine
		if c.grpc {
			name += "/grpc"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var slowHits, slowGone, fastHits atomic.Int64
			echo := func(w http.ResponseWriter, r *http.Request, who string) {
				body, _ := io.ReadAll(r.Body)
				if c.grpc {
					w.Header().Set("Content-Type", "application/grpc")
					w.Header().Set("Trailer", "Grpc-Status")
				}
				w.Write([]byte(who + ":" + string(body)))
				if c.grpc {
					w.Header().Set("Grpc-Status", "0")
				}
			}
			slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				slowHits.Add(1)
				select {
				case <-time.After(2 * time.Second):
				case <-r.Context().Done():
					slowGone.Add(1)
					return
				}
				echo(w, r, "slow")
			})
			fast := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fastHits.Add(1)
				echo(w, r, "fast")
			})
			p := testPolicy()
			p.Resource = "TrafficPolicy/svc"
			p.Timeouts.Request = 5 * time.Second
			p.Hedging = snapshot.Hedging{Enabled: true, Delay: 30 * time.Millisecond, MaxPercent: 100}
			p.Retries.Budget = snapshot.RetryBudget{Percent: 100, MinPerSecond: 1000, Window: 10 * time.Second}
			svc := &snapshot.Service{Name: "svc", Policy: p, Endpoints: []snapshot.Endpoint{
				{Instance: "svc-slow", Address: serveH2C(t, slow), Ready: true},
				{Instance: "svc-fast", Address: serveH2C(t, fast), Ready: true},
			}}
			addr, rt, reg, table := policyOutbound(t, c.engine, svc)

			const requests = 8
			for i := range requests {
				var req *http.Request
				payload := strings.Repeat("x", 100+i)
				if c.grpc {
					req = newH2Request(t, http.MethodPost, addr, "svc", "/pkg.Svc/Get", bytes.NewReader([]byte(payload)))
					req.Header.Set("Content-Type", "application/grpc")
				} else {
					req = newH2Request(t, http.MethodGet, addr, "svc", "/", nil)
					payload = ""
				}
				start := time.Now()
				resp, body := h2Do(t, rt, req)
				took := time.Since(start)
				if resp.StatusCode != http.StatusOK || string(body) != "fast:"+payload {
					t.Fatalf("request %d: got %d %q, want 200 %q", i, resp.StatusCode, body, "fast:"+payload)
				}
				if took > time.Second {
					t.Fatalf("request %d took %v: the slow instance's answer, not the hedge's", i, took)
				}
			}
			won := sample(t, reg, "weft_hedges_total", "service", "svc", "outcome", "won")
			if slowHits.Load() < requests/2 || won != float64(slowHits.Load()) {
				t.Errorf("slow instance got %d first tries and %v hedges won, want at least %d, every one won by its hedge", slowHits.Load(), won, requests/2)
			}
			if fastHits.Load() != requests {
				t.Errorf("fast instance got %d requests, want %d (its own and the hedges)", fastHits.Load(), requests)
			}
			waitFor(t, 5*time.Second, "the slow attempts to be cancelled", func() bool { return slowGone.Load() == slowHits.Load() })
			settled(t, table, "svc")
		})
	}
}

// TestHedgingWhenATryFails: one instance resets every request after
// 100 ms, the other answers after 300 ms. Hedging after 30 ms, a request
// whose first try goes to the resetting instance is answered by its
// hedge, which takes over when the first try fails (won); one whose
// hedge goes there keeps its first try when the hedge fails (failed).
// Either way the answer is the slow instance's, with no retry, on every
// engine. The balancer is random, so both orders come up (all 16
// requests in one order: once in 30,000 runs).
func TestHedgingWhenATryFails(t *testing.T) {
	for _, engine := range engineNames {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			resets := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-time.After(100 * time.Millisecond):
					panic(http.ErrAbortHandler) // the connection (HTTP/1.1) or the stream (HTTP/2) is reset
				case <-r.Context().Done():
				}
			})
			answers := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-time.After(300 * time.Millisecond):
					w.Write([]byte("answered"))
				case <-r.Context().Done():
				}
			})
			p := testPolicy()
			p.LoadBalancer.Policy = "random"
			p.Resource = "TrafficPolicy/svc"
			p.Timeouts.Request = 5 * time.Second
			p.Hedging = snapshot.Hedging{Enabled: true, Delay: 30 * time.Millisecond, MaxPercent: 100}
			p.Retries.Budget = snapshot.RetryBudget{Percent: 100, MinPerSecond: 1000, Window: 10 * time.Second}
			// The resetting instance stays in: ejected after its fifth
			// reset, it would take only hedges, and every hedge would fail.
			p.OutlierDetection.Consecutive5xx, p.OutlierDetection.ConsecutiveGatewayErrors = 1000, 1000
			svc := &snapshot.Service{Name: "svc", Policy: p, Endpoints: []snapshot.Endpoint{
				{Instance: "svc-resets", Address: serveH2C(t, resets), Ready: true},
				{Instance: "svc-answers", Address: serveH2C(t, answers), Ready: true},
			}}
			addr, rt, reg, table := policyOutbound(t, engine, svc)
			const requests = 16
			for i := range requests {
				resp, body := h2Do(t, rt, newH2Request(t, http.MethodGet, addr, "svc", "/", nil))
				if resp.StatusCode != http.StatusOK || string(body) != "answered" {
					t.Fatalf("request %d: got %d %q, want 200 \"answered\"", i, resp.StatusCode, body)
				}
			}
			// (A hedge's outcome may be counted just after its answer went out.)
			var won, failed float64
			waitFor(t, 5*time.Second, "every hedge's outcome counted", func() bool {
				won = sample(t, reg, "weft_hedges_total", "service", "svc", "outcome", "won")
				failed = sample(t, reg, "weft_hedges_total", "service", "svc", "outcome", "failed")
				return won+failed >= requests
			})
			retries := sample(t, reg, "weft_retries_total", "service", "svc")
			if won+failed != requests || won == 0 || failed == 0 || retries != 0 {
				t.Errorf("hedges won %v, failed %v, retries %v; want %d in all, some of each, and no retry", won, failed, retries, requests)
			}
			settled(t, table, "svc")
		})
	}
}
