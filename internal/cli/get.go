package cli

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/registry"
)

func runGet(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "get")
	control := controlFlag(fs)
	out := outputFlag(fs)
	rest, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := out.check(); err != nil {
		return err
	}
	if len(rest) == 0 || len(rest) > 2 {
		return usagef("get: want services, instances [SERVICE], proxies [SERVICE], or KIND [NAME] (kinds: %s)", kindWords())
	}
	c := api.NewClient(*control)
	name := ""
	if len(rest) == 2 {
		name = rest[1]
	}
	switch rest[0] {
	case "services", "service", "svc":
		list, err := c.Services(ctx)
		if err != nil {
			return err
		}
		if name != "" {
			list = filterServices(list, name)
			if len(list) == 0 {
				return fmt.Errorf("service %q not found", name)
			}
		}
		return out.print(e.stdout, list, func(tw *tabwriter.Writer) {
			row(tw, "NAME", "KIND", "INSTANCES", "READY")
			for _, s := range list {
				row(tw, s.Name, s.Kind, s.Instances, s.Ready)
			}
		})
	case "instances", "instance", "inst":
		list, err := c.Instances(ctx, name)
		if err != nil {
			return err
		}
		return out.print(e.stdout, list, func(tw *tabwriter.Writer) { instanceTable(tw, list) })
	case "proxies", "proxy":
		return getProxies(ctx, e, c, out, name)
	}
	kind, ok := config.KindFor(rest[0])
	if !ok {
		return usagef("get: unknown kind %q (try services, instances, proxies, or a kind: %s)", rest[0], kindWords())
	}
	var list []config.Resource
	if name != "" {
		r, err := c.Resource(ctx, kind, name)
		if err != nil {
			return err
		}
		list = []config.Resource{r}
	} else if list, err = c.Resources(ctx, kind); err != nil {
		return err
	}
	var v any = list
	if name != "" {
		v = list[0]
	}
	return out.print(e.stdout, v, func(tw *tabwriter.Writer) {
		row(tw, "NAME", "KIND", "REVISION", "SUMMARY")
		for i := range list {
			row(tw, list[i].Metadata.Name, list[i].Kind, list[i].Metadata.Revision, summary(&list[i]))
		}
	})
}

func filterServices(list []api.Service, name string) []api.Service {
	for _, s := range list {
		if s.Name == name {
			return []api.Service{s}
		}
	}
	return nil
}

func instanceTable(tw io.Writer, list []registry.Instance) {
	row(tw, "SERVICE", "ID", "ADDRESS", "PROTOCOL", "READY", "LABELS", "AGE")
	for _, in := range list {
		proto := in.Protocol
		if proto == "" {
			proto = "http"
		}
		row(tw, in.Service, in.ID, in.Address, proto, in.Ready, labelString(in.Labels), age(in.Since))
	}
}

// summary is the one-line gist of a resource for tables.
func summary(r *config.Resource) string {
	if r.Kind == "ExternalService" {
		if s, err := config.DecodeExternalService(r); err == nil {
			out := ""
			for i, e := range s.Endpoints {
				if i > 0 {
					out += ","
				}
				out += e.Address
			}
			return out
		}
	}
	return ""
}

func age(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t).Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
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
		row(tw, "Name:", d.Name)
		row(tw, "Kind:", d.Kind)
		row(tw, "Instances:", fmt.Sprintf("%d (%d ready)", d.Service.Instances, d.Ready))
		if len(d.Instances) > 0 {
			row(tw)
			instanceTable(tw, d.Instances)
		}
		if len(d.External) > 0 {
			row(tw)
			row(tw, "EXTERNAL ENDPOINT", "LABELS")
			for _, ep := range d.External {
				row(tw, ep.Address, labelString(ep.Labels))
			}
		}
	})
}
