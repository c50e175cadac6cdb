package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/snapshot"
)

// getFormats are the -o formats of weft get; table is the default.
var getFormats = []string{formatTable, formatWide, formatJSON, formatYAML, formatName}

func runGet(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "get")
	control := controlFlag(fs)
	out := outputFlag(fs, getFormats...)
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
	var v view
	switch rest[0] {
	case "services", "service", "svc":
		v, err = servicesView(ctx, c, name, out.tabular())
	case "instances", "instance", "inst":
		v, err = instancesView(ctx, c, name, out.tabular())
	case "proxies", "proxy":
		return getProxies(ctx, e, c, out, name)
	default:
		kind, ok := config.KindFor(rest[0])
		if !ok {
			return usagef("get: unknown kind %q (try services, instances, proxies, or a kind: %s)", rest[0], kindWords())
		}
		v, err = resourcesView(ctx, c, kind, name)
	}
	if err != nil {
		return err
	}
	return out.show(e.stdout, v)
}

// tabular reports whether the format is a table, which shows external
// endpoints beside instances and so needs the ExternalService resources.
func (o *output) tabular() bool { return o.format == formatTable || o.format == formatWide }

// externalEndpoints maps each ExternalService's name to its spec; nil when
// not wanted.
func externalEndpoints(ctx context.Context, c *api.Client, want bool) (map[string]config.ExternalService, error) {
	if !want {
		return nil, nil
	}
	list, err := c.Resources(ctx, "ExternalService")
	if err != nil {
		return nil, fmt.Errorf("list external services: %w", err)
	}
	out := make(map[string]config.ExternalService, len(list))
	for i := range list {
		if s, err := config.DecodeExternalService(&list[i]); err == nil {
			out[list[i].Metadata.Name] = s
		}
	}
	return out, nil
}

func servicesView(ctx context.Context, c *api.Client, name string, tabular bool) (view, error) {
	list, err := c.Services(ctx)
	if err != nil {
		return view{}, err
	}
	if name != "" {
		list = filterServices(list, name)
		if len(list) == 0 {
			return view{}, fmt.Errorf("service %q not found", name)
		}
	}
	ext, err := externalEndpoints(ctx, c, tabular)
	if err != nil {
		return view{}, err
	}
	v := view{value: list}
	for _, s := range list {
		v.names = append(v.names, "service/"+s.Name)
	}
	v.table = func(tw *tabwriter.Writer, wide bool) {
		head := []any{"NAME", "KIND", "INSTANCES", "READY"}
		if wide {
			head = append(head, "ENDPOINTS")
		}
		row(tw, head...)
		for _, s := range list {
			es := ext[s.Name]
			cols := []any{s.Name, s.Kind, s.Instances, readyColumn(s.Ready, len(es.Endpoints))}
			if wide {
				cols = append(cols, endpointList(es, false))
			}
			row(tw, cols...)
		}
	}
	return v, nil
}

// readyColumn shows how many instances are ready. External endpoints are
// not health-checked: they are counted apart, as unchecked, not as ready.
// (The API's ready count includes them; external is how many there are.)
func readyColumn(ready, external int) string {
	checked := ready - external
	switch {
	case external == 0:
		return fmt.Sprint(ready)
	case checked <= 0:
		return "unchecked"
	}
	return fmt.Sprintf("%d (+%d unchecked)", checked, external)
}

func filterServices(list []api.Service, name string) []api.Service {
	for _, s := range list {
		if s.Name == name {
			return []api.Service{s}
		}
	}
	return nil
}

func resourcesView(ctx context.Context, c *api.Client, kind, name string) (view, error) {
	var list []config.Resource
	if name != "" {
		r, err := c.Resource(ctx, kind, name)
		if err != nil {
			return view{}, err
		}
		list = []config.Resource{r}
	} else {
		var err error
		if list, err = c.Resources(ctx, kind); err != nil {
			return view{}, err
		}
	}
	// One resource prints as an object, several as a list: both apply back.
	v := view{value: list}
	if name != "" {
		v.value = list[0]
	}
	for i := range list {
		v.names = append(v.names, list[i].Ref())
	}
	var conflicts []snapshot.RouteConflict
	if kind == "HTTPRoute" || kind == "GRPCRoute" {
		var err error
		if conflicts, err = routeConflicts(ctx, c, list); err != nil {
			return view{}, err
		}
	}
	v.table = func(tw *tabwriter.Writer, wide bool) {
		defer func() {
			if len(conflicts) > 0 {
				tw.Flush()
				fmt.Fprintln(tw, "\nRULES THAT NEVER WIN (a rule first in Gateway API's precedence matches the same requests):")
				for _, cf := range conflicts {
					fmt.Fprintln(tw, "  "+cf.String())
				}
			}
		}()
		if wide {
			row(tw, "NAME", "KIND", "REVISION", "PROTOCOL", "LABELS", "ENDPOINTS")
		} else {
			row(tw, "NAME", "KIND", "REVISION", "SUMMARY")
		}
		for i := range list {
			r := &list[i]
			if !wide {
				row(tw, r.Metadata.Name, r.Kind, r.Metadata.Revision, summary(r, false))
				continue
			}
			proto := "-"
			if r.Kind == "ExternalService" {
				if s, err := config.DecodeExternalService(r); err == nil {
					proto = protocolOr(s.Protocol)
				}
			}
			row(tw, r.Metadata.Name, r.Kind, r.Metadata.Revision, proto, labelString(r.Metadata.Labels), summary(r, true))
		}
	}
	return v, nil
}

