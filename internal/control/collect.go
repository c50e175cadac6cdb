package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/internal/collect"
	"github.com/weftmesh/weft/internal/registry"
	"github.com/weftmesh/weft/internal/telemetry"
)

// MaxReportBody is the largest report body POST /v1/telemetry takes.
const MaxReportBody = 8 << 20

// statsCenter is the collection center's endpoints over its store.
type statsCenter struct {
	store    *collect.Store
	received *prometheus.CounterVec // applied, duplicate, rejected
}

// newStatsCenter makes the store of golden metrics, bounded by
// cfg.StatsMaxSeries, and registers its metrics.
func newStatsCenter(cfg Config, reg prometheus.Registerer) (*statsCenter, error) {
	st, err := collect.NewStore(collect.Config{MaxSeries: cfg.StatsMaxSeries}, reg)
	if err != nil {
		return nil, err
	}
	sc := &statsCenter{store: st, received: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weft_collect_reports_received_total",
		Help: "Summaries received from sidecars, by outcome: applied, duplicate (sent again after a lost answer; acknowledged, not applied twice), rejected (bad; answered 400).",
	}, []string{"outcome"})}
	if err := reg.Register(sc.received); err != nil {
		return nil, fmt.Errorf("register the collection center's metrics: %w", err)
	}
	return sc, nil
}

// mountStats serves the collection center: reports in, golden metrics out.
func (c *Control) mountStats(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/telemetry/{service}/{instance}", c.stats.report)
	mux.HandleFunc("GET /v1/stats", c.stats.list)
	mux.HandleFunc("GET /v1/stats/{service}", c.stats.service)
	mux.HandleFunc("GET /v1/stats/{service}/series", c.stats.series)
}

// report is POST /v1/telemetry/{service}/{instance}: one sidecar's
// summary (collect.Report), answered with a collect.Ack.
func (sc *statsCenter) report(w http.ResponseWriter, r *http.Request) {
	service, instance := r.PathValue("service"), r.PathValue("instance")
	rep, err := decodeReport(w, r, service, instance)
	if err != nil {
		sc.received.WithLabelValues("rejected").Inc()
		fail(w, http.StatusBadRequest, err)
		return
	}
	ack, err := sc.store.Ingest(service, instance, rep)
	if err != nil {
		sc.received.WithLabelValues("rejected").Inc()
		fail(w, http.StatusBadRequest, err)
		return
	}
	outcome := "applied"
	if !ack.Applied {
		outcome = "duplicate"
	}
	sc.received.WithLabelValues(outcome).Inc()
	telemetry.WriteJSON(w, http.StatusOK, ack)
}

func decodeReport(w http.ResponseWriter, r *http.Request, service, instance string) (*collect.Report, error) {
	if err := registry.ValidName(service); err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	if instance == "" || len(instance) > 253 {
		return nil, fmt.Errorf("instance %q: want 1 to 253 bytes", instance)
	}
	var rep collect.Report
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxReportBody)).Decode(&rep); err != nil {
		var big *http.MaxBytesError
		if errors.As(err, &big) {
			return nil, fmt.Errorf("body: larger than %d bytes", MaxReportBody)
		}
		return nil, fmt.Errorf("body: %w", err)
	}
	if err := rep.Validate(); err != nil {
		return nil, err
	}
	return &rep, nil
}

// list is GET /v1/stats?window=1m: every service with its instances
// (collect.ServiceList); with edges=true, every edge (collect.EdgeList).
func (sc *statsCenter) list(w http.ResponseWriter, r *http.Request) {
	window, edges, err := statsQuery(r)
	if err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	if edges {
		telemetry.WriteJSON(w, http.StatusOK, collect.EdgeList{Window: collect.FormatWindow(window), Edges: sc.store.Edges(window)})
		return
	}
	telemetry.WriteJSON(w, http.StatusOK, collect.ServiceList{Window: collect.FormatWindow(window), Services: sc.store.Services(window)})
}

// service is GET /v1/stats/{service}?window=: the service with its
// instances; with edges=true, the edges from and to it.
func (sc *statsCenter) service(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("service")
	window, edges, err := statsQuery(r)
	if err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	if edges {
		list := []collect.EdgeStats{}
		for _, e := range sc.store.Edges(window) {
			if e.Source == name || e.Destination == name {
				list = append(list, e)
			}
		}
		telemetry.WriteJSON(w, http.StatusOK, collect.EdgeList{Window: collect.FormatWindow(window), Edges: list})
		return
	}
	st, ok := sc.store.ServiceStats(name, window)
	if !ok {
		fail(w, http.StatusNotFound, fmt.Errorf("service %q: no figures: none of its sidecars reported requests received in the last hour", name))
		return
	}
	telemetry.WriteJSON(w, http.StatusOK, collect.ServiceList{Window: collect.FormatWindow(window), Services: []collect.ServiceStats{st}})
}

// series is GET /v1/stats/{service}/series?window=1h&step=1m: the
// service's figures step by step over the window (collect.SeriesList),
// oldest first; window 10s to 1h (default 1h), step 10s to the window
// (default a sixtieth of it).
func (sc *statsCenter) series(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("service")
	q := r.URL.Query()
	window := collect.DefaultSeriesWindow
	if q.Get("window") != "" {
		d, err := collect.ParseWindow(q.Get("window"))
		if err != nil {
			fail(w, http.StatusBadRequest, err)
			return
		}
		window = d
	}
	step, err := collect.ParseStep(q.Get("step"), window)
	if err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	list, ok := sc.store.ServiceSeries(name, window, step)
	if !ok {
		fail(w, http.StatusNotFound, fmt.Errorf("service %q: no figures: none of its sidecars reported requests received in the last hour", name))
		return
	}
	telemetry.WriteJSON(w, http.StatusOK, list)
}

func statsQuery(r *http.Request) (window time.Duration, edges bool, err error) {
	q := r.URL.Query()
	d, err := collect.ParseWindow(q.Get("window"))
	if err != nil {
		return 0, false, err
	}
	switch q.Get("edges") {
	case "", "false":
	case "true":
		edges = true
	default:
		return 0, false, fmt.Errorf("edges=%q: want true or false", q.Get("edges"))
	}
	return d, edges, nil
}
