package cli

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/collect/alert"
	"github.com/weftmesh/weft/internal/control"
	"github.com/weftmesh/weft/internal/control/controltest"
)

const alertRules = `apiVersion: weftmesh.io/v1alpha1
kind: AlertRule
metadata: {name: catalog-down}
spec:
  service: catalog
  condition: {metric: readyInstances, op: below, value: 1}
  webhooks: [{url: "http://127.0.0.1:1/hook", secretRef: {env: WEFT_HOOK_SECRET}}]
---
apiVersion: weftmesh.io/v1alpha1
kind: AlertRule
metadata: {name: web-catalog-slow}
spec:
  edge: {source: web, destination: catalog}
  condition: {metric: p99, op: above, value: 250ms}
  for: 1m
`

func TestAlertsListAndHistory(t *testing.T) {
	c := controltest.Start(t, nil, func(cfg *control.Config) { cfg.AlertInterval = 50 * time.Millisecond })
	t.Cleanup(api.Transport.CloseIdleConnections)
	cp := c.Addr()
	mustWeft(t, "apply", "-f", writeFile(t, "rules.yaml", alertRules), "--control", cp)

	var out string
	deadline := time.Now().Add(10 * time.Second)
	for {
		out = mustWeft(t, "alerts", "--control", cp)
		if (strings.Contains(out, "firing") && strings.Contains(out, "web-catalog-slow")) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^STATE\s+RULE\s+TARGET\s+CONDITION\s+VALUE\s+SINCE$`),
		regexp.MustCompile(`(?m)^firing\s+catalog-down\s+catalog\s+readyInstances < 1\s+0\s+\d+s$`),
		regexp.MustCompile(`(?m)^inactive\s+web-catalog-slow\s+web->catalog\s+p99 > 250ms\s+no data\s+\d+s$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("weft alerts: got\n%s\nwant a line matching %s", out, want)
		}
	}

	hist := mustWeft(t, "alerts", "history", "catalog-down", "--control", cp)
	if !regexp.MustCompile(`(?m)^TIME\s+RULE\s+FROM\s+TO\s+VALUE\n\S+ \S+\s+catalog-down\s+inactive\s+firing\s+0$`).MatchString(hist) {
		t.Errorf("weft alerts history: got\n%s", hist)
	}
	if all := mustWeft(t, "alerts", "--history", "--control", cp); !strings.Contains(all, "catalog-down") {
		t.Errorf("weft alerts --history: got\n%s", all)
	}
	var one alert.Status
	if err := json.Unmarshal([]byte(mustWeft(t, "alerts", "history", "catalog-down", "-o", "json", "--control", cp)), &one); err != nil || one.State != alert.Firing {
		t.Errorf("weft alerts history -o json: got %+v, %v", one, err)
	}
	if _, err := weftOut(t, "alerts", "history", "nope", "--control", cp); err == nil || !strings.Contains(err.Error(), "no AlertRule nope") {
		t.Errorf("history of a rule that does not exist: got %v", err)
	}

	// The generic resource path has the kind, and the webhook's secret is
	// a reference only.
	y := mustWeft(t, "get", "alertrules", "catalog-down", "-o", "yaml", "--control", cp)
	if !strings.Contains(y, "kind: AlertRule") || !strings.Contains(y, "env: WEFT_HOOK_SECRET") {
		t.Errorf("weft get alertrules -o yaml: got\n%s", y)
	}
	if names := mustWeft(t, "get", "ar", "-o", "name", "--control", cp); names != "AlertRule/catalog-down\nAlertRule/web-catalog-slow\n" {
		t.Errorf("weft get ar -o name: got %q", names)
	}
}

func TestAlertsExportPrometheus(t *testing.T) {
	cp := startControl(t)
	mustWeft(t, "apply", "-f", writeFile(t, "rules.yaml", alertRules), "--control", cp)
	fromControl := mustWeft(t, "alerts", "export", "--prometheus", "--control", cp)
	fromFile := mustWeft(t, "alerts", "export", "--prometheus", "-f", writeFile(t, "rules.yaml", alertRules), "--control", deadAddr(t))
	if fromControl != fromFile {
		t.Errorf("export from the control plane and from the file differ:\n%s\n---\n%s", fromControl, fromFile)
	}
	for _, want := range []string{"alert: catalog_down", "alert: web_catalog_slow", "for: 1m", `weft_instances{service="catalog",state="ready"}`} {
		if !strings.Contains(fromControl, want) {
			t.Errorf("export lacks %q:\n%s", want, fromControl)
		}
	}
	if _, err := weftOut(t, "alerts", "export", "--control", cp); err == nil || ExitCode(err) != 2 {
		t.Errorf("export without --prometheus: got %v, want a usage error", err)
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (it comes with the prometheus package); the exported rules are not checked")
	}
	file := filepath.Join(t.TempDir(), "weft.rules.yaml")
	if err := os.WriteFile(file, []byte(fromControl), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
}
