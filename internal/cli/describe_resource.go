package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/snapshot"
)

// resourceDescription is weft describe KIND NAME: the resource, its
// revisions, what it names that does not exist yet, and for a route its
// rules one by one and the rules of other routes it loses to or beats.
type resourceDescription struct {
	Resource  config.Resource          `json:"resource"`
	History   []api.Change             `json:"history,omitempty"`
	Warnings  []string                 `json:"warnings,omitempty"`
	Rules     []string                 `json:"rules,omitempty"`
	Conflicts []snapshot.RouteConflict `json:"conflicts,omitempty"`
}

func describeResource(ctx context.Context, e *env, c *api.Client, out *output, kind, name string) error {
	r, err := c.Resource(ctx, kind, name)
	if err != nil {
		return err
	}
	d := resourceDescription{Resource: r}
	if d.History, err = c.History(ctx, kind, name); err != nil && !isNotFound(err) {
		return err
	}
	// The warnings apply would give it now (a dry run of it as it is).
	doc, _ := json.Marshal(r)
	if res, err := c.DryRun(ctx, doc); err == nil && len(res) == 1 {
		d.Warnings = res[0].Warnings
	}
	if kind == "HTTPRoute" || kind == "GRPCRoute" {
		_, rules, err := config.CompileRoute(&r)
		if err != nil {
			return err
		}
		for _, rr := range rules {
			d.Rules = append(d.Rules, ruleWords(rr))
		}
		if d.Conflicts, err = routeConflicts(ctx, c, []config.Resource{r}); err != nil {
			return err
		}
	}
	return out.print(e.stdout, d, func(tw *tabwriter.Writer) {
		fmt.Fprintf(tw, "%s, revision %d\n", r.Ref(), r.Metadata.Revision)
		if s := summary(&r, true); s != "" {
			fmt.Fprintf(tw, "  %s\n", s)
		}
		if len(d.Rules) > 0 {
			fmt.Fprintf(tw, "Rules:\n")
			for _, rule := range d.Rules {
				fmt.Fprintf(tw, "  %s\n", rule)
			}
		}
		for _, cf := range d.Conflicts {
			fmt.Fprintf(tw, "Never wins: %s\n", cf)
		}
		for _, w := range d.Warnings {
			fmt.Fprintf(tw, "Warning: %s\n", w)
		}
		if len(d.History) > 0 {
			fmt.Fprintf(tw, "Revisions (weft history %s %s):\n", kind, name)
			for _, h := range d.History[max(0, len(d.History)-5):] {
				note := ""
				if h.RollbackTo != 0 {
					note = fmt.Sprintf(" (rollback to %d)", h.RollbackTo)
				}
				fmt.Fprintf(tw, "  %d\t%s\t%s%s\n", h.Revision, h.Time.Local().Format(time.DateTime), h.Action, note)
			}
		}
	})
}

// ruleWords is one compiled rule as describe shows it: "rule 0 match 1:
// PathPrefix /api, header x-user=beta -> catalog/v2 90, catalog 10
// [RequestHeaderModifier, Fault/slow]".
func ruleWords(r config.RouteRule) string {
	ref := fmt.Sprintf("rule %d", r.Rule)
	if r.RuleName != "" {
		ref = fmt.Sprintf("rule %q", r.RuleName)
	}
	if r.Match > 0 {
		ref += fmt.Sprintf(" match %d", r.Match)
	}
	var to []string
	for _, b := range r.Backends {
		name := b.Service
		if b.Subset != "" {
			name = "ServiceSubset/" + b.Subset
		}
		to = append(to, fmt.Sprintf("%s %d", name, b.Weight))
	}
	dest := strings.Join(to, ", ")
	switch {
	case r.Redirect != nil:
		dest = fmt.Sprintf("redirect %d", r.Redirect.Status)
	case dest == "":
		dest = "the parent service"
	}
	var filters []string
	if r.RequestHeaders != nil {
		filters = append(filters, "RequestHeaderModifier")
	}
	if r.ResponseHeaders != nil {
		filters = append(filters, "ResponseHeaderModifier")
	}
	if r.Rewrite != nil {
		filters = append(filters, "URLRewrite")
	}
	for _, m := range r.Mirrors {
		filters = append(filters, fmt.Sprintf("RequestMirror %s %g%%", m.Backend.Service+m.Backend.Subset, m.Percent))
	}
	for _, f := range r.Faults {
		filters = append(filters, "Fault/"+f)
	}
	s := fmt.Sprintf("%s: %s -> %s", ref, r.Describe(), dest)
	if len(filters) > 0 {
		s += " [" + strings.Join(filters, ", ") + "]"
	}
	return s
}
