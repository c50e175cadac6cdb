package stdhttp

import (
	"fmt"
	"net/http"

	"github.com/weftmesh/weft/internal/h1"
	"github.com/weftmesh/weft/internal/proxy/plan"
)

// OnAppUnreachable registers f to run whenever a connection to the app
// cannot be made (HTTP or TCP); call it before serving.
func (in *Inbound) OnAppUnreachable(f func()) { in.cluster.Load().Endpoints[0].OnConnectFailed = f }

// AppCluster is the inbound's only destination, the local app, as a cluster:
// where the inbound listener forwards connections that are not HTTP.
func (in *Inbound) AppCluster() *plan.Cluster { return in.cluster.Load() }

// Fixed routes every request to one service, whatever its Host says: the
// routing of an upstream listener, a local port bound to one service for
// clients that cannot use an HTTP proxy (Consul's upstreams).
type Fixed struct {
	Service string      // the one service every request goes to
	Table   *plan.Table // where the service's cluster is looked up
	Out     *Outbound   // HTTP/2 requests go through it, with Host set to Service
}

// plan.Cluster is the service's cluster, or nil while the mesh has no such service.
func (f *Fixed) Cluster() *plan.Cluster { return f.Table.Lookup(f.Service) }

// Resolve is the fast path's routing decision: always the one service.
func (f *Fixed) Resolve(*h1.Head, []byte, bool) (*plan.Cluster, *plan.MeshError) {
	if c := f.Cluster(); c != nil {
		return c, nil
	}
	return nil, f.unknown()
}

func (f *Fixed) unknown() *plan.MeshError {
	return &plan.MeshError{Status: http.StatusNotFound, Reason: plan.ReasonUnknownService, Service: f.Service,
		Message: fmt.Sprintf("this upstream listener is bound to %q, which the mesh does not know (yet)", f.Service)}
}

// ServeHTTP serves HTTP/2 requests on the upstream listener.
func (f *Fixed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r.Host, r.URL.Host = f.Service, ""
	f.Out.ServeHTTP(w, r)
}

// RouteH2 is the HTTP/2 engine's routing for an upstream listener: the
// one service, with :authority set to its name.
func (f *Fixed) RouteH2(string) (*plan.Cluster, string, *plan.MeshError) {
	if c := f.Cluster(); c != nil {
		return c, f.Service, nil
	}
	return nil, "", f.unknown()
}
