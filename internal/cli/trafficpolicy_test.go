package cli

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/config"
)

const catalogPolicy = `apiVersion: weftmesh.io/v1alpha1
kind: TrafficPolicy
metadata:
  name: catalog
spec:
  loadBalancer:
    policy: ring-hash
    hashOn: {header: x-user}
  timeouts: {request: 5s, perTry: 2s}
  retries:
    attempts: 2
    on: [connect-failure, "503"]
  rateLimit:
    client: {requestsPerSecond: 100}
  fallback: {status: 503, body: try later}
---
apiVersion: weftmesh.io/v1alpha1
kind: TrafficPolicy
metadata:
  name: search
spec: {}
`

// TrafficPolicy goes through get, apply and delete like any kind, by
// each of its words; a bad one is refused, naming the field, and the
// one stored stays.
func TestTrafficPolicyCommands(t *testing.T) {
	cp := startControl(t)
	file := writeFile(t, "tp.yaml", catalogPolicy)
	if got, want := revisionsOut.ReplaceAllString(mustWeft(t, "apply", "-f", file, "--control", cp), ""), "TrafficPolicy/catalog created\nTrafficPolicy/search created\n"; got != want {
		t.Fatalf("apply: got %q, want %q", got, want)
	}

	for _, word := range []string{"trafficpolicies", "TrafficPolicy", "trafficpolicy", "tp"} {
		out := mustWeft(t, "get", word, "--control", cp)
		lines := strings.Split(squeeze(out), "\n")
		want := []string{
			"NAME KIND REVISION SUMMARY",
			"lb=ring-hash,timeout=5s,attempts=2,client-limit,fallback",
			"lb=peak-ewma,timeout=15s,attempts=3",
		}
		if len(lines) != 3 || lines[0] != want[0] || !strings.HasPrefix(lines[1], "catalog TrafficPolicy ") ||
			!strings.HasSuffix(lines[1], want[1]) || !strings.HasPrefix(lines[2], "search TrafficPolicy ") || !strings.HasSuffix(lines[2], want[2]) {
			t.Errorf("get %s: got\n%s\nwant rows ending\n%s", word, out, strings.Join(want, "\n"))
		}
	}
	if got, want := squeeze(mustWeft(t, "get", "tp", "-o", "name", "--control", cp)), "TrafficPolicy/catalog\nTrafficPolicy/search"; got != want {
		t.Errorf("get tp -o name: got %q, want %q", got, want)
	}

	before := mustWeft(t, "get", "trafficpolicy", "catalog", "-o", "yaml", "--control", cp)
	for _, s := range []string{"kind: TrafficPolicy", "name: catalog", "policy: ring-hash", "header: x-user", `- "503"`} {
		if !strings.Contains(before, s) {
			t.Errorf("get trafficpolicy catalog -o yaml: got\n%s\nwant a line with %q", before, s)
		}
	}
	if out, err := weftOut(t, "apply", "-f", writeFile(t, "back.yaml", before), "--control", cp); err != nil || out != "TrafficPolicy/catalog unchanged\n" {
		t.Errorf("apply -f of get -o yaml: got (%q, %v), want unchanged", out, err)
	}

	// Refused by the CLI, with file and line; and by the control plane
	// when sent straight to it. Neither changes what is stored.
	bad := strings.Replace(catalogPolicy, "attempts: 2", "attempts: 20", 1)
	badFile := writeFile(t, "bad.yaml", bad)
	_, err := weftOut(t, "apply", "-f", badFile, "--control", cp)
	if want := badFile + ":11: TrafficPolicy/catalog: spec.retries.attempts: 20 must be between 1 and 10"; err == nil || err.Error() != want {
		t.Errorf("apply of a bad policy: got %v, want %q", err, want)
	}
	_, err = api.NewClient(cp).Apply(context.Background(), []byte(bad))
	if err == nil || !strings.Contains(err.Error(), "spec.retries.attempts") {
		t.Errorf("API apply of a bad policy: got %v, want an error naming spec.retries.attempts", err)
	}
	_, err = api.NewClient(cp).Apply(context.Background(), []byte(strings.Replace(catalogPolicy, "policy: ring-hash", "policy: fastest", 1)))
	if err == nil || !strings.Contains(err.Error(), `spec.loadBalancer.policy: unknown policy "fastest"`) {
		t.Errorf("API apply of an unknown policy: got %v, want an error naming spec.loadBalancer.policy", err)
	}
	if after := mustWeft(t, "get", "tp", "catalog", "-o", "yaml", "--control", cp); after != before {
		t.Errorf("after refused applies: got\n%s\nwant what was stored before\n%s", after, before)
	}

	if got := mustWeft(t, "delete", "tp", "search", "--control", cp); got != "TrafficPolicy/search deleted\n" {
		t.Errorf("delete tp search: got %q", got)
	}
	if _, err := weftOut(t, "get", "tp", "search", "--control", cp); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("get after delete: got %v, want not found", err)
	}
}

func TestPolicySummary(t *testing.T) {
	p := config.DefaultTrafficPolicy()
	if got, want := policySummary(p), "lb=peak-ewma,timeout=15s,attempts=3"; got != want {
		t.Errorf("defaults: got %q, want %q", got, want)
	}
	p.CircuitBreaker.FailureRatio = 0.5
	p.HealthCheck.Enabled = false
	p.RateLimit.Server = &config.ServerRateLimitSpec{RequestsPerSecond: 1}
	p.Hedging = &config.HedgingSpec{Percentile: 99}
	if got, want := policySummary(p), "lb=peak-ewma,timeout=15s,attempts=3,circuit-breaker,no-health-check,server-limit,hedging"; got != want {
		t.Errorf("with sections: got %q, want %q", got, want)
	}
}
