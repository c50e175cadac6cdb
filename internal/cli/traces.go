package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/collect/traces"
)

func init() {
	addVerb("traces", "recent traces the control plane holds: weft traces [--service S] [--min-duration D] [--limit N], or one as a span tree: weft traces TRACE_ID", runTraces)
}

// runTraces lists the recent traces, or shows one.
func runTraces(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "traces")
	control := controlFlag(fs)
	out := outputFlag(fs, formatTable, formatJSON, formatYAML)
	service := fs.String("service", "", "only traces with a span of this service")
	minDur := fs.Duration("min-duration", 0, "only traces at least this long (the root span's duration, or the whole trace's without one)")
	limit := fs.Int("limit", traces.DefaultLimit, "at most this many traces, newest first")
	rest, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := out.check(); err != nil {
		return err
	}
	c := api.NewClient(*control)
	switch {
	case len(rest) == 1:
		if *service != "" || *minDur != 0 {
			return usagef("traces TRACE_ID: --service and --min-duration filter the list, not one trace")
		}
		return showTrace(ctx, e, c, out, rest[0])
	case len(rest) > 1:
		return usagef("traces: want traces [--service S] [--min-duration D] [--limit N], or traces TRACE_ID")
	case *minDur < 0:
		return usagef("traces: --min-duration %s: must not be negative", *minDur)
	case *limit < 1:
		return usagef("traces: --limit %d: must be at least 1", *limit)
	}
	q := url.Values{"limit": {strconv.Itoa(*limit)}}
	if *service != "" {
		q.Set("service", *service)
	}
	if *minDur > 0 {
		q.Set("minDuration", minDur.String())
	}
	var list []traces.Summary
	if err := c.Do(ctx, http.MethodGet, "/v1/traces?"+q.Encode(), nil, &list); err != nil {
		return fmt.Errorf("traces: %w", err)
	}
	return out.print(e.stdout, list, func(tw *tabwriter.Writer) {
		row(tw, "TRACE ID", "ROOT", "SPANS", "SERVICES", "DURATION", "START")
		for _, s := range list {
			row(tw, s.TraceID, rootWords(s), s.Spans, strings.Join(s.Services, ","), shortDuration(s.Duration), s.Start.Local().Format("15:04:05.000"))
		}
	})
}

// rootWords is the ROOT column: the root span's service and name.
func rootWords(s traces.Summary) string {
	w := s.RootService + " " + s.RootName
	if !s.HasRoot {
		w += " (root not received)"
	}
	return w
}

func showTrace(ctx context.Context, e *env, c *api.Client, out *output, id string) error {
	var tree traces.Tree
	if err := c.Do(ctx, http.MethodGet, "/v1/traces/"+url.PathEscape(id), nil, &tree); err != nil {
		return fmt.Errorf("traces: %w", err)
	}
	if out.format != formatTable {
		return out.print(e.stdout, tree, nil)
	}
	return writeTree(e.stdout, tree)
}

// barWidth is how many characters the waterfall of a trace spans.
const barWidth = 40

// writeTree prints a trace: a line about it, then each span indented
// under its parent, with its offset from the trace's start, its duration,
// its status, and a bar placing it in the trace's time.
func writeTree(w io.Writer, tree traces.Tree) error {
	start, end := tree.Start, tree.Start
	var each func(n *traces.Node, f func(*traces.Node, int), depth int)
	each = func(n *traces.Node, f func(*traces.Node, int), depth int) {
		f(n, depth)
		for _, c := range n.Children {
			each(c, f, depth+1)
		}
	}
	walk := func(f func(*traces.Node, int)) {
		for _, r := range tree.Roots {
			each(r, f, 0)
		}
	}
	walk(func(n *traces.Node, _ int) {
		if n.End.After(end) {
			end = n.End
		}
	})
	extent := end.Sub(start)
	spans := fmt.Sprintf("%d spans", tree.Spans)
	if tree.Spans == 1 {
		spans = "1 span"
	}
	fmt.Fprintf(w, "trace %s: %s across %s, %s, started %s\n", tree.TraceID, spans, strings.Join(tree.Services, ", "),
		shortDuration(tree.Duration), tree.Start.Local().Format("2006-01-02 15:04:05.000"))
	if !tree.HasRoot {
		fmt.Fprintln(w, "(its root span has not been received: the spans without a parent here are shown at the top)")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row(tw, "SPAN", "SERVICE", "KIND", "OFFSET", "DURATION", "STATUS")
	walk(func(n *traces.Node, depth int) {
		name := strings.Repeat("  ", depth) + n.Name
		if n.ParentMissing {
			name += " (parent " + n.ParentSpanID + " not received)"
		}
		status := n.Status
		if n.StatusMessage != "" {
			status += ": " + n.StatusMessage
		}
		row(tw, name, n.Service, n.Kind, "+"+shortDuration(n.Start.Sub(start)), shortDuration(n.Duration), status, bar(n.Start.Sub(start), n.Duration, extent))
	})
	return tw.Flush()
}

// bar is a span's place in the trace: barWidth characters, '=' where the
// span ran, at least one.
func bar(offset, d, extent time.Duration) string {
	if extent <= 0 {
		return "|" + strings.Repeat("=", barWidth) + "|"
	}
	from := int(int64(barWidth) * int64(offset) / int64(extent))
	to := int((int64(barWidth)*int64(offset+d) + int64(extent) - 1) / int64(extent))
	from = min(max(from, 0), barWidth-1)
	to = min(max(to, from+1), barWidth)
	return "|" + strings.Repeat(" ", from) + strings.Repeat("=", to-from) + strings.Repeat(" ", barWidth-to) + "|"
}

// shortDuration rounds d for reading: microseconds under a millisecond,
// ten of them under a second, milliseconds above.
func shortDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}
