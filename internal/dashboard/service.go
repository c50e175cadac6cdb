package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"time"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/collect"
	"github.com/weftmesh/weft/internal/collect/alert"
	"github.com/weftmesh/weft/internal/collect/traces"
	"github.com/weftmesh/weft/internal/registry"
)

// ServicePage is the service page: the registry's view of a service,
// its figures, how every sidecar sees each of its instances, the routes
// and policy in force, its recent mesh errors, traces and alarms.
type ServicePage struct {
	Time   time.Time `json:"time"`
	Window string    `json:"window"`
	Name   string    `json:"name"`
	// Kind is mesh or external; "" when the registry does not know the
	// service (it may still have figures).
	Kind      string             `json:"kind"`
	Ready     int                `json:"ready"`
	Total     int                `json:"instances"`
	Golden    *collect.Golden    `json:"golden"`
	Spark     Spark              `json:"spark"`
	Instances []InstanceView     `json:"instanceList"`
	Sidecars  []SidecarView      `json:"sidecars"`
	Policy    json.RawMessage    `json:"policy,omitempty"`
	Routes    json.RawMessage    `json:"routes,omitempty"`
	PolicyBy  string             `json:"policyBy,omitempty"`
	Resources []ResourceView     `json:"resources"`
	Errors    []ErrorCount       `json:"errors"`
	Scanned   int                `json:"scanned"`
	In        []EdgeRow          `json:"in"`
	Out       []EdgeRow          `json:"out"`
	Traces    []traces.Summary   `json:"traces"`
	Alerts    []alert.Status     `json:"alerts"`
	Callers   []string           `json:"callers"`
	External  []externalEndpoint `json:"externalEndpoints,omitempty"`
	Problems  []string           `json:"problems,omitempty"`
	seen      map[string]*InstanceView
}

type externalEndpoint struct {
	Address string            `json:"address"`
	Labels  map[string]string `json:"labels,omitempty"`
}

// InstanceView is one instance: as the registry has it (Ready: its own
// sidecar finds its app up), as its sidecar counted what it received,
// and as each sidecar that called it sees it (Seen).
type InstanceView struct {
	ID       string            `json:"id"`
	Address  string            `json:"address"`
	Labels   map[string]string `json:"labels,omitempty"`
	Protocol string            `json:"protocol,omitempty"`
	Ready    bool              `json:"ready"`
	Since    *time.Time        `json:"since,omitempty"`
	Golden   *collect.Golden   `json:"golden"`
	Seen     []EndpointSeen    `json:"seen"`
}

// EndpointSeen is one instance in one sidecar's routing table (its
// admin /config): health by each signal (ready: the registry;
// ejected: outlier detection; probe-down: active probes; deferred:
// Retry-After), the latency estimate, failures, ejections.
type EndpointSeen struct {
	Sidecar string `json:"sidecar"`
	api.EndpointState
}

// SidecarView is one sidecar's view of the service: its circuit breaker
// for it, and whether it has called it; or why it could not be asked.
type SidecarView struct {
	Sidecar  string `json:"sidecar"`
	Admin    string `json:"admin"`
	Error    string `json:"error,omitempty"`
	Breaker  string `json:"breaker,omitempty"`
	Attempts uint64 `json:"attempts"`
	Revision int64  `json:"revision"`
}

// ResourceView is a resource in force for the service, as YAML.
type ResourceView struct {
	Ref  string `json:"ref"`
	YAML string `json:"yaml"`
}

// sidecarConfig is the part of a sidecar's /config the page reads.
type sidecarConfig struct {
	Revision int64 `json:"revision"`
	Services map[string]struct {
		Policy    json.RawMessage `json:"policy"`
		Breaker   string          `json:"breaker"`
		Routes    json.RawMessage `json:"routes"`
		Endpoints []EndpointSeen  `json:"endpoints"`
	} `json:"services"`
}

// service builds the service page. What a sidecar could not tell is
// said in Problems, and the rest is shown.
func (h *Handler) service(ctx context.Context, name, window string) (*ServicePage, error) {
	p := &ServicePage{Time: time.Now().UTC(), Window: window, Name: name, Instances: []InstanceView{}, Sidecars: []SidecarView{},
		Resources: []ResourceView{}, Errors: []ErrorCount{}, In: []EdgeRow{}, Out: []EdgeRow{}, Callers: []string{},
		seen: map[string]*InstanceView{}}
	if err := h.registryView(ctx, p); err != nil {
		return nil, err
	}
	if err := h.figures(ctx, p); err != nil {
		return nil, err
	}
	if p.Kind == "" && p.Golden == nil {
		return nil, &apiError{status: http.StatusNotFound, path: "/v1/services/" + name,
			msg: "service " + name + " not found: the registry does not know it, and none of its sidecars reported figures in the last hour"}
	}
	proxies, err := h.proxies(ctx, "")
	if err != nil {
		return nil, err
	}
	for _, px := range proxies {
		if px.Admin != "" && !slices.Contains(p.Callers, px.Service) {
			p.Callers = append(p.Callers, px.Service)
		}
	}
	sort.Strings(p.Callers)
	h.sidecarViews(ctx, p, proxies)
	h.recentErrors(ctx, p, proxies)
	if p.Resources, err = h.resourcesFor(ctx, name); err != nil {
		return nil, err
	}
	if err := h.get(ctx, "/v1/traces?"+url.Values{"service": {name}, "limit": {"10"}}.Encode(), &p.Traces); err != nil {
		return nil, err
	}
	var alerts []alert.Status
	if err := h.get(ctx, "/v1/alerts", &alerts); err != nil {
		return nil, err
	}
	p.Alerts = []alert.Status{}
	for _, a := range alerts {
		if a.Service == name || (a.Edge != nil && (a.Edge.Destination == name || a.Edge.Source == name)) {
			p.Alerts = append(p.Alerts, a)
		}
	}
	for _, in := range p.seen {
		p.Instances = append(p.Instances, *in)
	}
	sort.Slice(p.Instances, func(i, j int) bool {
		if p.Instances[i].ID != p.Instances[j].ID {
			return p.Instances[i].ID < p.Instances[j].ID
		}
		return p.Instances[i].Address < p.Instances[j].Address
	})
	return p, nil
}

