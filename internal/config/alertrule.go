package config

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"path/filepath"
	"regexp"
	"time"

	"github.com/weftmesh/weft/internal/registry"
)

// AlertRule is the spec of an AlertRule resource: a condition on one
// golden metric of a service (as its own sidecars counted the requests
// they received) or of an edge (the calls from one service to another,
// as the callers' sidecars counted them), held for a while before the
// alert fires, and the webhooks told when it fires and resolves.
//
// A webhook's secret is never part of the resource: secretRef names an
// environment variable or a file of the control plane that holds it, so
// that the secret is not stored in etcd and no `weft get` or history
// shows it.
type AlertRule struct {
	Service   string         `json:"service,omitempty"`
	Edge      *AlertEdge     `json:"edge,omitempty"`
	Condition AlertCondition `json:"condition"`
	// Window is what the figure is computed over; default 1m, from 10s
	// to 1h (the collection center keeps an hour in 10-second slots, and
	// a window is rounded up to whole slots).
	Window string `json:"window,omitempty"`
	// For is how long the condition must hold before the alert fires;
	// default 0: at once.
	For      string         `json:"for,omitempty"`
	Severity string         `json:"severity,omitempty"` // warning (the default) or critical
	Summary  string         `json:"summary,omitempty"`
	Webhooks []AlertWebhook `json:"webhooks,omitempty"`
}

// AlertEdge names the calls from Source to Destination.
type AlertEdge struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
}

// AlertCondition compares one metric with a value: successRate (0 to
// 1), p99 (a duration, "250ms"), rps (requests a second) or
// readyInstances (a whole number; of a service only), below or above.
type AlertCondition struct {
	Metric string `json:"metric"`
	Op     string `json:"op"`
	// Value is a number, or a duration string for p99.
	Value any `json:"value"`
}

// AlertWebhook is where notifications are posted.
type AlertWebhook struct {
	URL       string     `json:"url"`
	SecretRef *SecretRef `json:"secretRef,omitempty"`
	// Secret is refused: an inline secret would be stored and shown. It
	// is a field so that the error can say what to write instead.
	Secret string `json:"secret,omitempty"`
}

// SecretRef says where the control plane reads a secret: exactly one of
// Env (an environment variable's name) and File (an absolute path; the
// file's content, surrounding white space trimmed). It is read each time
// it is used, so a rotated file takes effect without a new apply.
type SecretRef struct {
	Env  string `json:"env,omitempty"`
	File string `json:"file,omitempty"`
}

// Alert metrics and comparisons.
const (
	AlertSuccessRate    = "successRate"
	AlertP99            = "p99"
	AlertRPS            = "rps"
	AlertReadyInstances = "readyInstances"

	AlertBelow = "below"
	AlertAbove = "above"

	SeverityWarning  = "warning"
	SeverityCritical = "critical"
)

// Limits and defaults of an AlertRule.
const (
	DefaultAlertWindow = time.Minute
	MinAlertWindow     = 10 * time.Second
	MaxAlertWindow     = time.Hour
	MaxAlertFor        = 24 * time.Hour
	MaxAlertWebhooks   = 8
	MaxAlertSummary    = 1024
)

// Alert is a validated AlertRule as its evaluator uses it: defaults
// filled, durations parsed, the value a number (p99 in seconds).
type Alert struct {
	Name string
	// Service is set for a rule on a service; Source and Destination for
	// a rule on an edge.
	Service, Source, Destination string
	Metric, Op                   string
	Threshold                    float64
	Window, For                  time.Duration
	Severity, Summary            string
	Webhooks                     []AlertWebhook
}

// Target is how the alert's subject reads: "catalog" or "web->catalog".
func (a *Alert) Target() string {
	if a.Service != "" {
		return a.Service
	}
	return a.Source + "->" + a.Destination
}

// Holds reports whether v meets the condition.
func (a *Alert) Holds(v float64) bool {
	if a.Op == AlertBelow {
		return v < a.Threshold
	}
	return v > a.Threshold
}

// CompileAlertRule reads a validated AlertRule.
func CompileAlertRule(r *Resource) (Alert, error) {
	var s AlertRule
	if fe := decodeSpec(r.Spec, &s); fe != nil {
		fe.Ref = r.Ref()
		return Alert{}, fe
	}
	a, fe := compileAlert(&s)
	if fe != nil {
		fe.Ref = r.Ref()
		return Alert{}, fe
	}
	a.Name = r.Metadata.Name
	return a, nil
}

