package cli

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/collect"
)

// postReport sends a sidecar's report to the control plane at addr.
func postReport(t *testing.T, addr, service, instance, body string) {
	t.Helper()
	resp, err := api.NewClient(addr).HTTP.Post("http://"+addr+"/v1/telemetry/"+service+"/"+instance, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST report: got %d, want 200", resp.StatusCode)
	}
}

func TestStat(t *testing.T) {
	addr := startControl(t)
	// 100 requests to api-1 under 1 ms, 4 of them failed; 50 to api-2;
	// web called api 150 times, 4 failed. p95 of the merged: rank 142.5,
	// 42.5 of 50 into (1ms, 2.5ms]: 2.275ms.
	postReport(t, addr, "api", "api-1", `{"boot":"a","seq":1,"series":[{"direction":"inbound","source":"web","destination":"api","requests":100,"failures":4,"buckets":[0,100]}]}`)
	postReport(t, addr, "api", "api-2", `{"boot":"b","seq":1,"series":[{"direction":"inbound","source":"web","destination":"api","requests":50,"buckets":[0,0,50]}]}`)
	postReport(t, addr, "web", "web-1", `{"boot":"c","seq":1,"series":[{"direction":"outbound","source":"web","destination":"api","requests":150,"failures":4,"buckets":[0,100,50]}]}`)

	out := mustWeft(t, "stat", "--control", addr)
	want := [][]string{
		{"SERVICE", "INSTANCES", "REQUESTS", "SUCCESS", "RPS", "P50", "P95", "P99"},
		{"api", "2", "150", "97.33%", "2.50", "0.88ms", "2.27ms", "2.46ms"},
	}
	checkTable(t, out, want)

	out = mustWeft(t, "stat", "api", "--window", "10s", "--control", addr)
	checkTable(t, out, [][]string{
		{"SERVICE", "INSTANCE", "REQUESTS", "SUCCESS", "RPS", "P50", "P95", "P99"},
		{"api", "api-1", "100", "96.00%", "10.00", "0.75ms", "0.97ms", "0.99ms"},
		{"api", "api-2", "50", "100.00%", "5.00", "1.75ms", "2.42ms", "2.48ms"},
	})

	out = mustWeft(t, "stat", "--edges", "--control", addr)
	checkTable(t, out, [][]string{
		{"SOURCE", "DESTINATION", "REQUESTS", "SUCCESS", "RPS", "P50", "P95", "P99"},
		{"web", "api", "150", "97.33%", "2.50", "0.88ms", "2.27ms", "2.46ms"},
	})

	var list collect.ServiceList
	if err := json.Unmarshal([]byte(mustWeft(t, "stat", "-o", "json", "--control", addr)), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Services) != 1 || list.Services[0].Requests != 150 || list.Services[0].Failures != 4 || len(list.Services[0].Instances) != 2 {
		t.Errorf("-o json: got %+v, want api with 150 requests, 4 failed, 2 instances", list)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"stat", "--window", "5s"}, `--window "5s": want 10s to 1h`},
		{[]string{"stat", "a", "b"}, "want stat [SERVICE]"},
		{[]string{"stat", "nope"}, `service "nope": no figures`},
	} {
		_, err := weftOut(t, append(c.args, "--control", addr)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("weft %s: got %v, want an error with %q", strings.Join(c.args, " "), err, c.want)
		}
	}
}

// checkTable compares a table's cells, whatever the spacing.
func checkTable(t *testing.T, out string, want [][]string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), out)
	}
	for i, l := range lines {
		if got := strings.Fields(l); strings.Join(got, " ") != strings.Join(want[i], " ") {
			t.Errorf("line %d: got %q, want %q", i, got, want[i])
		}
	}
}
