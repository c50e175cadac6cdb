package dashboard

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sort"
	"time"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/collect"
	"github.com/weftmesh/weft/internal/collect/alert"
)

// Overview is the overview and topology pages: every service with its
// figures over the window, its instances and its last hour; every edge
// of the call graph; what alarms are firing or pending.
type Overview struct {
	Time     time.Time    `json:"time"`
	Window   string       `json:"window"`
	Services []ServiceRow `json:"services"`
	Edges    []EdgeRow    `json:"edges"`
	Firing   int          `json:"firing"`
	Pending  int          `json:"pending"`
}

// ServiceRow is one service of the overview. Kind is mesh or external
// for a service the registry knows, "" for one known only by its
// figures (its sidecars have gone within the hour).
type ServiceRow struct {
	Name      string `json:"name"`
	Kind      string `json:"kind"`
	Instances int    `json:"instances"`
	Ready     int    `json:"ready"`
	// Golden is nil when no sidecar of the service reported requests
	// received in the last hour.
	Golden *collect.Golden `json:"golden"`
	Spark  Spark           `json:"spark"`
	// Alarm is firing or pending when a rule on the service (or on a
	// call to it) is; Alarms names those rules.
	Alarm  string   `json:"alarm,omitempty"`
	Alarms []string `json:"alarms,omitempty"`
}

// EdgeRow is the calls from one service to another over the window.
type EdgeRow struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	collect.Golden
	Alarm string `json:"alarm,omitempty"`
}

// Spark is a service's last hour for sparklines, a point a Step, oldest
// first: requests/s, success rate and p99 (nanoseconds).
type Spark struct {
	Step        string    `json:"step"`
	RPS         []float64 `json:"rps"`
	SuccessRate []float64 `json:"successRate"`
	P99         []int64   `json:"p99"`
}

// sparkQuery is the series of every sparkline: the hour by the minute.
const sparkQuery = "/series?window=1h&step=1m"

func (h *Handler) overview(ctx context.Context, window string) (*Overview, error) {
	q := "?" + url.Values{"window": {window}}.Encode()
	var services []api.Service
	if err := h.get(ctx, "/v1/services", &services); err != nil {
		return nil, err
	}
	var stats collect.ServiceList
	if err := h.get(ctx, "/v1/stats"+q, &stats); err != nil {
		return nil, err
	}
	var edges collect.EdgeList
	if err := h.get(ctx, "/v1/stats"+q+"&edges=true", &edges); err != nil {
		return nil, err
	}
	var alerts []alert.Status
	if err := h.get(ctx, "/v1/alerts", &alerts); err != nil {
		return nil, err
	}
	o := &Overview{Time: time.Now().UTC(), Window: stats.Window, Services: []ServiceRow{}, Edges: []EdgeRow{}}
	rows := map[string]*ServiceRow{}
	row := func(name string) *ServiceRow {
		if r := rows[name]; r != nil {
			return r
		}
		r := &ServiceRow{Name: name}
		rows[name] = r
		return r
	}
	for _, s := range services {
		r := row(s.Name)
		r.Kind, r.Instances, r.Ready = s.Kind, s.Instances, s.Ready
	}
	for _, s := range stats.Services {
		g := s.Golden
		row(s.Service).Golden = &g
	}
	for name, r := range rows {
		if r.Golden == nil {
			continue
		}
		sp, err := h.spark(ctx, name)
		if err != nil {
			return nil, err
		}
		r.Spark = sp
	}
	edgeAlarm := map[[2]string]string{}
	for _, a := range alerts {
		if a.State != alert.Firing && a.State != alert.Pending {
			continue
		}
		if a.State == alert.Firing {
			o.Firing++
		} else {
			o.Pending++
		}
		target := a.Service
		if a.Edge != nil {
			target = a.Edge.Destination
			k := [2]string{a.Edge.Source, a.Edge.Destination}
			edgeAlarm[k] = worse(edgeAlarm[k], string(a.State))
		}
		if r := rows[target]; r != nil {
			r.Alarm = worse(r.Alarm, string(a.State))
			r.Alarms = append(r.Alarms, a.Rule)
		}
	}
	for _, e := range edges.Edges {
		o.Edges = append(o.Edges, EdgeRow{Source: e.Source, Destination: e.Destination, Golden: e.Golden,
			Alarm: edgeAlarm[[2]string{e.Source, e.Destination}]})
	}
	for _, r := range rows {
		o.Services = append(o.Services, *r)
	}
	sort.Slice(o.Services, func(i, j int) bool { return o.Services[i].Name < o.Services[j].Name })
	return o, nil
}

// worse is the graver of two alarm states: firing, then pending.
func worse(a, b string) string {
	if a == string(alert.Firing) || b == string(alert.Firing) {
		return string(alert.Firing)
	}
	if a == string(alert.Pending) || b == string(alert.Pending) {
		return string(alert.Pending)
	}
	return ""
}

// spark is a service's last hour by the minute; empty when the store
// holds nothing of it.
func (h *Handler) spark(ctx context.Context, service string) (Spark, error) {
	var list collect.SeriesList
	err := h.get(ctx, "/v1/stats/"+url.PathEscape(service)+sparkQuery, &list)
	var ae *apiError
	if errors.As(err, &ae) && ae.status == http.StatusNotFound {
		return Spark{}, nil
	}
	if err != nil {
		return Spark{}, err
	}
	sp := Spark{Step: list.Step, RPS: make([]float64, len(list.Points)), SuccessRate: make([]float64, len(list.Points)), P99: make([]int64, len(list.Points))}
	for i, p := range list.Points {
		sp.RPS[i], sp.SuccessRate[i], sp.P99[i] = p.RPS, p.SuccessRate, int64(p.P99)
	}
	return sp, nil
}