func validateAlertRule(spec json.RawMessage) *FieldError {
	var s AlertRule
	if fe := decodeSpec(spec, &s); fe != nil {
		return fe
	}
	_, fe := compileAlert(&s)
	return fe
}

func compileAlert(s *AlertRule) (Alert, *FieldError) {
	a := Alert{Metric: s.Condition.Metric, Op: s.Condition.Op, Severity: s.Severity, Summary: s.Summary, Webhooks: s.Webhooks}
	if fe := alertTarget(s, &a); fe != nil {
		return a, fe
	}
	if fe := alertCondition(s, &a); fe != nil {
		return a, fe
	}
	var fe *FieldError
	a.Window = DefaultAlertWindow
	if s.Window != "" {
		if a.Window, fe = duration("spec.window", s.Window, true); fe != nil {
			return a, fe
		}
		if a.Window < MinAlertWindow {
			return a, &FieldError{Field: "spec.window", Msg: fmt.Sprintf("%q must be at least %s (the collection center counts in 10-second slots)", s.Window, MinAlertWindow)}
		}
		if a.Window > MaxAlertWindow {
			return a, &FieldError{Field: "spec.window", Msg: fmt.Sprintf("%q must be at most %s (the collection center keeps the last hour)", s.Window, MaxAlertWindow)}
		}
	}
	if s.For != "" {
		if a.For, fe = duration("spec.for", s.For, false); fe != nil {
			return a, fe
		}
		if a.For > MaxAlertFor {
			return a, &FieldError{Field: "spec.for", Msg: fmt.Sprintf("%q must be at most %s", s.For, MaxAlertFor)}
		}
	}
	switch a.Severity {
	case "":
		a.Severity = SeverityWarning
	case SeverityWarning, SeverityCritical:
	default:
		return a, &FieldError{Field: "spec.severity", Msg: fmt.Sprintf("%q: want warning or critical", s.Severity)}
	}
	if len(s.Summary) > MaxAlertSummary {
		return a, &FieldError{Field: "spec.summary", Msg: fmt.Sprintf("is %d bytes, at most %d", len(s.Summary), MaxAlertSummary)}
	}
	if len(s.Webhooks) > MaxAlertWebhooks {
		return a, &FieldError{Field: "spec.webhooks", Msg: fmt.Sprintf("has %d webhooks, at most %d", len(s.Webhooks), MaxAlertWebhooks)}
	}
	for i := range s.Webhooks {
		if fe := validateWebhook(fmt.Sprintf("spec.webhooks[%d]", i), &s.Webhooks[i]); fe != nil {
			return a, fe
		}
	}
	return a, nil
}

func alertTarget(s *AlertRule, a *Alert) *FieldError {
	switch {
	case s.Service != "" && s.Edge != nil:
		return &FieldError{Field: "spec.edge", Msg: "want spec.service or spec.edge, not both"}
	case s.Service != "":
		if err := registry.ValidName(s.Service); err != nil {
			return &FieldError{Field: "spec.service", Msg: err.Error()}
		}
		a.Service = s.Service
	case s.Edge != nil:
		if err := registry.ValidName(s.Edge.Source); err != nil {
			return &FieldError{Field: "spec.edge.source", Msg: err.Error()}
		}
		if err := registry.ValidName(s.Edge.Destination); err != nil {
			return &FieldError{Field: "spec.edge.destination", Msg: err.Error()}
		}
		a.Source, a.Destination = s.Edge.Source, s.Edge.Destination
	default:
		return &FieldError{Field: "spec.service", Msg: "is required: the service the rule watches (or spec.edge: {source, destination})"}
	}
	return nil
}

