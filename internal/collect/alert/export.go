package alert

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/weftmesh/weft/internal/config"
)

// Export writes rules as a Prometheus rule file: one group, weft, with
// an alerting rule for each, over the metrics the sidecars export
// (weft_requests_total, weft_request_duration_seconds) and the control
// plane's weft_instances. A service's figures are those its own sidecars
// counted (direction inbound), an edge's those its callers' sidecars
// counted (outbound), as the evaluator reads them. Webhooks are not
// exported: Alertmanager routes Prometheus's alerts.
func Export(w io.Writer, rules []config.Alert) error {
	file := promFile{Groups: []promGroup{{Name: "weft", Rules: make([]promRule, 0, len(rules))}}}
	for i := range rules {
		file.Groups[0].Rules = append(file.Groups[0].Rules, promRuleOf(&rules[i]))
	}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if _, err := io.WriteString(w, "# Prometheus alerting rules for Weft's AlertRules (weft alerts export --prometheus).\n"); err != nil {
		return err
	}
	if err := enc.Encode(file); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return enc.Close()
}

type promFile struct {
	Groups []promGroup `yaml:"groups"`
}

type promGroup struct {
	Name  string     `yaml:"name"`
	Rules []promRule `yaml:"rules"`
}

type promRule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for,omitempty"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func promRuleOf(a *config.Alert) promRule {
	labels := map[string]string{"severity": a.Severity, "weft_rule": a.Name}
	if a.Service != "" {
		labels["service"] = a.Service
	} else {
		labels["source_service"], labels["destination_service"] = a.Source, a.Destination
	}
	ann := map[string]string{"description": description(a)}
	if a.Summary != "" {
		ann["summary"] = a.Summary
	}
	r := promRule{Alert: alertName(a.Name), Expr: promExpr(a), Labels: labels, Annotations: ann}
	if a.For > 0 {
		r.For = promDuration(a.For)
	}
	return r
}

// description says what fired, the value in the metric's own unit.
func description(a *config.Alert) string {
	value, over := "{{ $value }}", " over "+promDuration(a.Window)
	switch a.Metric {
	case config.AlertSuccessRate:
		value = "{{ $value | humanizePercentage }}"
	case config.AlertP99:
		value = "{{ $value | humanizeDuration }}"
	case config.AlertReadyInstances:
		over = ""
	}
	return fmt.Sprintf("%s of %s%s is %s, %s %s", a.Metric, a.Target(), over, value, a.Op, FormatValue(a.Metric, a.Threshold))
}

// alertName is a rule's name as a Prometheus alert name, which has the
// syntax of a metric name: catalog-errors becomes catalog_errors.
func alertName(name string) string {
	n := strings.ReplaceAll(name, "-", "_")
	if n == "" || (n[0] >= '0' && n[0] <= '9') {
		n = "weft_" + n
	}
	return n
}

// promExpr is the PromQL of a rule's condition. With no request in the
// window a success rate or p99 has no value (the alert is not active),
// and a rate is 0, as the evaluator judges them.
func promExpr(a *config.Alert) string {
	op := ">"
	if a.Op == config.AlertBelow {
		op = "<"
	}
	threshold := strconv.FormatFloat(a.Threshold, 'g', -1, 64)
	if a.Metric == config.AlertReadyInstances {
		// max: control planes sharing one store all report the same counts.
		return fmt.Sprintf(`(max(weft_instances{service=%q,state="ready"}) or vector(0)) %s %s`, a.Service, op, threshold)
	}
	sel := fmt.Sprintf(`direction="inbound",destination_service=%q`, a.Service)
	if a.Service == "" {
		sel = fmt.Sprintf(`direction="outbound",source_service=%q,destination_service=%q`, a.Source, a.Destination)
	}
	w := promDuration(a.Window)
	rate := func(metric, extra string) string {
		return fmt.Sprintf("rate(%s{%s%s}[%s])", metric, sel, extra, w)
	}
	switch a.Metric {
	case config.AlertSuccessRate:
		// A failure is a 5xx, or a gRPC answer whose grpc-status is not 0.
		failures := fmt.Sprintf(`(sum(%s) or vector(0)) + (sum(%s) or vector(0))`,
			rate("weft_requests_total", `,response_code=~"5.."`),
			rate("weft_requests_total", `,response_code!~"5..",grpc_status!~"0|"`))
		return fmt.Sprintf("(1 - (%s) / sum(%s)) %s %s", failures, rate("weft_requests_total", ""), op, threshold)
	case config.AlertP99:
		return fmt.Sprintf("histogram_quantile(0.99, sum by (le) (%s)) %s %s", rate("weft_request_duration_seconds_bucket", ""), op, threshold)
	default: // rps
		return fmt.Sprintf("(sum(%s) or vector(0)) %s %s", rate("weft_requests_total", ""), op, threshold)
	}
}

// promDuration writes d as Prometheus reads a duration: units from
// hours down to milliseconds, no fractions ("1m30s", "1500ms").
func promDuration(d time.Duration) string {
	d = d.Round(time.Millisecond)
	if d <= 0 {
		return "0s"
	}
	var b strings.Builder
	for _, u := range []struct {
		unit string
		d    time.Duration
	}{{"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}, {"ms", time.Millisecond}} {
		if n := d / u.d; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.unit)
			d -= n * u.d
		}
	}
	return b.String()
}
