package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/collect/alert"
	"github.com/weftmesh/weft/internal/meshtest"
)

// webhook is a receiver of alert notifications that checks each one's
// signature with secret.
type webhook struct {
	srv    *httptest.Server
	secret string
	mu     sync.Mutex
	got    []delivery
}

type delivery struct {
	at    time.Time
	note  alert.Notification
	valid bool // the signature verifies
	err   error
}

func newWebhook(t *testing.T, secret string) *webhook {
	h := &webhook{secret: secret}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		d := delivery{at: time.Now(), valid: alert.Verify([]byte(secret), r.Header.Get(alert.TimestampHeader), body, r.Header.Get(alert.SignatureHeader))}
		d.err = json.Unmarshal(body, &d.note)
		h.mu.Lock()
		h.got = append(h.got, d)
		h.mu.Unlock()
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// first is the first notification in state, if any came.
func (h *webhook) first(state alert.State) (delivery, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, d := range h.got {
		if d.note.State == state {
			return d, true
		}
	}
	return delivery{}, false
}

// alertStatus is one rule's status from GET /v1/alerts.
func alertStatus(t *testing.T, cp *meshtest.Control, rule string) alert.Status {
	t.Helper()
	_, body := cp.API(http.MethodGet, "/v1/alerts", "", nil)
	var list []alert.Status
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatalf("GET /v1/alerts: %v: %.300s", err, body)
	}
	for _, s := range list {
		if s.Rule == rule {
			return s
		}
	}
	return alert.Status{}
}

// TestAlertFiresAndResolves: an alert rule on success rate fires within
// its duration after a backend starts failing, the webhook receives it
// signed, and it resolves after recovery.
func TestAlertFiresAndResolves(t *testing.T) {
	t.Parallel()
	m := meshtest.New(t)
	cp := m.Control("--alert-interval", "200ms")
	app := m.App("catalog-1")
	m.Sidecar(cp, "--service", "catalog", "--id", "catalog-1", "--app-port", app.Port, "--report-interval", "200ms")
	web := m.Sidecar(cp, "--service", "web", "--report-interval", "200ms")
	waitInstances(t, web, "catalog", 1)

	const secret = "e2e-webhook-secret"
	hook := newWebhook(t, secret)
	const forDur = 2 * time.Second
	rule := fmt.Sprintf(`apiVersion: weftmesh.io/v1alpha1
kind: AlertRule
metadata: {name: catalog-errors}
spec:
  service: catalog
  condition: {metric: successRate, op: below, value: 0.9}
  window: 20s
  for: %s
  severity: critical
  summary: catalog answers errors
  webhooks: [{url: %q, secretRef: {file: %q}}]
`, forDur, hook.srv.URL+"/weft", writeFile(t, "hook-secret", secret+"\n"))
	if _, errOut, code := m.Weft("apply", "-f", writeFile(t, "rule.yaml", rule), "--control", cp.Addr); code != 0 {
		t.Fatalf("apply: %s", errOut)
	}

	// web calls catalog steadily until the test ends.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond) // the load's pace
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if resp, _, err := meshtest.Via(web.Outbound, "catalog", "/"); err == nil {
					resp.Body.Close()
				}
			}
		}
	}()
	t.Cleanup(func() { close(stop); wg.Wait() })

	// Healthy traffic is seen and does not alarm.
	m.Eventually(20*time.Second, func() (bool, string) {
		s := alertStatus(t, cp, "catalog-errors")
		return s.State == alert.Inactive && s.Value != nil && *s.Value == 1, fmt.Sprintf("status %+v, want inactive at 1", s)
	})

	fault(t, app, "status=503")
	failing := time.Now()
	var s alert.Status
	m.Eventually(30*time.Second, func() (bool, string) {
		s = alertStatus(t, cp, "catalog-errors")
		return s.State == alert.Firing, fmt.Sprintf("status %+v, want firing", s)
	})
	// Pending for `for`, then firing; no sooner.
	var pendingAt, firingAt time.Time
	for _, tr := range s.History {
		switch tr.To {
		case alert.Pending:
			pendingAt = tr.Time
		case alert.Firing:
			firingAt = tr.Time
		}
	}
	if pendingAt.IsZero() || firingAt.Sub(pendingAt) < forDur {
		t.Errorf("history %+v: want pending, then firing at least %s later", s.History, forDur)
	}
	// Within the duration: the success rate falls below 0.9 within a few
	// reports of the failures, then `for` holds.
	if took := firingAt.Sub(failing); took > forDur+10*time.Second {
		t.Errorf("firing %s after the backend started failing, want within %s and a few reports", took, forDur)
	}
	m.Eventually(10*time.Second, func() (bool, string) {
		_, ok := hook.first(alert.Firing)
		return ok, "no firing notification yet"
	})
	d, _ := hook.first(alert.Firing)
	n := d.note
	if d.err != nil || !d.valid {
		t.Errorf("firing notification: decode error %v, signature valid %v", d.err, d.valid)
	}
	if n.Rule != "catalog-errors" || n.Service != "catalog" || n.Severity != "critical" || n.Summary != "catalog answers errors" ||
		n.Value == nil || *n.Value >= 0.9 || n.Threshold != 0.9 || !n.Since.Equal(s.Since) {
		t.Errorf("firing notification: got %+v, want catalog-errors on catalog below 0.9 since %s", n, s.Since)
	}

	fault(t, app, "") // well again
	m.Eventually(60*time.Second, func() (bool, string) {
		s = alertStatus(t, cp, "catalog-errors")
		return s.State == alert.Resolved, fmt.Sprintf("status %+v, want resolved", s)
	})
	m.Eventually(10*time.Second, func() (bool, string) {
		_, ok := hook.first(alert.Resolved)
		return ok, "no resolved notification yet"
	})
	if d, _ := hook.first(alert.Resolved); d.err != nil || !d.valid || d.note.Value == nil || *d.note.Value < 0.9 {
		t.Errorf("resolved notification: got %+v (decode error %v, signature valid %v)", d.note, d.err, d.valid)
	}

	// The figure is over whole 10-second slots and the current one, so
	// it can dip again as a slot ends: the rule may have moved on since.
	out, errOut, code := m.Weft("alerts", "--control", cp.Addr)
	if code != 0 || !regexp.MustCompile(`(?m)^(resolved|pending|firing)\s+catalog-errors\s+catalog\s+successRate < 0\.9\s+\S+\s+\d+s$`).MatchString(out) {
		t.Errorf("weft alerts: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = m.Weft("alerts", "history", "catalog-errors", "--control", cp.Addr)
	var got []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 5 && f[2] == "catalog-errors" {
			got = append(got, f[3]+">"+f[4])
		}
	}
	if want := "inactive>pending pending>firing firing>resolved"; code != 0 || !strings.HasPrefix(strings.Join(got, " "), want) {
		t.Errorf("weft alerts history: got %q, want it to start %q\n%s%s", strings.Join(got, " "), want, out, errOut)
	}
}
