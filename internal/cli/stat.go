package cli

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/collect"
)

func init() {
	addVerb("stat", "golden metrics (requests, success, rps, latency) per service, its instances, or the calls between services: weft stat [SERVICE] [--window 1m] [--edges]", runStat)
}

// runStat prints the collection center's figures: every service, one
// service's instances, or with --edges the calls from service to service.
func runStat(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "stat")
	control := controlFlag(fs)
	out := outputFlag(fs, formatTable, formatJSON, formatYAML)
	window := fs.String("window", collect.FormatWindow(collect.DefaultWindow), "over the last this long: 10s to 1h, in 10-second steps")
	edges := fs.Bool("edges", false, "the calls from service to service (as the callers' sidecars counted them) instead of the services")
	rest, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := out.check(); err != nil {
		return err
	}
	if len(rest) > 1 {
		return usagef("stat: want stat [SERVICE] [--window D] [--edges]")
	}
	if _, err := collect.ParseWindow(*window); err != nil {
		return usagef("stat: --%v", err)
	}
	q := url.Values{"window": {*window}}
	if *edges {
		q.Set("edges", "true")
	}
	path, service := "/v1/stats", ""
	if len(rest) == 1 {
		service = rest[0]
		path += "/" + url.PathEscape(service)
	}
	c := api.NewClient(*control)
	if *edges {
		var list collect.EdgeList
		if err := c.Do(ctx, http.MethodGet, path+"?"+q.Encode(), nil, &list); err != nil {
			return fmt.Errorf("stat: %w", err)
		}
		return out.print(e.stdout, list, func(tw *tabwriter.Writer) { edgesTable(tw, list.Edges) })
	}
	var list collect.ServiceList
	if err := c.Do(ctx, http.MethodGet, path+"?"+q.Encode(), nil, &list); err != nil {
		return fmt.Errorf("stat: %w", err)
	}
	if service != "" {
		return out.print(e.stdout, list, func(tw *tabwriter.Writer) { instancesTable(tw, list.Services) })
	}
	return out.print(e.stdout, list, func(tw *tabwriter.Writer) { servicesTable(tw, list.Services) })
}

var goldenHeader = []any{"REQUESTS", "SUCCESS", "RPS", "P50", "P95", "P99"}

func servicesTable(tw *tabwriter.Writer, list []collect.ServiceStats) {
	row(tw, append([]any{"SERVICE", "INSTANCES"}, goldenHeader...)...)
	for _, s := range list {
		row(tw, append([]any{s.Service, len(s.Instances)}, goldenCells(s.Golden)...)...)
	}
}

func instancesTable(tw *tabwriter.Writer, list []collect.ServiceStats) {
	row(tw, append([]any{"SERVICE", "INSTANCE"}, goldenHeader...)...)
	for _, s := range list {
		for _, in := range s.Instances {
			row(tw, append([]any{s.Service, in.Instance}, goldenCells(in.Golden)...)...)
		}
	}
}

func edgesTable(tw *tabwriter.Writer, list []collect.EdgeStats) {
	row(tw, append([]any{"SOURCE", "DESTINATION"}, goldenHeader...)...)
	for _, x := range list {
		row(tw, append([]any{x.Source, x.Destination}, goldenCells(x.Golden)...)...)
	}
}

// goldenCells are the figures as the table prints them: "-" for what
// there is none of.
func goldenCells(g collect.Golden) []any {
	if g.Requests == 0 {
		return []any{0, "-", "-", "-", "-", "-"}
	}
	return []any{g.Requests, fmt.Sprintf("%.2f%%", 100*g.SuccessRate), fmt.Sprintf("%.2f", g.RPS),
		latency(g.P50), latency(g.P95), latency(g.P99)}
}

// latency is a quantile in milliseconds, with three significant digits
// or so: 0.75ms, 12.3ms, 250ms, 2500ms.
func latency(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms < 10:
		return fmt.Sprintf("%.2fms", ms)
	case ms < 100:
		return fmt.Sprintf("%.1fms", ms)
	}
	return fmt.Sprintf("%.0fms", ms)
}
