package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const alertHead = "apiVersion: weftmesh.io/v1alpha1\nkind: AlertRule\nmetadata:\n  name: catalog-errors\nspec:\n"

func TestAlertRuleCompiles(t *testing.T) {
	for _, tc := range []struct {
		name, spec string
		want       Alert
	}{
		{"service defaults", "  service: catalog\n  condition: {metric: successRate, op: below, value: 0.99}\n",
			Alert{Service: "catalog", Metric: AlertSuccessRate, Op: AlertBelow, Threshold: 0.99, Window: time.Minute, Severity: SeverityWarning}},
		{"edge p99", "  edge: {source: web, destination: catalog}\n  condition: {metric: p99, op: above, value: 250ms}\n  window: 30s\n  for: 10s\n  severity: critical\n  summary: slow\n",
			Alert{Source: "web", Destination: "catalog", Metric: AlertP99, Op: AlertAbove, Threshold: 0.25, Window: 30 * time.Second, For: 10 * time.Second, Severity: SeverityCritical, Summary: "slow"}},
		{"ready instances", "  service: catalog\n  condition: {metric: readyInstances, op: below, value: 2}\n",
			Alert{Service: "catalog", Metric: AlertReadyInstances, Op: AlertBelow, Threshold: 2, Window: time.Minute, Severity: SeverityWarning}},
		{"rps", "  service: catalog\n  condition: {metric: rps, op: above, value: 1000.5}\n",
			Alert{Service: "catalog", Metric: AlertRPS, Op: AlertAbove, Threshold: 1000.5, Window: time.Minute, Severity: SeverityWarning}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := Parse([]byte(alertHead + tc.spec))
			if err != nil {
				t.Fatal(err)
			}
			got, err := CompileAlertRule(&rs[0])
			if err != nil {
				t.Fatal(err)
			}
			tc.want.Name = "catalog-errors"
			if got.Name != tc.want.Name || got.Service != tc.want.Service || got.Source != tc.want.Source || got.Destination != tc.want.Destination ||
				got.Metric != tc.want.Metric || got.Op != tc.want.Op || got.Threshold != tc.want.Threshold || got.Window != tc.want.Window ||
				got.For != tc.want.For || got.Severity != tc.want.Severity || got.Summary != tc.want.Summary {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestAlertRuleErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		spec, field, msg string
		line             int
	}{
		{"  condition: {metric: rps, op: above, value: 1}\n", "spec.service", "is required", 5},
		{"  service: catalog\n  edge: {source: web, destination: catalog}\n  condition: {metric: rps, op: above, value: 1}\n", "spec.edge", "not both", 7},
		{"  service: Catalog\n  condition: {metric: rps, op: above, value: 1}\n", "spec.service", "not a valid service name", 6},
		{"  edge: {source: web}\n  condition: {metric: rps, op: above, value: 1}\n", "spec.edge.destination", "not a valid service name", 6},
		{"  service: catalog\n  condition: {metric: rps, op: under, value: 1}\n", "spec.condition.op", "want below or above", 7},
		{"  service: catalog\n  condition: {metric: errors, op: above, value: 1}\n", "spec.condition.metric", "want successRate, p99, rps or readyInstances", 7},
		{"  service: catalog\n  condition: {metric: successRate, op: below, value: 99}\n", "spec.condition.value", "between 0 and 1", 7},
		{"  service: catalog\n  condition: {metric: successRate, op: below, value: high}\n", "spec.condition.value", "want a number from 0 to 1", 7},
		{"  service: catalog\n  condition: {metric: p99, op: above, value: 0.25}\n", "spec.condition.value", "want a duration", 7},
		{"  service: catalog\n  condition: {metric: p99, op: above, value: soon}\n", "spec.condition.value", "is not a duration", 7},
		{"  service: catalog\n  condition: {metric: readyInstances, op: below, value: 1.5}\n", "spec.condition.value", "whole number", 7},
		{"  edge: {source: web, destination: catalog}\n  condition: {metric: readyInstances, op: below, value: 1}\n", "spec.condition.metric", "not of an edge", 7},
		{"  service: catalog\n  condition: {metric: rps, op: above}\n", "spec.condition.value", "is required", 7},
		{"  service: catalog\n  condition: {metric: rps, op: above, value: 1}\n  window: 2h\n", "spec.window", "at most 1h", 8},
		{"  service: catalog\n  condition: {metric: rps, op: above, value: 1}\n  window: 0s\n", "spec.window", "more than 0", 8},
		{"  service: catalog\n  condition: {metric: rps, op: above, value: 1}\n  window: 5s\n", "spec.window", "at least 10s", 8},
		{"  service: catalog\n  condition: {metric: rps, op: above, value: 1}\n  for: -1s\n", "spec.for", "must not be negative", 8},
		{"  service: catalog\n  condition: {metric: rps, op: above, value: 1}\n  severity: page\n", "spec.severity", "want warning or critical", 8},
		{"  service: catalog\n  condition: {metric: rps, op: above, value: 1}\n  webhooks:\n  - url: ftp://x\n", "spec.webhooks[0].url", "http:// or https://", 9},
		{"  service: catalog\n  condition: {metric: rps, op: above, value: 1}\n  webhooks:\n  - url: http://x\n    secretRef: {env: 1BAD}\n", "spec.webhooks[0].secretRef.env", "not an environment variable", 10},
		{"  service: catalog\n  condition: {metric: rps, op: above, value: 1}\n  webhooks:\n  - url: http://x\n    secretRef: {file: rel/path}\n", "spec.webhooks[0].secretRef.file", "absolute path", 10},
		{"  service: catalog\n  condition: {metric: rps, op: above, value: 1}\n  webhooks:\n  - url: http://x\n    secretRef: {}\n", "spec.webhooks[0].secretRef", "want env: NAME or file: /path", 10},
		{"  service: catalog\n  condition: {metric: rps, op: above, value: 1}\n  webhooks:\n  - url: http://x\n    secretRef: {color: red}\n", "spec.webhooks[0].secretRef.color", "unknown field", 10},
	} {
		t.Run(tc.field+" "+tc.msg, func(t *testing.T) {
			_, err := Parse([]byte(alertHead + tc.spec))
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("got %v, want a FieldError", err)
			}
			if fe.Field != tc.field || !strings.Contains(fe.Msg, tc.msg) || fe.Line != tc.line || fe.Ref != "AlertRule/catalog-errors" {
				t.Errorf("got %s (field %s, line %d), want field %s, line %d, a message with %q", err, fe.Field, fe.Line, tc.field, tc.line, tc.msg)
			}
		})
	}
}

func TestAlertRuleRefusesAnInlineSecretWithoutRepeatingIt(t *testing.T) {
	spec := "  service: catalog\n  condition: {metric: rps, op: above, value: 1}\n  webhooks:\n  - url: http://hooks.example.com/x\n    secret: hunter2-very-secret\n"
	_, err := Parse([]byte(alertHead + spec))
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "spec.webhooks[0].secret" || !strings.Contains(fe.Msg, "secretRef") {
		t.Fatalf("got %v, want an error on spec.webhooks[0].secret that names secretRef", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("the error repeats the secret: %s", err)
	}
}

func TestAlertRuleKindAndReferences(t *testing.T) {
	for _, w := range []string{"AlertRule", "alertrule", "alertrules", "ar"} {
		if k, ok := KindFor(w); !ok || k != "AlertRule" {
			t.Errorf("KindFor(%q): got %q %v, want AlertRule", w, k, ok)
		}
	}
	rs, err := Parse([]byte(alertHead + "  edge: {source: web, destination: catalog}\n  condition: {metric: rps, op: above, value: 1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := References(&rs[0]).Services; strings.Join(got, ",") != "catalog,web" {
		t.Errorf("References: got %v, want [catalog web]", got)
	}
	rs, err = Parse([]byte(alertHead + "  edge: {source: unknown, destination: catalog}\n  condition: {metric: rps, op: above, value: 1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := References(&rs[0]).Services; strings.Join(got, ",") != "catalog" {
		t.Errorf("References with source unknown: got %v, want [catalog]", got)
	}
}

func TestAlertHolds(t *testing.T) {
	below := Alert{Op: AlertBelow, Threshold: 0.99}
	above := Alert{Op: AlertAbove, Threshold: 0.25}
	for _, tc := range []struct {
		a    Alert
		v    float64
		want bool
	}{{below, 0.5, true}, {below, 0.99, false}, {below, 1, false}, {above, 0.3, true}, {above, 0.25, false}} {
		if got := tc.a.Holds(tc.v); got != tc.want {
			t.Errorf("%s %g, value %g: got %v, want %v", tc.a.Op, tc.a.Threshold, tc.v, got, tc.want)
		}
	}
}
