package cli

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/config"
)

// getProxies is `weft get proxies [SERVICE]`: every running sidecar, the
// consumer-only ones (no --app-port, no instance) included.
func getProxies(ctx context.Context, e *env, c *api.Client, out *output, service string) error {
	list, err := c.Proxies(ctx, service)
	if err != nil {
		return err
	}
	if service != "" && len(list) == 0 {
		return fmt.Errorf("no proxies of service %q", service)
	}
	return out.print(e.stdout, list, func(tw *tabwriter.Writer) {
		row(tw, "SERVICE", "ID", "NODE", "OUTBOUND", "INBOUND", "VERSION", "AGE")
		for _, p := range list {
			row(tw, p.Service, p.ID, orDash(p.Node), p.Outbound, orDash(p.Inbound), orDash(p.Version), age(p.Since))
		}
	})
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// kindWords lists the resource kinds for messages: "ExternalService, ...".
func kindWords() string { return strings.Join(config.Kinds(), ", ") }
