package e2e

import (
	"fmt"
	"net/http"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtest"
)

// Sidecars with certificates speak mutual TLS to each other; a strict
// inbound refuses plain connections (a client without a sidecar, and a
// sidecar without a certificate) and says so in its log; certificates
// that rotate every few seconds under steady load lose no request.
func TestMutualTLSBetweenSidecars(t *testing.T) {
	t.Parallel()
	m := meshtest.New(t)
	cp := m.Control("--cert-ttl", "3s")
	app := m.App("echo-1")
	provider := m.Sidecar(cp, "--service", "echo", "--id", "echo-1", "--app-port", app.Port, "--mtls", "strict",
		"--join-token", createToken(t, m, cp, "--service", "echo", "--ttl", "1h"))
	consumer := m.Sidecar(cp, "--service", "client", "--join-token", createToken(t, m, cp, "--service", "client", "--ttl", "1h"))
	waitInstances(t, consumer, "echo", 1)
	mtls := func() float64 {
		return metricSum(provider.Admin, "weft_protocol_detections_total", `listener="inbound+mtls"`)
	}
	if n := mtls(); n < 1 {
		t.Fatalf("the provider took %v mutual-TLS connections, want the consumer's", n)
	}
	if n := metricSum(provider.Admin, "weft_requests_total", `direction="inbound"`, `source_service="client"`, `response_code="200"`); n < 1 {
		t.Errorf("the provider counted %v requests from client, want those sent", n)
	}

	// A client without a sidecar, and a sidecar without a certificate.
	if resp, err := http.Get("http://" + provider.Inbound + "/"); err == nil {
		resp.Body.Close()
		t.Errorf("plain GET to the strict inbound: got %d, want the connection refused", resp.StatusCode)
	}
	provider.WaitLog(t, regexp.MustCompile(`connection refused: this inbound takes only mutual TLS from peer sidecars \(strict mode\)`), 5*time.Second)
	plain := m.Sidecar(cp, "--service", "plain")
	m.Eventually(10*time.Second, func() (bool, string) {
		resp, body, err := meshtest.Via(plain.Outbound, "echo", "/")
		if err != nil {
			return false, err.Error()
		}
		return resp.StatusCode >= 500 && resp.Header.Get("X-Weft-Error") != "", fmt.Sprintf("%d %s", resp.StatusCode, body)
	})

	// Steady load while certificates rotate (3 s lives, renewed at about
	// 70%): at least two renewals on each side, and every request answered.
	renewals := func(s *meshtest.Sidecar) float64 {
		return metricSum(s.Admin, "weft_certificate_renewals_total", `outcome="success"`)
	}
	before := [2]float64{renewals(consumer), renewals(provider)}
	var sent, failed atomic.Int64
	var lastErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, body, err := meshtest.Via(consumer.Outbound, "echo", "/")
				sent.Add(1)
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
					lastErr.Store(fmt.Sprintf("%v %v %s", err, resp, body))
				}
			}
		}()
	}
	m.Eventually(20*time.Second, func() (bool, string) {
		c, p := renewals(consumer)-before[0], renewals(provider)-before[1]
		return c >= 2 && p >= 2, fmt.Sprintf("renewals since the load began: consumer %v, provider %v", c, p)
	})
	close(stop)
	wg.Wait()
	if f := failed.Load(); f != 0 || sent.Load() < 50 {
		t.Errorf("under rotation: %d of %d requests failed (last: %v), want none of at least 50", f, sent.Load(), lastErr.Load())
	}
	t.Logf("%d requests through %v mutual-TLS connections while the certificates rotated", sent.Load(), mtls())
}
