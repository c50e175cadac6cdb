package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"sigs.k8s.io/yaml"

	"github.com/weftmesh/weft/internal/config"
)

// resourcesFor is the resources in force for a service, as YAML: its
// TrafficPolicy, the routes attached to it, the ServiceSubsets of it,
// the policies of kinds whose spec names it in spec.service (such as
// AuthorizationPolicy and PeerAuthentication, where the control plane
// has the kind), and the
// Faults its routes inject.
func (h *Handler) resourcesFor(ctx context.Context, service string) ([]ResourceView, error) {
	var out []config.Resource
	var faults []string
	for _, kind := range []string{"TrafficPolicy", "HTTPRoute", "GRPCRoute", "ServiceSubset", "AuthorizationPolicy", "PeerAuthentication"} {
		var list []config.Resource
		err := h.get(ctx, "/v1/resources/"+kind, &list)
		var ae *apiError
		if errors.As(err, &ae) && ae.status == http.StatusNotFound {
			continue // a kind this control plane does not have
		}
		if err != nil {
			return nil, err
		}
		for i := range list {
			r := &list[i]
			switch kind {
			case "TrafficPolicy":
				if r.Metadata.Name != service {
					continue
				}
			case "HTTPRoute", "GRPCRoute":
				parents, _, err := config.CompileRoute(r)
				if err != nil || !slices.Contains(parents, service) {
					continue
				}
				faults = append(faults, config.References(r).Faults...)
			case "ServiceSubset":
				ss, err := config.DecodeServiceSubset(r)
				if err != nil || ss.Service != service {
					continue
				}
			default:
				var spec struct {
					Service string `json:"service"`
				}
				if json.Unmarshal(r.Spec, &spec) != nil || spec.Service != service {
					continue
				}
			}
			out = append(out, *r)
		}
	}
	if len(faults) > 0 {
		var list []config.Resource
		if err := h.get(ctx, "/v1/resources/Fault", &list); err != nil {
			return nil, err
		}
		for _, r := range list {
			if slices.Contains(faults, r.Metadata.Name) {
				out = append(out, r)
			}
		}
	}
	views := make([]ResourceView, 0, len(out))
	for i := range out {
		y, err := asYAML(&out[i])
		if err != nil {
			return nil, fmt.Errorf("%s as YAML: %w", out[i].Ref(), err)
		}
		views = append(views, ResourceView{Ref: out[i].Ref(), YAML: y})
	}
	return views, nil
}

// asYAML writes a resource as weft get -o yaml would, to apply again.
func asYAML(r *config.Resource) (string, error) {
	j, err := json.Marshal(r)
	if err != nil {
		return "", err
	}
	y, err := yaml.JSONToYAML(j)
	return string(y), err
}
