package control

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/collect/alert"
	"github.com/weftmesh/weft/internal/registry"
)

// startAlerting is start with AlertRules evaluated every 50ms.
func startAlerting(t *testing.T) *testControl {
	t.Helper()
	return startWith(t, func(c *Config) { c.AlertInterval = 50 * time.Millisecond })
}

// waitAlert polls cond until it holds, for at most 10s.
func waitAlert(t *testing.T, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within 10s; last seen: %s", last)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

func (tc *testControl) alert(t *testing.T, name string) alert.Status {
	t.Helper()
	var list []alert.Status
	if err := tc.api.Do(ctx(t), http.MethodGet, "/v1/alerts", nil, &list); err != nil {
		t.Fatalf("GET /v1/alerts: %v", err)
	}
	for _, s := range list {
		if s.Rule == name {
			return s
		}
	}
	return alert.Status{}
}

func (tc *testControl) waitState(t *testing.T, name string, want alert.State) alert.Status {
	t.Helper()
	var s alert.Status
	waitAlert(t, func() (bool, string) {
		s = tc.alert(t, name)
		return s.State == want, fmt.Sprintf("rule %s: state %q, want %s (%+v)", name, s.State, want, s)
	})
	return s
}

// alertHook is a webhook receiver that checks signatures.
func alertHook(t *testing.T, secret string) (*httptest.Server, chan alert.Notification) {
	got := make(chan alert.Notification, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !alert.Verify([]byte(secret), r.Header.Get(alert.TimestampHeader), body, r.Header.Get(alert.SignatureHeader)) {
			t.Errorf("notification %s: signature does not verify", body)
		}
		var n alert.Notification
		if err := json.Unmarshal(body, &n); err != nil {
			t.Errorf("notification %q: %v", body, err)
		}
		got <- n
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func nextNotification(t *testing.T, got chan alert.Notification) alert.Notification {
	t.Helper()
	select {
	case n := <-got:
		return n
	case <-time.After(10 * time.Second):
		t.Fatal("no notification within 10s")
	}
	return alert.Notification{}
}

func TestReadyInstancesAlarm(t *testing.T) {
	tc := startAlerting(t)
	secretFile := filepath.Join(t.TempDir(), "hook-secret")
	if err := os.WriteFile(secretFile, []byte("rotate-me"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, got := alertHook(t, "rotate-me")
	rule := fmt.Sprintf(`apiVersion: weftmesh.io/v1alpha1
kind: AlertRule
metadata: {name: catalog-down}
spec:
  service: catalog
  condition: {metric: readyInstances, op: below, value: 1}
  severity: critical
  webhooks: [{url: %q, secretRef: {file: %q}}]
`, srv.URL, secretFile)
	res, err := tc.api.Apply(ctx(t), []byte(rule))
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || len(res[0].Warnings) != 1 || !strings.Contains(res[0].Warnings[0], `service "catalog" does not exist yet`) {
		t.Errorf("apply: got %+v, want a warning that catalog does not exist", res)
	}

	s := tc.waitState(t, "catalog-down", alert.Firing)
	if s.Value == nil || *s.Value != 0 || len(s.History) != 1 || s.History[0].From != alert.Inactive {
		t.Errorf("firing: got %+v, want value 0 and one transition from inactive", s)
	}
	if n := nextNotification(t, got); n.Rule != "catalog-down" || n.State != alert.Firing || n.Severity != "critical" {
		t.Errorf("notification: got %+v, want catalog-down firing", n)
	}

	in := registry.Instance{Service: "catalog", ID: "catalog-1", Address: "127.0.0.1:1", Ready: true}
	if _, err := tc.api.Register(ctx(t), api.RegisterRequest{Instance: in, TTLSeconds: 30}); err != nil {
		t.Fatal(err)
	}
	tc.waitState(t, "catalog-down", alert.Resolved)
	if n := nextNotification(t, got); n.State != alert.Resolved || n.Value == nil || *n.Value != 1 {
		t.Errorf("notification: got %+v, want resolved at 1", n)
	}
	_, metrics := tc.get(t, "/metrics")
	for _, want := range []string{`weft_instances{service="catalog",state="ready"} 1`, `weft_alerts_firing{rule="catalog-down"} 0`,
		`weft_alert_notifications_total{outcome="sent"} 2`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// Deleting the rule takes it out of the list.
	if err := tc.api.Delete(ctx(t), "AlertRule", "catalog-down"); err != nil {
		t.Fatal(err)
	}
	waitAlert(t, func() (bool, string) {
		s := tc.alert(t, "catalog-down")
		return s.Rule == "", fmt.Sprintf("still listed: %+v", s)
	})
}

func TestSuccessRateAlarmOverReports(t *testing.T) {
	tc := startAlerting(t)
	rule := `apiVersion: weftmesh.io/v1alpha1
kind: AlertRule
metadata: {name: catalog-errors}
spec:
  service: catalog
  condition: {metric: successRate, op: below, value: 0.99}
  window: 1m
`
	if _, err := tc.api.Apply(ctx(t), []byte(rule)); err != nil {
		t.Fatal(err)
	}
	tc.waitState(t, "catalog-errors", alert.Inactive)
	if s := tc.alert(t, "catalog-errors"); s.Value != nil {
		t.Errorf("no requests yet: got value %g, want no data", *s.Value)
	}
	report := func(seq, requests, failures int) {
		t.Helper()
		body := fmt.Sprintf(`{"boot":"b1","seq":%d,"ageMs":0,"series":[{"direction":"inbound","source":"web","destination":"catalog","requests":%d,"failures":%d,"buckets":[%d]}]}`,
			seq, requests, failures, requests)
		if code, out := tc.do(t, http.MethodPost, "/v1/telemetry/catalog/catalog-1", body); code != http.StatusOK {
			t.Fatalf("report: got %d %s", code, out)
		}
	}
	report(1, 100, 50)
	s := tc.waitState(t, "catalog-errors", alert.Firing)
	if s.Value == nil || *s.Value != 0.5 {
		t.Errorf("firing: got value %v, want 0.5", s.Value)
	}
	report(2, 100_000, 0)
	tc.waitState(t, "catalog-errors", alert.Resolved)
}
