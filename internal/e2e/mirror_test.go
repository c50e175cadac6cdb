package e2e

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtest"
)

// TestMirroring: a rule mirroring 30% of its requests to another service
// sends that share of copies (within 5 points of 1,500 requests), each
// received by the mirror's sidecar; making the mirror slow (1 s) or
// failing (500) changes nothing for the caller: every request is still
// answered 200 by the backend, none waits for the mirror, and the
// latency of each phase, measured in the same run, stays that of the
// healthy one.
func TestMirroring(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "mirsvc", 1, nil, nil)
	shadowApp := f.m.App("mirshadow-0")
	shadow := f.m.Sidecar(f.cp, "--service", "mirshadow", "--id", "mirshadow-0", "--app-port", shadowApp.Port)
	waitEndpoints(t, f.consumer, "mirshadow", 1)
	apply(t, f, `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: mirsvc}
spec:
  parentRefs: [{group: "", kind: Service, name: mirsvc}]
  rules:
  - filters:
    - {type: RequestMirror, requestMirror: {backendRef: {name: mirshadow, port: 80}, percent: 30}}
    backendRefs: [{name: mirsvc, port: 80}]
`)
	routesInForce(t, f, `"mirshadow"`)
	copies := func(outcome string) float64 {
		return metricSum(f.consumer.Admin, "weft_mirrors_total", `service="mirsvc"`, `mirror="mirshadow"`, `outcome="`+outcome+`"`)
	}
	received := func() float64 { return metricSum(shadow.Admin, "weft_requests_total", `direction="inbound"`) }

	// The healthy phase measures the share too: 1,500 draws put 5
	// points at 4 standard deviations.
	phases := []struct {
		name, fault string
		n           int
	}{{"healthy", "", 1500}, {"slow", "delay=1s", 600}, {"failing", "status=500", 600}}
	median := map[string]time.Duration{}
	for _, ph := range phases {
		if _, body := meshtest.Get("http://" + shadowApp.Addr + "/fault?" + ph.fault); body == "" {
			t.Fatalf("setting the mirror %s: no answer", ph.name)
		}
		f.m.Eventually(10*time.Second, func() (bool, string) { // the last phase's copies done
			n := metricSum(f.consumer.Admin, "weft_requests_in_flight", `direction="mirror"`)
			return n == 0, fmt.Sprintf("%v copies in flight", n)
		})
		sentBefore, shedBefore := copies("sent"), copies("busy")
		n := ph.n
		took := f.latencies(t, n, 4) // fails the test on any answer but 200
		median[ph.name] = percentile(took, 50)
		t.Logf("%s mirror: p50 %s, p99 %s, max %s over %d requests", ph.name, percentile(took, 50), percentile(took, 99), percentile(took, 100), n)
		if ph.name == "slow" && percentile(took, 100) >= time.Second {
			t.Errorf("with the mirror taking 1s, the slowest request took %s: it waited for the mirror", percentile(took, 100))
		}
		sent, shed := copies("sent")-sentBefore, copies("busy")-shedBefore
		if sent == 0 {
			t.Errorf("%s mirror: no copy sent (%v shed)", ph.name, shed)
		}
		if ph.name == "healthy" {
			if share := sent / float64(n); math.Abs(share-0.3) > 0.05 {
				t.Errorf("%.0f of %d requests mirrored (%.1f%%), want 30%% ± 5", sent, n, 100*share)
			}
			// Every copy was answered 200 by the mirror (the only one that
			// can answer it).
			f.m.Eventually(10*time.Second, func() (bool, string) {
				answered := metricSum(f.consumer.Admin, "weft_requests_total", `direction="mirror"`, `destination_service="mirshadow"`, `response_code="200"`)
				return answered == sent, fmt.Sprintf("%v copies answered 200 by the mirror, want the %v sent", answered, sent)
			})
			t.Logf("the mirror's sidecar counted %v requests in", received())
		}
		t.Logf("%s mirror: %.0f copies sent, %.0f shed (over 128 in flight)", ph.name, sent, shed)
	}
	for _, ph := range phases[1:] {
		if d := median[ph.name] - median["healthy"]; d > 20*time.Millisecond {
			t.Errorf("the %s mirror added %s to the caller's median latency (%s against %s)", ph.name, d, median[ph.name], median["healthy"])
		}
	}
}
