package alert

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/config"
)

var update = flag.Bool("update", false, "rewrite testdata/export.yaml")

func exportRules() []config.Alert {
	return []config.Alert{
		{Name: "catalog-errors", Service: "catalog", Metric: config.AlertSuccessRate, Op: config.AlertBelow, Threshold: 0.99,
			Window: time.Minute, For: 30 * time.Second, Severity: config.SeverityCritical, Summary: "catalog answers errors"},
		{Name: "web-catalog-slow", Source: "web", Destination: "catalog", Metric: config.AlertP99, Op: config.AlertAbove, Threshold: 0.25,
			Window: 90 * time.Second, For: 1500 * time.Millisecond, Severity: config.SeverityWarning},
		{Name: "catalog-quiet", Service: "catalog", Metric: config.AlertRPS, Op: config.AlertBelow, Threshold: 0.5,
			Window: 5 * time.Minute, Severity: config.SeverityWarning},
		{Name: "9lives", Service: "catalog", Metric: config.AlertReadyInstances, Op: config.AlertBelow, Threshold: 2,
			Window: time.Minute, For: time.Hour, Severity: config.SeverityWarning},
	}
}

func TestExportGolden(t *testing.T) {
	var b bytes.Buffer
	if err := Export(&b, exportRules()); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "export.yaml")
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if b.String() != string(want) {
		t.Errorf("Export: got\n%s\nwant (%s; -update rewrites it)\n%s", b.String(), golden, want)
	}
}

// TestExportPassesPromtool checks the rules as Prometheus would load them.
func TestExportPassesPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (it comes with the prometheus package); the exported rules are not checked")
	}
	for _, tc := range []struct {
		name  string
		rules []config.Alert
	}{{"every metric", exportRules()}, {"no rules", nil}} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := Export(&b, tc.rules); err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(t.TempDir(), "weft.rules.yaml")
			if err := os.WriteFile(file, b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput()
			if err != nil {
				t.Fatalf("promtool check rules: %v\n%s\nthe file:\n%s", err, out, b.String())
			}
			if want := "SUCCESS: " + strconv.Itoa(len(tc.rules)) + " rules found"; !strings.Contains(string(out), want) {
				t.Errorf("promtool: got %s, want %q", out, want)
			}
		})
	}
}

func TestPromDuration(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{{0, "0s"}, {time.Minute, "1m"}, {90 * time.Second, "1m30s"}, {1500 * time.Millisecond, "1s500ms"}, {time.Hour, "1h"}, {25 * time.Hour, "25h"}} {
		if got := promDuration(tc.d); got != tc.want {
			t.Errorf("promDuration(%s): got %q, want %q", tc.d, got, tc.want)
		}
	}
}
