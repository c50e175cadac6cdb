package cli

import (
	"context"
	"fmt"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/registry"
)

// unchecked is what the READY column says of an external endpoint: the
// mesh does not health-check external endpoints (yet), so it cannot say.
const unchecked = "unchecked"

// instanceRow is one line of an instance table: a registered instance, or
// an endpoint of an ExternalService.
type instanceRow struct {
	service, id, address, protocol, ready, labels, node, since, age string
}

func meshRow(in registry.Instance) instanceRow {
	since := "-"
	if !in.Since.IsZero() {
		since = in.Since.UTC().Format(time.RFC3339)
	}
	node := in.Node
	if node == "" {
		node = "-"
	}
	return instanceRow{in.Service, in.ID, in.Address, protocolOr(in.Protocol), fmt.Sprint(in.Ready),
		labelString(in.Labels), node, since, age(in.Since)}
}

func externalRows(service string, s config.ExternalService) []instanceRow {
	out := make([]instanceRow, 0, len(s.Endpoints))
	for _, ep := range s.Endpoints {
		out = append(out, instanceRow{service, "(external)", ep.Address, protocolOr(s.Protocol), unchecked,
			labelString(ep.Labels), "-", "-", "-"})
	}
	return out
}

func instanceTable(tw *tabwriter.Writer, rows []instanceRow, wide bool) {
	head := []any{"SERVICE", "ID", "ADDRESS", "PROTOCOL", "READY", "LABELS", "AGE"}
	if wide {
		head = append(head, "NODE", "SINCE")
	}
	row(tw, head...)
	for _, r := range rows {
		cols := []any{r.service, r.id, r.address, r.protocol, r.ready, r.labels, r.age}
		if wide {
			cols = append(cols, r.node, r.since)
		}
		row(tw, cols...)
	}
}

// instancesView lists the registered instances of a service, or of all.
// JSON, YAML and names are the registered instances as the API gives
// them; tables add each external endpoint as a row whose READY is
// "unchecked".
func instancesView(ctx context.Context, c *api.Client, service string, tabular bool) (view, error) {
	list, err := c.Instances(ctx, service)
	if err != nil {
		return view{}, err
	}
	ext, err := externalEndpoints(ctx, c, tabular)
	if err != nil {
		return view{}, err
	}
	rows := make([]instanceRow, 0, len(list))
	for _, in := range list {
		rows = append(rows, meshRow(in))
	}
	for _, name := range sortedNames(ext) {
		if service == "" || service == name {
			rows = append(rows, externalRows(name, ext[name])...)
		}
	}
	v := view{value: list, table: func(tw *tabwriter.Writer, wide bool) { instanceTable(tw, rows, wide) }}
	for _, in := range list {
		v.names = append(v.names, "instance/"+in.Service+"/"+in.ID)
	}
	return v, nil
}

func sortedNames(m map[string]config.ExternalService) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func runDescribe(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "describe")
	control := controlFlag(fs)
	out := outputFlag(fs)
	rest, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := out.check(); err != nil {
		return err
	}
	if len(rest) != 2 || (rest[0] != "service" && rest[0] != "services" && rest[0] != "svc") {
		return usagef("describe: want describe service NAME")
	}
	d, err := api.NewClient(*control).Service(ctx, rest[1])
	if err != nil {
		return err
	}
	return out.print(e.stdout, d, func(tw *tabwriter.Writer) {
		ready := 0
		for _, in := range d.Instances {
			if in.Ready {
				ready++
			}
		}
		row(tw, "Name:", d.Name)
		row(tw, "Kind:", d.Kind)
		if len(d.Instances) > 0 || len(d.External) == 0 {
			row(tw, "Instances:", fmt.Sprintf("%d (%d ready)", len(d.Instances), ready))
		}
		if len(d.External) > 0 {
			row(tw, "Endpoints:", fmt.Sprintf("%d external (not health-checked)", len(d.External)))
		}
		if len(d.Instances) > 0 {
			row(tw)
			rows := make([]instanceRow, 0, len(d.Instances))
			for _, in := range d.Instances {
				rows = append(rows, meshRow(in))
			}
			instanceTable(tw, rows, false)
		}
		if len(d.External) > 0 {
			row(tw)
			row(tw, "EXTERNAL ENDPOINT", "READY", "LABELS")
			for _, ep := range d.External {
				row(tw, ep.Address, unchecked, labelString(ep.Labels))
			}
		}
	})
}