// instance is the view of an instance by id (by address for an
// endpoint without one), made on first sight.
func (p *ServicePage) instance(id, address string) *InstanceView {
	key := id
	if key == "" {
		key = "@" + address
	}
	in := p.seen[key]
	if in == nil {
		in = &InstanceView{ID: id, Address: address, Seen: []EndpointSeen{}}
		p.seen[key] = in
	}
	return in
}

// registryView fills in what the registry knows of the service.
func (h *Handler) registryView(ctx context.Context, p *ServicePage) error {
	var d api.ServiceDetail
	err := h.get(ctx, "/v1/services/"+url.PathEscape(p.Name), &d)
	var ae *apiError
	if errors.As(err, &ae) && ae.status == http.StatusNotFound {
		return nil
	}
	if err != nil {
		return err
	}
	p.Kind, p.Total, p.Ready = d.Kind, d.Service.Instances, d.Ready
	for _, r := range d.Instances {
		in := p.instance(r.ID, r.Address)
		since := r.Since
		in.Labels, in.Protocol, in.Ready, in.Since = r.Labels, r.Protocol, r.Ready, &since
	}
	for _, e := range d.External {
		p.External = append(p.External, externalEndpoint{Address: e.Address, Labels: e.Labels})
	}
	return nil
}

// figures fills in the collection center's figures: the service's, its
// instances', its last hour, and the calls to and from it.
func (h *Handler) figures(ctx context.Context, p *ServicePage) error {
	q := url.Values{"window": {p.Window}}.Encode()
	var stats collect.ServiceList
	err := h.get(ctx, "/v1/stats/"+url.PathEscape(p.Name)+"?"+q, &stats)
	var ae *apiError
	switch {
	case errors.As(err, &ae) && ae.status == http.StatusNotFound:
	case err != nil:
		return err
	case len(stats.Services) == 1:
		s := stats.Services[0]
		p.Golden = &s.Golden
		for _, is := range s.Instances {
			g := is.Golden
			p.instance(is.Instance, "").Golden = &g
		}
	}
	if p.Spark, err = h.spark(ctx, p.Name); err != nil {
		return err
	}
	var edges collect.EdgeList
	if err := h.get(ctx, "/v1/stats/"+url.PathEscape(p.Name)+"?"+q+"&edges=true", &edges); err != nil {
		return err
	}
	for _, e := range edges.Edges {
		row := EdgeRow{Source: e.Source, Destination: e.Destination, Golden: e.Golden}
		if e.Destination == p.Name {
			p.In = append(p.In, row)
		}
		if e.Source == p.Name {
			p.Out = append(p.Out, row)
		}
	}
	return nil
}

// sidecarViews asks every sidecar how it routes to the service: each
// instance's state there, its breaker, and the policy and routes in
// force (from the sidecar with the newest revision).
func (h *Handler) sidecarViews(ctx context.Context, p *ServicePage, proxies []registry.Proxy) {
	views := make([]*SidecarView, len(proxies))
	configs := make([]*sidecarConfig, len(proxies))
	eachSidecar(proxies, func(i int, px registry.Proxy) {
		v := &SidecarView{Sidecar: px.Service + "/" + px.ID, Admin: px.Admin}
		var cfg sidecarConfig
		if err := h.fetchAdmin(ctx, px.Admin, "/config", &cfg); err != nil {
			v.Error = err.Error()
		} else {
			configs[i] = &cfg
			v.Revision = cfg.Revision
		}
		views[i] = v
	})
	newest := int64(-1)
	for i, v := range views {
		if v == nil {
			continue
		}
		cfg := configs[i]
		if cfg == nil {
			p.Sidecars = append(p.Sidecars, *v)
			p.Problems = append(p.Problems, "sidecar "+v.Sidecar+" at "+v.Admin+": "+v.Error)
			continue
		}
		svc, ok := cfg.Services[p.Name]
		if !ok {
			continue // it does not route to the service (yet)
		}
		v.Breaker = svc.Breaker
		for _, ep := range svc.Endpoints {
			v.Attempts += ep.Attempts
			ep.Sidecar = v.Sidecar
			in := p.instance(ep.Instance, ep.Address)
			if in.Address == "" {
				in.Address = ep.Address
			}
			in.Seen = append(in.Seen, ep)
		}
		p.Sidecars = append(p.Sidecars, *v)
		if cfg.Revision > newest {
			newest, p.Policy, p.Routes, p.PolicyBy = cfg.Revision, svc.Policy, svc.Routes, v.Sidecar
		}
	}
}
