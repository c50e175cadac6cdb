package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/config/configstore"
	"github.com/weftmesh/weft/internal/dashboard"
	"github.com/weftmesh/weft/internal/push/hub"
	"github.com/weftmesh/weft/internal/registry"
	"github.com/weftmesh/weft/internal/registry/regstore"
	"github.com/weftmesh/weft/internal/telemetry"
	"github.com/weftmesh/weft/internal/version"
)

func (c *Control) routes(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	pushed := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "weft_control_push_messages_total",
		Help: "Messages written to sidecar streams, pings included.",
	})
	latency := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "weft_control_push_latency_seconds",
		Help:    "Time from a change reaching the control plane (its store's watch) to its write on a sidecar stream.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	})
	streamErrors := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weft_control_stream_errors_total",
		Help: "Sidecar streams refused (bad-request) or ended because they could not be written (write).",
	}, []string{"reason"})
	reg.MustRegister(pushed, latency, streamErrors)
	mux.Handle("GET /v1/stream", &hub.Handler{Hub: c.hub, Streams: &c.streams, OnSend: func(n int) { pushed.Add(float64(n)) },
		OnPush: func(d time.Duration) { latency.Observe(d.Seconds()) }, OnError: func(r string) { streamErrors.WithLabelValues(r).Inc() }})
	mux.HandleFunc("PUT /v1/instances/{service}/{id}", c.putInstance)
	mux.HandleFunc("DELETE /v1/instances/{service}/{id}", c.deleteInstance)
	mux.HandleFunc("GET /v1/instances", c.listInstances)
	mux.HandleFunc("PUT /v1/proxies/{service}/{id}", c.putProxy)
	mux.HandleFunc("DELETE /v1/proxies/{service}/{id}", c.deleteProxy)
	mux.HandleFunc("GET /v1/proxies", c.listProxies)
	mux.HandleFunc("POST /v1/leases/{lease}/keepalive", c.keepAlive)
	mux.HandleFunc("GET /v1/services", c.listServices)
	mux.HandleFunc("GET /v1/services/{name}", c.getService)
	mux.HandleFunc("DELETE /v1/services/{name}", c.forgetService)
	mux.HandleFunc("POST /v1/resources", c.applyResources)
	mux.HandleFunc("GET /v1/resources/{kind}", c.listResources)
	mux.HandleFunc("GET /v1/resources/{kind}/{name}", c.getResource)
	mux.HandleFunc("DELETE /v1/resources/{kind}/{name}", c.deleteResource)
	mux.HandleFunc("GET /v1/history/{kind}/{name}", c.history)
	mux.HandleFunc("POST /v1/rollback/{kind}/{name}", c.rollback)
	c.mountTraces(mux)
	c.mountStats(mux)
	c.mountAlerts(mux)
	c.dash = dashboard.Mount(mux, c.log)
	c.mountTokens(mux)
	c.mountCertificates(mux)
	mux.HandleFunc("GET /v1/version", func(w http.ResponseWriter, r *http.Request) {
		telemetry.WriteJSON(w, http.StatusOK, api.Version{Version: version.Version, Store: c.storeKind()})
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", c.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}

func fail(w http.ResponseWriter, code int, err error) {
	e := api.Error{Error: err.Error()}
	var fe *config.FieldError
	if errors.As(err, &fe) {
		e.Field = fe.Field
	}
	telemetry.WriteJSON(w, code, e)
}

func (c *Control) readyz(w http.ResponseWriter, r *http.Request) {
	select {
	case <-c.hub.Ready():
	default:
		fail(w, http.StatusServiceUnavailable, errors.New("not ready: loading state from etcd"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if _, err := c.st.Client.Get(ctx, "/weft/readyz"); err != nil {
		fail(w, http.StatusServiceUnavailable, errors.New("not ready: etcd: "+err.Error()))
		return
	}
	w.Write([]byte("ok\n"))
}

func (c *Control) putInstance(w http.ResponseWriter, r *http.Request) {
	var req api.RegisterRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		fail(w, http.StatusBadRequest, errors.New("body: "+err.Error()))
		return
	}
	if req.Instance.Service != r.PathValue("service") || req.Instance.ID != r.PathValue("id") {
		fail(w, http.StatusBadRequest, errors.New("instance.service and instance.id must match the path"))
		return
	}
	if err := req.Instance.Validate(); err != nil {
		fail(w, http.StatusUnprocessableEntity, err)
		return
	}
	if !c.mayUseLease(w, r, int64(req.Lease), req.Instance.Service) {
		return
	}
	ttl := c.ttl(req.TTLSeconds)
	lease, err := c.instances.Put(r.Context(), req.Instance, int64(req.Lease), ttl)
	if err != nil {
		fail(w, http.StatusServiceUnavailable, err)
		return
	}
	telemetry.WriteJSON(w, http.StatusOK, api.RegisterResponse{Lease: registry.LeaseID(lease), TTLSeconds: int(ttl / time.Second)})
}

// mayUseLease says whether the call r may renew lease, or attach a
// record of service to it, and answers 403 when not. A sidecar that
// proved its identity with a certificate may use only a lease that holds
// its own service's records (or none yet): another's lease kept alive
// would keep that service's lapsed instances in the mesh, and a record
// of its own on it would let its deregistration revoke them. A call with
// the API token, or on plain loopback, is not bound to a service. A
// lease that lapsed is for the handler to answer (or replace).
func (c *Control) mayUseLease(w http.ResponseWriter, r *http.Request, lease int64, service string) bool {
	id, ok := certCaller(r)
	if !ok || lease == 0 {
		return true
	}
	held, err := c.instances.LeaseServices(r.Context(), lease)
	switch {
	case errors.Is(err, registry.ErrLeaseNotFound):
		return true
	case err != nil:
		fail(w, http.StatusServiceUnavailable, err)
		return false
	}
	for _, s := range held {
		if s != service {
			whose := "records of service " + s
			if s == "" {
				whose = "keys that are no registry records"
			}
			fail(w, http.StatusForbidden, fmt.Errorf("lease %d holds %s: the certificate of %s may use only a lease of service %s", lease, whose, id, service))
			return false
		}
	}
	return true
}

// ttl is the lease TTL a registration asked for, or the default.
func (c *Control) ttl(seconds int) time.Duration {
	if seconds > 0 {
		return time.Duration(seconds) * time.Second
	}
	return c.cfg.LeaseTTL
}

func (c *Control) putProxy(w http.ResponseWriter, r *http.Request) {
	var req api.ProxyRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		fail(w, http.StatusBadRequest, errors.New("body: "+err.Error()))
		return
	}
	if req.Proxy.Service != r.PathValue("service") || req.Proxy.ID != r.PathValue("id") {
		fail(w, http.StatusBadRequest, errors.New("proxy.service and proxy.id must match the path"))
		return
	}
	if err := req.Proxy.Validate(); err != nil {
		fail(w, http.StatusUnprocessableEntity, err)
		return
	}
	if !c.mayUseLease(w, r, int64(req.Lease), req.Proxy.Service) {
		return
	}
	ttl := c.ttl(req.TTLSeconds)
	lease, err := c.instances.PutProxy(r.Context(), req.Proxy, int64(req.Lease), ttl)
	if err != nil {
		fail(w, http.StatusServiceUnavailable, err)
		return
	}
	telemetry.WriteJSON(w, http.StatusOK, api.RegisterResponse{Lease: registry.LeaseID(lease), TTLSeconds: int(ttl / time.Second)})
}

func (c *Control) deleteProxy(w http.ResponseWriter, r *http.Request) {
	if err := c.instances.DeleteProxy(r.Context(), r.PathValue("service"), r.PathValue("id")); err != nil {
		fail(w, http.StatusServiceUnavailable, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (c *Control) listProxies(w http.ResponseWriter, r *http.Request) {
	list, err := c.instances.ListProxies(r.Context(), r.URL.Query().Get("service"))
	if err != nil {
		fail(w, http.StatusServiceUnavailable, err)
		return
	}
	telemetry.WriteJSON(w, http.StatusOK, list)
}

func (c *Control) deleteInstance(w http.ResponseWriter, r *http.Request) {
	if err := c.instances.Delete(r.Context(), r.PathValue("service"), r.PathValue("id")); err != nil {
		fail(w, http.StatusServiceUnavailable, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (c *Control) keepAlive(w http.ResponseWriter, r *http.Request) {
	lease, err := strconv.ParseInt(r.PathValue("lease"), 10, 64)
	if err != nil {
		fail(w, http.StatusBadRequest, fmt.Errorf("lease %q: want a decimal lease id", r.PathValue("lease")))
		return
	}
	id, ok := certCaller(r)
	if ok && !c.mayUseLease(w, r, lease, id.Service) {
		return
	}
	err = c.instances.KeepAlive(r.Context(), lease)
	switch {
	case errors.Is(err, registry.ErrLeaseNotFound):
		fail(w, http.StatusNotFound, err)
	case err != nil:
		fail(w, http.StatusServiceUnavailable, err)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

func (c *Control) listInstances(w http.ResponseWriter, r *http.Request) {
	list, err := c.instances.List(r.Context(), r.URL.Query().Get("service"))
	if err != nil {
		fail(w, http.StatusServiceUnavailable, err)
		return
	}
	telemetry.WriteJSON(w, http.StatusOK, list)
}

// services joins registered instances and external services into one view.
func (c *Control) services(r *http.Request) (map[string]*api.ServiceDetail, error) {
	insts, err := c.instances.List(r.Context(), "")
	if err != nil {
		return nil, err
	}
	ext, err := c.resources.List(r.Context(), "ExternalService")
	if err != nil {
		return nil, err
	}
	known, err := c.instances.Services(r.Context())
	if err != nil {
		return nil, err
	}
	out := map[string]*api.ServiceDetail{}
	// A service the mesh has known stays listed after its last instance,
	// with none: its callers get no-ready-instance until it is forgotten.
	for _, sv := range known {
		out[sv.Name] = &api.ServiceDetail{Service: api.Service{Name: sv.Name, Kind: "mesh"}}
	}
	for _, in := range insts {
		d := out[in.Service]
		if d == nil {
			d = &api.ServiceDetail{Service: api.Service{Name: in.Service, Kind: "mesh"}}
			out[in.Service] = d
		}
		d.Instances = append(d.Instances, in)
		d.Service.Instances++
		if in.Ready {
			d.Ready++
		}
	}
	for i := range ext {
		spec, err := config.DecodeExternalService(&ext[i])
		if err != nil {
			continue
		}
		name := ext[i].Metadata.Name
		d := out[name]
		if d == nil {
			d = &api.ServiceDetail{Service: api.Service{Name: name, Kind: "external"}}
			out[name] = d
		}
		d.External = spec.Endpoints
		d.Service.Instances += len(spec.Endpoints)
		d.Ready += len(spec.Endpoints)
	}
	return out, nil
}

func (c *Control) listServices(w http.ResponseWriter, r *http.Request) {
	all, err := c.services(r)
	if err != nil {
		fail(w, http.StatusServiceUnavailable, err)
		return
	}
	list := make([]api.Service, 0, len(all))
	for _, d := range all {
		list = append(list, d.Service)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	telemetry.WriteJSON(w, http.StatusOK, list)
}

func (c *Control) getService(w http.ResponseWriter, r *http.Request) {
	all, err := c.services(r)
	if err != nil {
		fail(w, http.StatusServiceUnavailable, err)
		return
	}
	d, ok := all[r.PathValue("name")]
	if !ok {
		fail(w, http.StatusNotFound, errors.New("service "+r.PathValue("name")+" has no instances and no ExternalService"))
		return
	}
	telemetry.WriteJSON(w, http.StatusOK, d)
}

// forgetService removes the record of a service with no instance left,
// so the mesh no longer knows the name (weft delete service NAME).
func (c *Control) forgetService(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	switch err := c.instances.ForgetService(r.Context(), name); {
	case errors.Is(err, regstore.ErrServiceNotFound):
		fail(w, http.StatusNotFound, fmt.Errorf("service %s not found (it has no service record)", name))
	case errors.Is(err, regstore.ErrServiceInUse):
		fail(w, http.StatusConflict, fmt.Errorf("%w; stop them first (weft get instances %s)", err, name))
	case err != nil:
		fail(w, http.StatusServiceUnavailable, err)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// applyResources applies a file of resources, or with ?dryRun=true says
// what applying it would do without writing: each resource's outcome,
// its revision, and warnings for what it names that does not exist yet.
func (c *Control) applyResources(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	// Validate everything before writing anything: a bad file changes nothing.
	list, err := config.Parse(body)
	if err != nil {
		fail(w, http.StatusUnprocessableEntity, err)
		return
	}
	dry := r.URL.Query().Get("dryRun") == "true"
	warn, err := c.referenceCheck(r, list)
	if err != nil {
		fail(w, http.StatusServiceUnavailable, err)
		return
	}
	out := make([]api.ApplyResult, 0, len(list))
	for _, res := range list {
		var ar api.ApplyResult
		if dry {
			ar.Outcome, _, _, err = c.resources.Plan(r.Context(), res)
		} else {
			ar.Outcome, ar.Revision, err = c.resources.Apply(r.Context(), res)
		}
		if err != nil {
			fail(w, http.StatusServiceUnavailable, err)
			return
		}
		ar.Ref, ar.Warnings = res.Ref(), warn(&res)
		out = append(out, ar)
	}
	telemetry.WriteJSON(w, http.StatusOK, out)
}

// referenceCheck returns what warns of the services, ServiceSubsets and
// Faults a resource names that neither exist nor come in the same file.
func (c *Control) referenceCheck(r *http.Request, applied []config.Resource) (func(*config.Resource) []string, error) {
	services, err := c.services(r)
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, kind := range []string{"ServiceSubset", "Fault"} {
		list, err := c.resources.List(r.Context(), kind)
		if err != nil {
			return nil, err
		}
		for _, res := range list {
			have[res.Ref()] = true
		}
	}
	for _, res := range applied {
		have[res.Ref()] = true
		if res.Kind == "ExternalService" {
			have["service/"+res.Metadata.Name] = true
		}
	}
	return func(res *config.Resource) []string {
		refs := config.References(res)
		var out []string
		for _, s := range refs.Services {
			if services[s] == nil && !have["service/"+s] {
				out = append(out, fmt.Sprintf("service %q does not exist yet (no instance, record or ExternalService): the rules that name it take effect once it does", s))
			}
		}
		for _, kind := range []struct {
			kind  string
			names []string
		}{{"ServiceSubset", refs.Subsets}, {"Fault", refs.Faults}} {
			for _, n := range kind.names {
				if !have[kind.kind+"/"+n] {
					out = append(out, fmt.Sprintf("%s/%s does not exist yet: requests its rules send there get 500 until it does", kind.kind, n))
				}
			}
		}
		return out
	}, nil
}

// history lists the changes kept of one resource, oldest first.
func (c *Control) history(w http.ResponseWriter, r *http.Request) {
	kind, ok := kindOf(w, r)
	if !ok {
		return
	}
	h, err := c.resources.History(r.Context(), kind, r.PathValue("name"))
	switch {
	case err != nil:
		fail(w, http.StatusServiceUnavailable, err)
	case len(h) == 0:
		fail(w, http.StatusNotFound, fmt.Errorf("%s/%s has no history (it never existed, or changed only before this version kept histories)", kind, r.PathValue("name")))
	default:
		out := make([]api.Change, 0, len(h))
		for _, ch := range h {
			out = append(out, api.Change{Revision: ch.Revision, Time: ch.Time, Action: ch.Action, RollbackTo: ch.RollbackTo, Resource: ch.Resource})
		}
		telemetry.WriteJSON(w, http.StatusOK, out)
	}
}

// rollback applies a resource as an earlier revision left it (?to=REV).
func (c *Control) rollback(w http.ResponseWriter, r *http.Request) {
	kind, ok := kindOf(w, r)
	if !ok {
		return
	}
	to, err := strconv.ParseInt(r.URL.Query().Get("to"), 10, 64)
	if err != nil || to <= 0 {
		fail(w, http.StatusBadRequest, fmt.Errorf("to=%q: want the revision to roll back to (weft history lists them)", r.URL.Query().Get("to")))
		return
	}
	outcome, rev, err := c.resources.Rollback(r.Context(), kind, r.PathValue("name"), to)
	switch {
	case errors.Is(err, configstore.ErrNoRevision):
		fail(w, http.StatusNotFound, err)
	case err != nil:
		fail(w, http.StatusServiceUnavailable, err)
	default:
		telemetry.WriteJSON(w, http.StatusOK, api.ApplyResult{Ref: kind + "/" + r.PathValue("name"), Outcome: outcome, Revision: rev})
	}
}

func kindOf(w http.ResponseWriter, r *http.Request) (string, bool) {
	k, ok := config.KindFor(r.PathValue("kind"))
	if !ok {
		fail(w, http.StatusNotFound, errors.New("unknown kind "+strconv.Quote(r.PathValue("kind"))))
	}
	return k, ok
}

func (c *Control) listResources(w http.ResponseWriter, r *http.Request) {
	kind, ok := kindOf(w, r)
	if !ok {
		return
	}
	list, err := c.resources.List(r.Context(), kind)
	if err != nil {
		fail(w, http.StatusServiceUnavailable, err)
		return
	}
	telemetry.WriteJSON(w, http.StatusOK, list)
}

func (c *Control) getResource(w http.ResponseWriter, r *http.Request) {
	kind, ok := kindOf(w, r)
	if !ok {
		return
	}
	res, found, err := c.resources.Get(r.Context(), kind, r.PathValue("name"))
	switch {
	case err != nil:
		fail(w, http.StatusServiceUnavailable, err)
	case !found:
		fail(w, http.StatusNotFound, errors.New(kind+"/"+r.PathValue("name")+" not found"))
	default:
		telemetry.WriteJSON(w, http.StatusOK, res)
	}
}

func (c *Control) deleteResource(w http.ResponseWriter, r *http.Request) {
	kind, ok := kindOf(w, r)
	if !ok {
		return
	}
	deleted, err := c.resources.Delete(r.Context(), kind, r.PathValue("name"))
	switch {
	case err != nil:
		fail(w, http.StatusServiceUnavailable, err)
	case !deleted:
		fail(w, http.StatusNotFound, errors.New(kind+"/"+r.PathValue("name")+" not found"))
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}