func alertCondition(s *AlertRule, a *Alert) *FieldError {
	c := s.Condition
	switch c.Op {
	case AlertBelow, AlertAbove:
	case "":
		return &FieldError{Field: "spec.condition.op", Msg: "is required: want below or above"}
	default:
		return &FieldError{Field: "spec.condition.op", Msg: fmt.Sprintf("%q: want below or above", c.Op)}
	}
	if c.Value == nil {
		return &FieldError{Field: "spec.condition.value", Msg: "is required"}
	}
	const field = "spec.condition.value"
	num, isNum := c.Value.(float64)
	if isNum && (math.IsNaN(num) || math.IsInf(num, 0)) {
		return &FieldError{Field: field, Msg: "must be a finite number"}
	}
	switch c.Metric {
	case AlertSuccessRate:
		if !isNum {
			return &FieldError{Field: field, Msg: fmt.Sprintf("%s: want a number from 0 to 1 for successRate", describeValue(c.Value))}
		}
		if fe := between(field, num, 0, 1); fe != nil {
			return fe
		}
		a.Threshold = num
	case AlertP99:
		str, ok := c.Value.(string)
		if !ok {
			return &FieldError{Field: field, Msg: fmt.Sprintf("%s: want a duration for p99, as in \"250ms\"", describeValue(c.Value))}
		}
		d, fe := duration(field, str, true)
		if fe != nil {
			return fe
		}
		a.Threshold = d.Seconds()
	case AlertRPS:
		if !isNum {
			return &FieldError{Field: field, Msg: fmt.Sprintf("%s: want a number of requests a second for rps", describeValue(c.Value))}
		}
		if fe := atLeast(field, num, 0); fe != nil {
			return fe
		}
		a.Threshold = num
	case AlertReadyInstances:
		if s.Edge != nil {
			return &FieldError{Field: "spec.condition.metric", Msg: "readyInstances is a figure of a service, not of an edge: use spec.service"}
		}
		if !isNum || num != math.Trunc(num) || num < 0 {
			return &FieldError{Field: field, Msg: fmt.Sprintf("%s: want a whole number, 0 or more, for readyInstances", describeValue(c.Value))}
		}
		a.Threshold = num
	case "":
		return &FieldError{Field: "spec.condition.metric", Msg: "is required: want successRate, p99, rps or readyInstances"}
	default:
		return &FieldError{Field: "spec.condition.metric", Msg: fmt.Sprintf("%q: want successRate, p99, rps or readyInstances", c.Metric)}
	}
	return nil
}

// describeValue names a decoded JSON value for an error.
func describeValue(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("the string %q", v)
	case float64:
		return "the number " + num(v)
	case bool:
		return fmt.Sprint(v)
	case map[string]any:
		return "a map"
	case []any:
		return "a list"
	}
	return fmt.Sprintf("%v", v)
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func validateWebhook(path string, w *AlertWebhook) *FieldError {
	u, err := url.Parse(w.URL)
	switch {
	case w.URL == "":
		return &FieldError{Field: path + ".url", Msg: "is required"}
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		// The URL is not repeated: it may carry a token.
		return &FieldError{Field: path + ".url", Msg: "want an absolute http:// or https:// URL"}
	}
	if w.Secret != "" {
		// The value is not repeated either.
		return &FieldError{Field: path + ".secret", Msg: "an inline secret would be stored in etcd and shown by weft get: write secretRef: {env: NAME} or secretRef: {file: /path}, read by the control plane"}
	}
	ref := w.SecretRef
	if ref == nil {
		return nil
	}
	switch {
	case ref.Env != "" && ref.File != "":
		return &FieldError{Field: path + ".secretRef", Msg: "want env or file, not both"}
	case ref.Env != "":
		if !envNameRE.MatchString(ref.Env) {
			return &FieldError{Field: path + ".secretRef.env", Msg: fmt.Sprintf("%q is not an environment variable's name", ref.Env)}
		}
	case ref.File != "":
		if !filepath.IsAbs(ref.File) {
			return &FieldError{Field: path + ".secretRef.file", Msg: fmt.Sprintf("%q: want an absolute path (the control plane reads it)", ref.File)}
		}
	default:
		return &FieldError{Field: path + ".secretRef", Msg: "want env: NAME or file: /path"}
	}
	return nil
}

// alertServices are the services an alert names, for References; an
// edge's source "unknown" (callers the mesh does not know) is none.
func alertServices(a *Alert) []string {
	var out []string
	for _, s := range []string{a.Service, a.Source, a.Destination} {
		if s != "" && s != "unknown" {
			out = append(out, s)
		}
	}
	return out
}
