package config

import "slices"

// Refs are the resources a resource names: services (as parents,
// backends, mirrors, or the service a policy or subset is for),
// ServiceSubsets and Faults. Apply warns of those that do not exist
// yet; a route to them takes effect once they do.
type Refs struct {
	Services, Subsets, Faults []string
}

// References lists what a validated resource names, each name once,
// sorted.
func References(r *Resource) Refs {
	var out Refs
	switch r.Kind {
	case "HTTPRoute", "GRPCRoute":
		parents, rules, err := CompileRoute(r)
		if err != nil {
			return out
		}
		out.Services = append(out.Services, parents...)
		for _, rule := range rules {
			for _, b := range append(append([]RouteBackend(nil), rule.Backends...), mirrorBackends(rule.Mirrors)...) {
				if b.Subset != "" {
					out.Subsets = append(out.Subsets, b.Subset)
				} else {
					out.Services = append(out.Services, b.Service)
				}
			}
			out.Faults = append(out.Faults, rule.Faults...)
		}
	case "ServiceSubset":
		if ss, err := DecodeServiceSubset(r); err == nil {
			out.Services = append(out.Services, ss.Service)
		}
	case "TrafficPolicy":
		out.Services = append(out.Services, r.Metadata.Name)
	case "AuthorizationPolicy":
		if a, err := CompileAuthorizationPolicy(r); err == nil {
			out.Services = append(out.Services, authzServices(&a)...)
		}
	case "PeerAuthentication":
		if p, err := CompilePeerAuthentication(r); err == nil && p.Service != "" {
			out.Services = append(out.Services, p.Service)
		}
	case "AlertRule":
		if a, err := CompileAlertRule(r); err == nil {
			out.Services = append(out.Services, alertServices(&a)...)
		}
	}
	out.Services, out.Subsets, out.Faults = unique(out.Services), unique(out.Subsets), unique(out.Faults)
	return out
}

func mirrorBackends(ms []RouteMirror) []RouteBackend {
	out := make([]RouteBackend, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.Backend)
	}
	return out
}

func unique(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}
