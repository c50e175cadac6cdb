package cli

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/collect/alert"
	"github.com/weftmesh/weft/internal/config"
)

func init() {
	addVerb("alerts", "AlertRules and their state: weft alerts [--history], weft alerts history NAME, weft alerts export --prometheus", runAlerts)
}

// runAlerts lists the rules with their state, or one rule's history
// (history NAME, or --history for every rule's), or exports the rules
// as Prometheus alerting rules (export --prometheus).
func runAlerts(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "alerts")
	control := controlFlag(fs)
	out := outputFlag(fs)
	history := fs.Bool("history", false, "every rule's transitions, oldest first")
	prom := fs.Bool("prometheus", false, "with export: write Prometheus alerting rules")
	file := fs.String("f", "", "with export: read the AlertRules from this file (- for standard input) instead of the control plane")
	rest, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := out.check(); err != nil {
		return err
	}
	c := api.NewClient(*control)
	switch {
	case len(rest) >= 1 && rest[0] == "export":
		if !*prom || len(rest) > 1 {
			return usagef("alerts: want alerts export --prometheus [-f FILE] (Prometheus rules are the one export)")
		}
		return exportAlerts(ctx, e.stdout, c, *file)
	case len(rest) == 2 && rest[0] == "history":
		return showAlerts(ctx, e, c, out, rest[1], true)
	case len(rest) == 0:
		return showAlerts(ctx, e, c, out, "", *history)
	}
	return usagef("alerts: want alerts [--history], alerts history NAME, or alerts export --prometheus")
}

// showAlerts prints the rules (only name, when given) as a table of
// their states or of their transitions.
func showAlerts(ctx context.Context, e *env, c *api.Client, out *output, name string, history bool) error {
	var list []alert.Status
	if err := c.Do(ctx, "GET", "/v1/alerts", nil, &list); err != nil {
		return fmt.Errorf("alerts: %w", err)
	}
	if name != "" {
		var one []alert.Status
		for _, s := range list {
			if s.Rule == name {
				one = append(one, s)
			}
		}
		if len(one) == 0 {
			return fmt.Errorf("alerts: no AlertRule %s (is it applied? weft get alertrules; a new rule shows after its first evaluation)", name)
		}
		list = one
	}
	var value any = list
	if name != "" {
		value = list[0]
	}
	return out.print(e.stdout, value, func(tw *tabwriter.Writer) {
		if history {
			row(tw, "TIME", "RULE", "FROM", "TO", "VALUE")
			for _, s := range list {
				for _, tr := range s.History {
					row(tw, tr.Time.Local().Format(time.DateTime), s.Rule, tr.From, tr.To, valueText(s.Metric, tr.Value))
				}
			}
			return
		}
		row(tw, "STATE", "RULE", "TARGET", "CONDITION", "VALUE", "SINCE")
		for _, s := range list {
			row(tw, s.State, s.Rule, s.Target(), s.Condition(), valueText(s.Metric, s.Value), age(s.Since))
		}
	})
}

func valueText(metric string, v *float64) string {
	if v == nil {
		return "no data"
	}
	return alert.FormatValue(metric, *v)
}

// exportAlerts writes the AlertRules of the control plane, or of file,
// as Prometheus alerting rules.
func exportAlerts(ctx context.Context, w io.Writer, c *api.Client, file string) error {
	var list []config.Resource
	if file != "" {
		b, err := readFile(file)
		if err != nil {
			return err
		}
		if list, err = config.Parse(b); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
	} else {
		var err error
		if list, err = c.Resources(ctx, "AlertRule"); err != nil {
			return fmt.Errorf("alerts export: %w", err)
		}
	}
	rules := make([]config.Alert, 0, len(list))
	for i := range list {
		if list[i].Kind != "AlertRule" {
			continue
		}
		a, err := config.CompileAlertRule(&list[i])
		if err != nil {
			return fmt.Errorf("alerts export: %w", err)
		}
		rules = append(rules, a)
	}
	return alert.Export(w, rules)
}
