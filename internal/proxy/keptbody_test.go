package proxy

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/weftmesh/weft/internal/snapshot"
)

// TestRetryKeptBodyEveryEngine: retries.maxBufferedBody keeps a request
// body so that an idempotent request (PUT) or a gRPC call whose body has
// reached an instance that answered 503 (or UNAVAILABLE) goes to another
// instance whole; a body over the limit, and a POST, are answered with
// the failure as before. One instance fails everything, the other echoes
// the body; round robin sends every other first try to the failing one.
func TestRetryKeptBodyEveryEngine(t *testing.T) {
	const limit = 1000
	for _, engine := range engineNames {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			var failed atomic.Int64
			fails := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				failed.Add(1)
				if r.Header.Get("Content-Type") == "application/grpc" {
					w.Header().Set("Content-Type", "application/grpc")
					w.Header().Set("Grpc-Status", "14") // UNAVAILABLE, trailers-only
					return
				}
				w.WriteHeader(http.StatusServiceUnavailable)
			})
			echoes := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				if r.Header.Get("Content-Type") == "application/grpc" {
					w.Header().Set("Content-Type", "application/grpc")
					w.Header().Set("Trailer", "Grpc-Status")
					w.Write(b)
					w.Header().Set("Grpc-Status", "0")
					return
				}
				w.Write(b)
			})
			p := testPolicy()
			p.Resource = "TrafficPolicy/svc"
			p.Retries.MaxBufferedBody = limit
			// The failing instance stays in: the test counts on it.
			p.OutlierDetection.Consecutive5xx, p.OutlierDetection.ConsecutiveGatewayErrors = 1000, 1000
			p.Retries.Budget = snapshot.RetryBudget{Percent: 100, MinPerSecond: 1000, Window: 10e9}
			svc := &snapshot.Service{Name: "svc", Policy: p, Endpoints: []snapshot.Endpoint{
				{Instance: "svc-fails", Address: serveH2C(t, fails), Ready: true},
				{Instance: "svc-echoes", Address: serveH2C(t, echoes), Ready: true},
			}}
			addr, rt, _, table := policyOutbound(t, engine, svc)
			cases := []struct {
				name, method, ctype string
				size                int
				retried             bool
			}{
				{"PUT", http.MethodPut, "", 600, true},
				{"PUT over the limit", http.MethodPut, "", limit + 1, false},
				{"POST", http.MethodPost, "", 600, false},
			}
			if engine != "h1" {
				cases = append(cases, struct {
					name, method, ctype string
					size                int
					retried             bool
				}{"gRPC", http.MethodPost, "application/grpc", 600, true})
			}
			for _, c := range cases {
				before := failed.Load()
				var bad int64
				for i := range 4 {
					payload := strings.Repeat(string(rune('a'+i)), c.size)
					req := newH2Request(t, c.method, addr, "svc", "/", bytes.NewReader([]byte(payload)))
					if c.ctype != "" {
						req.Header.Set("Content-Type", c.ctype)
					}
					resp, body := h2Do(t, rt, req)
					ok := resp.StatusCode == http.StatusOK && string(body) == payload &&
						(c.ctype == "" || resp.Trailer.Get("Grpc-Status") == "0")
					if !ok {
						bad++
					}
				}
				hit := failed.Load() - before
				if hit == 0 {
					t.Fatalf("%s: no request reached the failing instance", c.name)
				}
				if c.retried && bad != 0 {
					t.Errorf("%s: %d of 4 answers were not the echo of the body, want every one retried whole", c.name, bad)
				}
				if !c.retried && bad != hit {
					t.Errorf("%s: %d failures relayed, %d first tries on the failing instance: want each relayed, none retried", c.name, bad, hit)
				}
			}
			settled(t, table, "svc")
		})
	}
}
