package control

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/collect"
)

const goodReport = `{"boot":"b1","seq":1,"series":[
 {"direction":"inbound","source":"web","destination":"api","requests":5,"failures":2,"buckets":[0,5]},
 {"direction":"outbound","source":"api","destination":"db","route":"HTTPRoute/db","requests":3,"buckets":[0,0,3]}]}`

func TestTelemetryRefusesBadReports(t *testing.T) {
	tc := start(t)
	cases := []struct {
		name, path, body, want string
	}{
		{"bad JSON", "/v1/telemetry/api/api-1", `{"boot":`, "body: "},
		{"body too large", "/v1/telemetry/api/api-1", `{"boot":"` + strings.Repeat("x", MaxReportBody) + `"}`, "body: larger than"},
		{"unknown direction", "/v1/telemetry/api/api-1", `{"boot":"b","seq":1,"series":[{"direction":"sideways","source":"a","destination":"b","requests":1}]}`, "series[0].direction"},
		{"no seq", "/v1/telemetry/api/api-1", `{"boot":"b","series":[]}`, "seq: "},
		{"bad service", "/v1/telemetry/API_1/api-1", goodReport, "service: "},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := tc.do(t, http.MethodPost, c.path, c.body)
			if code != http.StatusBadRequest || !strings.Contains(body, c.want) {
				t.Errorf("got %d %.200s, want 400 naming %q", code, body, c.want)
			}
		})
	}
	if _, body := tc.get(t, "/metrics"); !strings.Contains(body, `weft_collect_reports_received_total{outcome="rejected"} 5`) {
		t.Errorf("metrics: want 5 rejected reports counted:\n%s", grepLines(body, "weft_collect_reports"))
	}
}

func TestTelemetryInStatsOut(t *testing.T) {
	tc := start(t)
	for i, want := range []string{`"applied": true`, `"applied": false`} { // the second: sent again after a lost answer
		code, body := tc.do(t, http.MethodPost, "/v1/telemetry/api/api-1", goodReport)
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Fatalf("report %d: got %d %s, want 200 with %s", i+1, code, body, want)
		}
	}
	var services collect.ServiceList
	getJSON(t, tc, "/v1/stats", &services)
	if services.Window != "1m" || len(services.Services) != 1 {
		t.Fatalf("GET /v1/stats: got %+v, want api alone over 1m", services)
	}
	api := services.Services[0]
	if api.Service != "api" || api.Requests != 5 || api.Failures != 2 || len(api.Instances) != 1 || api.Instances[0].Instance != "api-1" {
		t.Errorf("api: got %+v, want 5 requests, 2 failed, from api-1", api)
	}
	getJSON(t, tc, "/v1/stats/api?window=5m", &services)
	if services.Window != "5m" || len(services.Services) != 1 || services.Services[0].Instances[0].Requests != 5 {
		t.Errorf("GET /v1/stats/api?window=5m: got %+v, want api-1 with 5 over 5m", services)
	}
	var edges collect.EdgeList
	getJSON(t, tc, "/v1/stats?edges=true", &edges)
	if len(edges.Edges) != 1 || edges.Edges[0].Source != "api" || edges.Edges[0].Destination != "db" || edges.Edges[0].Requests != 3 {
		t.Errorf("edges: got %+v, want api -> db with 3", edges)
	}
	getJSON(t, tc, "/v1/stats/web?edges=true", &edges)
	if len(edges.Edges) != 0 {
		t.Errorf("edges of web: got %+v, want none", edges)
	}
	var series collect.SeriesList
	getJSON(t, tc, "/v1/stats/api/series?window=10m&step=2m", &series)
	if series.Service != "api" || series.Window != "10m" || series.Step != "2m" || len(series.Points) != 5 || series.Points[4].Requests != 5 {
		t.Errorf("GET /v1/stats/api/series: got %+v, want 5 points of 2m, the last with 5 requests", series)
	}
	getJSON(t, tc, "/v1/stats/api/series", &series)
	if series.Window != "1h" || series.Step != "1m" || len(series.Points) != 60 {
		t.Errorf("GET /v1/stats/api/series: got window %s, step %s, %d points; want 1h, 1m, 60", series.Window, series.Step, len(series.Points))
	}
	for path, want := range map[string]string{
		"/v1/stats/nope/series":                  "no figures",
		"/v1/stats/api/series?window=2h":         "window",
		"/v1/stats/api/series?step=5s":           "step",
		"/v1/stats/api/series?step=2m&window=1m": "step",
	} {
		if code, body := tc.get(t, path); code/100 != 4 || !strings.Contains(body, want) {
			t.Errorf("GET %s: got %d %s, want 4xx naming %q", path, code, body, want)
		}
	}
	for path, want := range map[string]int{
		"/v1/stats/nope":         http.StatusNotFound,
		"/v1/stats?window=5s":    http.StatusBadRequest,
		"/v1/stats?edges=maybe":  http.StatusBadRequest,
		"/v1/stats/api?window=x": http.StatusBadRequest,
	} {
		if code, body := tc.get(t, path); code != want {
			t.Errorf("GET %s: got %d %s, want %d", path, code, body, want)
		}
	}
	_, body := tc.get(t, "/metrics")
	for _, want := range []string{
		`weft_collect_reports_received_total{outcome="applied"} 1`,
		`weft_collect_reports_received_total{outcome="duplicate"} 1`,
		`weft_collect_series 2`,
		`weft_collect_series_dropped_total 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics: want %s in\n%s", want, grepLines(body, "weft_collect"))
		}
	}
}

func getJSON(t *testing.T, tc *testControl, path string, out any) {
	t.Helper()
	code, body := tc.get(t, path)
	if code != http.StatusOK {
		t.Fatalf("GET %s: got %d %s, want 200", path, code, body)
	}
	if err := json.Unmarshal([]byte(body), out); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, body)
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
