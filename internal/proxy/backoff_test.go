package proxy

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/snapshot"
)

// TestRetryBackoffEveryEngine: a retry waits the policy's jittered
// backoff (retries.backoff, drawn from [0, ceiling)) on every engine.
// Three instances answer 503 to everything and each request is tried on
// all three, so it waits two backoffs of up to 400 ms: 200 ms each on
// average. Without the backoff the retries would follow at once.
func TestRetryBackoffEveryEngine(t *testing.T) {
	const ceiling = 400 * time.Millisecond
	const requests = 8
	for _, engine := range engineNames {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			var hits atomic.Int64
			unavailable := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				w.WriteHeader(http.StatusServiceUnavailable)
			})
			p := testPolicy()
			p.Resource = "TrafficPolicy/svc"
			p.Retries.Attempts = 3
			p.Retries.Backoff = snapshot.Backoff{Base: ceiling, Max: ceiling}
			p.Retries.Budget = snapshot.RetryBudget{Percent: 100, MinPerSecond: 1000, Window: 10 * time.Second}
			svc := &snapshot.Service{Name: "svc", Policy: p}
			for i := range 3 {
				svc.Endpoints = append(svc.Endpoints, snapshot.Endpoint{Instance: "svc-" + string(rune('1'+i)),
					Address: serveH2C(t, unavailable), Ready: true})
			}
			addr, rt, _, _ := policyOutbound(t, engine, svc)

			start := time.Now()
			for range requests {
				resp, _ := h2Do(t, rt, newH2Request(t, http.MethodGet, addr, "svc", "/", nil))
				if resp.StatusCode != http.StatusServiceUnavailable {
					t.Fatalf("got %d, want the last instance's 503", resp.StatusCode)
				}
			}
			perRetry := time.Since(start) / (2 * requests)
			if n := hits.Load(); n != 3*requests {
				t.Fatalf("the instances got %d requests, want %d (every request on all three)", n, 3*requests)
			}
			// 16 draws from [0, 400ms): their mean is under 80 ms about
			// once in 50,000 runs; with no backoff it is about 1 ms.
			if perRetry < 80*time.Millisecond || perRetry > ceiling {
				t.Errorf("%v per retry on average, want about %v (half the ceiling %v)", perRetry.Round(time.Millisecond), ceiling/2, ceiling)
			}
		})
	}
}
