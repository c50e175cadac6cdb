package proxy

import (
	"context"
	"fmt"
	"github.com/weftmesh/weft/internal/h1"
	"net/http"
	"time"
)

// Inbound is the handler on the sidecar's inbound listener: it takes
// requests from peer sidecars and plain clients and forwards them to the
// local app.
type Inbound struct {
	Service   string
	Instance  string
	App       string // host:port of the local app
	Transport http.RoundTripper
	// H2 carries requests that arrived as HTTP/2 to the app (nil: HTTP/1.1).
	H2      http.RoundTripper
	metrics *serviceMetrics
	cluster *Cluster // the app, as the fast path's only destination
}

// NewInbound wires an Inbound.
func NewInbound(service, instance, app string, transport http.RoundTripper, m *Metrics) *Inbound {
	in := &Inbound{Service: service, Instance: instance, App: app, Transport: transport}
	if m != nil {
		in.metrics = m.forService("inbound", service)
	}
	in.cluster = &Cluster{Service: service, Endpoints: []*Endpoint{newEndpoint(service, instance, app, nil)}, metrics: in.metrics}
	return in
}

// Resolve is the fast path's routing decision for the inbound listener:
// always the local app.
func (in *Inbound) Resolve(*h1.Head, []byte, bool) (*Cluster, *MeshError) { return in.cluster, nil }

func (in *Inbound) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	in.metrics.begin()
	status := statusAborted
	defer func() { in.metrics.done(status, start) }()
	status = in.forward(w, r)
}

func (in *Inbound) forward(w http.ResponseWriter, r *http.Request) int {
	if r.Method == http.MethodConnect {
		return in.fail(w, &MeshError{Status: http.StatusMethodNotAllowed, Reason: ReasonBadRequest, Service: in.Service,
			Instance: in.Instance, Message: "CONNECT is not accepted on the inbound listener"})
	}
	prepare(r)
	r, cancel := withGRPCDeadline(r)
	defer cancel()
	setGRPCTimeout(r)
	r.URL.Host = in.App
	resp, err := transportFor(r, in.Transport, in.H2).RoundTrip(r)
	if err != nil {
		if r.Context().Err() != nil {
			if isGRPC(r) && r.Context().Err() == context.DeadlineExceeded {
				return writeGRPCDeadlineExceeded(w, in.metrics, &MeshError{Reason: ReasonUpstreamTimeout,
					Message: fmt.Sprintf("grpc-timeout ran out waiting for the app of %s at %s", in.Instance, in.App)})
			}
			return statusClientGone
		}
		f := classify(err)
		if f.connect {
			in.cluster.Endpoints[0].connectFailed()
		}
		return in.fail(w, &MeshError{Status: f.status, Reason: f.reason, Service: in.Service, Instance: in.Instance,
			Message: fmt.Sprintf("app of %s at %s: %v", in.Instance, in.App, err)})
	}
	status := writeResponse(w, r, resp)
	in.metrics.grpcDone(resp)
	return status
}

func (in *Inbound) fail(w http.ResponseWriter, e *MeshError) int {
	in.metrics.meshError(e.Reason)
	e.write(w)
	return e.Status
}

// RouteH2 is the HTTP/2 engine's routing for the inbound listener of an
// app that speaks HTTP/2: always the app.
func (in *Inbound) RouteH2(string) (*Cluster, string, *MeshError) { return in.cluster, "", nil }

// CloseIdle closes the connections to the app that carry no request.
func (in *Inbound) CloseIdle() { in.cluster.Endpoints[0].closeIdle() }
