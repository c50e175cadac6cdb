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