// routeConflicts are the conflicts among every HTTPRoute and GRPCRoute
// in force that involve a route of list.
func routeConflicts(ctx context.Context, c *api.Client, list []config.Resource) ([]snapshot.RouteConflict, error) {
	var all []config.Resource
	for _, kind := range []string{"HTTPRoute", "GRPCRoute"} {
		rs, err := c.Resources(ctx, kind)
		if err != nil {
			return nil, err
		}
		all = append(all, rs...)
	}
	shown := map[string]bool{}
	for i := range list {
		shown[list[i].Ref()] = true
	}
	var out []snapshot.RouteConflict
	for _, cf := range snapshot.RouteConflicts(all) {
		if shown[routeOf(cf.Loser)] || shown[routeOf(cf.Winner)] {
			out = append(out, cf)
		}
	}
	return out, nil
}

// routeOf is the Kind/name of "Kind/name rule N".
func routeOf(rule string) string {
	ref, _, _ := strings.Cut(rule, " ")
	return ref
}

// summary is the gist of a resource for tables: an ExternalService's
// endpoints, with their labels when wide; a TrafficPolicy's main knobs.
func summary(r *config.Resource, wide bool) string {
	switch r.Kind {
	case "ExternalService":
		if s, err := config.DecodeExternalService(r); err == nil {
			return endpointList(s, wide)
		}
	case "TrafficPolicy":
		if p, err := config.DecodeTrafficPolicy(r); err == nil {
			return policySummary(p)
		}
	case "HTTPRoute", "GRPCRoute":
		if parents, rules, err := config.CompileRoute(r); err == nil {
			return routeSummary(parents, rules)
		}
	case "ServiceSubset":
		if s, err := config.DecodeServiceSubset(r); err == nil {
			return s.Service + " " + labelString(s.Labels)
		}
	case "PeerAuthentication":
		if p, err := config.CompilePeerAuthentication(r); err == nil {
			target := p.Service
			if target == "" {
				target = "mesh"
			}
			return target + " " + p.Mode
		}
	case "AuthorizationPolicy":
		if a, err := config.CompileAuthorizationPolicy(r); err == nil {
			target := a.Service
			if target == "" {
				target = "mesh"
			}
			out := fmt.Sprintf("%s %s rules=%d", target, a.Action, len(a.Rules))
			if a.Default != "" {
				out += " default=" + a.Default
			}
			return out
		}
	case "AlertRule":
		if a, err := config.CompileAlertRule(r); err == nil {
			return fmt.Sprintf("%s %s %s %s window=%s for=%s", a.Target(), a.Metric, a.Op, alertValue(a), a.Window, a.For)
		}
	}
	return ""
}

// alertValue is an alert's threshold as its rule writes it.
func alertValue(a config.Alert) string {
	if a.Metric == config.AlertP99 {
		return time.Duration(a.Threshold * float64(time.Second)).String()
	}
	return strconv.FormatFloat(a.Threshold, 'g', -1, 64)
}

// routeSummary is "parents=catalog rules=2 backends=catalog 90,catalog-v2 10".
func routeSummary(parents []string, rules []config.RouteRule) string {
	var backends []string
	seen := map[string]bool{}
	for _, r := range rules {
		for _, b := range r.Backends {
			name := b.Service + b.Subset
			if k := fmt.Sprint(name, b.Weight); !seen[k] {
				seen[k] = true
				backends = append(backends, fmt.Sprintf("%s %d", name, b.Weight))
			}
		}
	}
	s := fmt.Sprintf("parents=%s matches=%d", strings.Join(parents, ","), len(rules))
	if len(backends) > 0 {
		s += " backends=" + strings.Join(backends, ",")
	}
	return s
}

// policySummary is "lb=peak-ewma,timeout=15s,attempts=3", then the
// sections that are off unless given, when they are on.
func policySummary(p config.TrafficPolicy) string {
	parts := []string{"lb=" + p.LoadBalancer.Policy, "timeout=" + p.Timeouts.Request,
		fmt.Sprintf("attempts=%d", p.Retries.Attempts)}
	cb := p.CircuitBreaker
	if cb.FailureRatio > 0 || cb.MaxConnections > 0 || cb.MaxPendingRequests > 0 || cb.MaxRequests > 0 {
		parts = append(parts, "circuit-breaker")
	}
	if !p.HealthCheck.Enabled {
		parts = append(parts, "no-health-check")
	}
	if p.RateLimit.Client != nil {
		parts = append(parts, "client-limit")
	}
	if p.RateLimit.Server != nil {
		parts = append(parts, "server-limit")
	}
	if p.Hedging != nil {
		parts = append(parts, "hedging")
	}
	if p.Fallback != nil {
		parts = append(parts, "fallback")
	}
	return strings.Join(parts, ",")
}

// endpointList is "a:1,b:2", or "a:1{dc=east},b:2" with labels; "-" when empty.
func endpointList(s config.ExternalService, withLabels bool) string {
	if len(s.Endpoints) == 0 {
		return "-"
	}
	parts := make([]string, len(s.Endpoints))
	for i, e := range s.Endpoints {
		parts[i] = e.Address
		if withLabels && len(e.Labels) > 0 {
			parts[i] += "{" + labels(e.Labels).String() + "}"
		}
	}
	return strings.Join(parts, ",")
}

func protocolOr(p string) string {
	if p == "" {
		return "http"
	}
	return p
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
