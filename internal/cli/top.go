package cli

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/weftmesh/weft/internal/api"
)

func init() {
	addVerb("top", "a live sample of the requests the sidecars serve: weft top [--service NAME] [--once]", runTop)
}

// runTop prints the requests the sidecars (of --service, or all) served,
// as they end: each sidecar's recent ring polled every --interval. With
// --once it prints what they hold now and stops.
func runTop(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "top")
	control := controlFlag(fs)
	service := fs.String("service", "", "only the sidecars of this service (default: every sidecar)")
	interval := fs.Duration("interval", time.Second, "how often to ask the sidecars")
	once := fs.Bool("once", false, "print the requests the sidecars hold now (the last 1,024 each), then stop")
	limit := fs.Int("n", 50, "at most this many requests a sidecar, each time")
	rest, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(rest) > 0 || *interval <= 0 || *limit < 1 {
		return usagef("top: want top [--service NAME] [--interval D] [-n N] [--once]")
	}
	c := api.NewClient(*control)
	since := time.Time{}
	if !*once {
		since = time.Now() // what ends from now on
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	row(tw, "TIME", "SIDECAR", "DIRECTION", "SOURCE", "DESTINATION", "METHOD", "PATH", "STATUS", "LATENCY", "INSTANCE", "ERROR")
	for {
		got, err := topSample(ctx, c, *service, since, *limit)
		if err != nil {
			return err
		}
		for _, x := range got {
			reason := ""
			if x.Error != nil {
				reason = x.Error.Reason
			}
			row(tw, x.Time.Local().Format("15:04:05.000"), x.From, x.Direction, orWord(x.Source, "-"), x.Service, x.Method, x.Path,
				x.Status, x.Duration.Round(10*time.Microsecond), orWord(x.Instance, "-"), orWord(reason, "-"))
			if end := x.Time.Add(x.Duration); end.After(since) {
				since = end
			}
		}
		tw.Flush()
		if *once {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(*interval):
		}
	}
}

// topSample is what the sidecars of service served after since, in the
// order the requests ended.
func topSample(ctx context.Context, c *api.Client, service string, since time.Time, limit int) ([]served, error) {
	proxies, err := c.Proxies(ctx, service)
	if err != nil {
		return nil, fmt.Errorf("top: list the sidecars: %w", err)
	}
	q := url.Values{"limit": {fmt.Sprint(limit)}}
	if !since.IsZero() {
		q.Set("since", since.UTC().Format(time.RFC3339Nano))
	}
	var all []served
	for _, p := range proxies {
		if p.Admin == "" {
			continue
		}
		var list []served
		if err := fetchAdmin(ctx, p.Admin, "/recent?"+q.Encode(), &list); err != nil {
			continue // a sidecar that does not answer (stopping, or older) is left out of the sample
		}
		all = append(all, list...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Time.Add(all[i].Duration).Before(all[j].Time.Add(all[j].Duration)) })
	return all, nil
}
