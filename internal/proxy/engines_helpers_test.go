package proxy

import (
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/weftmesh/weft/internal/proxy/plan"
	"github.com/weftmesh/weft/internal/proxy/stdhttp"
	"github.com/weftmesh/weft/internal/snapshot"
)

// engineNames are the engines a policy test runs on: the HTTP/1.1 fast
// path, Weft's HTTP/2 engine, and x/net's.
var engineNames = []string{"h1", "weft", "x/net"}

// policyOutbound is an outbound listener on engine with service svc as
// given, and a client that speaks to it as that engine expects (HTTP/1.1
// or h2c). It returns the listener's address, the client, the metrics'
// registry and the routing table.
func policyOutbound(t *testing.T, engine string, svc *snapshot.Service) (string, http.RoundTripper, *prometheus.Registry, *plan.Table) {
	t.Helper()
	return meshOutbound(t, engine, nil, svc)
}

// meshOutbound is policyOutbound for several services, with the
// Outbound as its mirrorer, set up by setup (nil: as it comes).
func meshOutbound(t *testing.T, engine string, setup func(*stdhttp.Outbound), svcs ...*snapshot.Service) (string, http.RoundTripper, *prometheus.Registry, *plan.Table) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := plan.NewMetrics(reg)
	table := plan.NewTable(m, plan.Policy{})
	out := stdhttp.NewOutbound(table, stdhttp.NewTransport(), stdhttp.NewTransport(), m, discard)
	if setup != nil {
		setup(out)
	}
	table.SetMirrorer(out)
	t.Cleanup(out.CloseMirrors)
	snap := &snapshot.Snapshot{Services: map[string]*snapshot.Service{}}
	for _, svc := range svcs {
		svc.Endpoints = sortedByAddress(svc.Endpoints)
		snap.Services[svc.Name] = svc
	}
	if errs := table.Update(snap); len(errs) > 0 {
		t.Fatal(errs)
	}
	t.Cleanup(table.CloseIdle)
	h2 := stdhttp.NewH2CTransport()
	t.Cleanup(h2.CloseIdleConnections)
	out.H2 = h2
	srv := Config{Name: "outbound", Resolve: out.Resolve, H2: out, Metrics: m, Log: discard}
	if engine == "weft" {
		srv.H2Frames = out.RouteH2
	}
	addr := serveProxy(t, srv)
	if engine == "h1" {
		tr := &http.Transport{}
		t.Cleanup(tr.CloseIdleConnections)
		return addr, tr, reg, table
	}
	return addr, newH2CClient(t), reg, table
}

// settled waits until no attempt on the table's service svc is in flight.
func settled(t *testing.T, table *plan.Table, svc string) {
	t.Helper()
	waitFor(t, 5*time.Second, "nothing in flight", func() bool {
		for _, ep := range table.Lookup(svc).Endpoints {
			if ep.InFlight() != 0 {
				return false
			}
		}
		return true
	})
}
