package proxy

import (
	"github.com/weftmesh/weft/internal/proxy/plan"
	"github.com/weftmesh/weft/internal/snapshot"
)

// EndpointSpec is a ready endpoint of a test table.
type EndpointSpec struct {
	Instance, Address string
	Labels            map[string]string
	Protocol          string
}

// testPolicy is the policy of test tables: the defaults, with round
// robin, so that tests know which instance a request goes to.
func testPolicy() snapshot.Policy {
	p := snapshot.DefaultPolicy()
	p.LoadBalancer.Policy = "round-robin"
	return p
}

// updateTable updates t with services whose endpoints are all ready.
func updateTable(t *plan.Table, services map[string][]EndpointSpec) {
	snap := &snapshot.Snapshot{Services: map[string]*snapshot.Service{}}
	for name, specs := range services {
		svc := &snapshot.Service{Name: name, Policy: testPolicy()}
		for _, s := range specs {
			svc.Endpoints = append(svc.Endpoints, snapshot.Endpoint{Instance: s.Instance, Address: s.Address,
				Labels: s.Labels, Protocol: s.Protocol, Ready: true})
		}
		svc.Endpoints = sortedByAddress(svc.Endpoints)
		if len(specs) > 0 {
			svc.Protocol = specs[0].Protocol
			for _, s := range specs {
				if s.Protocol != svc.Protocol {
					svc.Protocol = ""
				}
			}
		}
		snap.Services[name] = svc
	}
	t.Update(snap)
}

func sortedByAddress(eps []snapshot.Endpoint) []snapshot.Endpoint {
	for i := 1; i < len(eps); i++ {
		for j := i; j > 0 && eps[j].Address < eps[j-1].Address; j-- {
			eps[j], eps[j-1] = eps[j-1], eps[j]
		}
	}
	return eps
}
