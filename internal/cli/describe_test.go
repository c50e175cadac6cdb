package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/registry"
	"github.com/weftmesh/weft/internal/sidecar"
)

const catalogBreaker = `apiVersion: weftmesh.io/v1alpha1
kind: TrafficPolicy
metadata:
  name: catalog
spec:
  circuitBreaker: {failureRatio: 0.9, minRequests: 1000}
`

// describeMesh is an in-process mesh with a provider, catalog, behind
// two sidecars, catalog-1 and catalog-2, and a consumer-only sidecar of
// web that routes to both.
type describeMesh struct {
	mesh     *meshtest.InProc
	web      *meshtest.InProcSidecar
	catalog2 *httptest.Server // catalog-2's app
}

func startDescribeMesh(t *testing.T) *describeMesh {
	t.Helper()
	mesh := meshtest.NewInProc(t)
	t.Cleanup(api.Transport.CloseIdleConnections)
	app1 := mesh.HTTPApp(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "catalog-1") }))
	app2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "catalog-2") }))
	t.Cleanup(app2.Close)
	_, port2, _ := net.SplitHostPort(app2.Listener.Addr().String())
	p2, _ := strconv.Atoi(port2)
	mesh.Sidecar("catalog", func(c *sidecar.Config) { c.ID, c.AppPort = "catalog-1", app1.Port })
	mesh.Sidecar("catalog", func(c *sidecar.Config) { c.ID, c.AppPort = "catalog-2", p2 })
	web := mesh.Sidecar("web", func(c *sidecar.Config) { c.ID = "web-1" })
	mesh.WaitEndpoints(web, "catalog", 2)
	return &describeMesh{mesh: mesh, web: web, catalog2: app2}
}

// describe runs `weft describe service catalog` against the mesh.
func (m *describeMesh) describe(t *testing.T, args ...string) string {
	t.Helper()
	return mustWeft(t, append([]string{"describe", "service", "catalog", "--control", m.mesh.Control.Addr}, args...)...)
}

// section is the rows of the table under the line that starts with
// title, by their first column, each squeezed into its fields; and the
// lines between the title and the table's header.
func section(out, title string) (rows map[string][]string, preamble []string) {
	rows = map[string][]string{}
	in, table := false, false
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, title):
			in = true
		case !in:
		case strings.TrimSpace(l) == "":
			return rows, preamble
		case strings.HasPrefix(l, "INSTANCE"):
			table = true
		case table:
			f := strings.Fields(l)
			rows[f[0]] = f
		default:
			preamble = append(preamble, l)
		}
	}
	return rows, preamble
}

// Columns of the per-consumer table, counted in fields of a row whose
// cells hold no spaces.
const (
	colHealth   = 2
	colLatency  = 3
	colPeak     = 4
	colAttempts = 7
)

// Requests through the consumer's sidecar show in its section of
// describe: both instances ready, with attempts and latency; and the
// circuit breaker's state there.
func TestDescribeShowsEachInstanceAsAConsumerSeesIt(t *testing.T) {
	m := startDescribeMesh(t)
	mustWeft(t, "apply", "-f", writeFile(t, "catalog.yaml", catalogBreaker), "--control", m.mesh.Control.Addr)
	title := "Seen by web/web-1 (admin " + m.web.Admin + "):"
	var out string
	m.mesh.Eventually(20*time.Second, func() (bool, string) {
		if resp, body, err := meshtest.Via(m.web.Outbound, "catalog", "/"); err != nil || resp.StatusCode != http.StatusOK {
			return false, fmt.Sprintf("GET http://catalog/ through web: %v %q", err, body)
		}
		out = m.describe(t)
		rows, pre := section(out, title)
		for _, id := range []string{"catalog-1", "catalog-2"} {
			r := rows[id]
			if len(r) < colAttempts+1 || r[colAttempts] == "0" || r[colLatency] == "-" {
				return false, "want attempts and a latency on both instances:\n" + out
			}
		}
		return len(pre) == 1 && pre[0] == "Circuit breaker: closed", "want the TrafficPolicy's breaker, closed:\n" + out
	})
	if !strings.HasPrefix(out, "Name:") || !strings.Contains(out, "Instances:") || !strings.Contains(out, "2 (2 ready)") {
		t.Errorf("the registry's view is missing:\n%s", out)
	}
	rows, _ := section(out, title)
	for _, id := range []string{"catalog-1", "catalog-2"} {
		r := rows[id]
		if r[colHealth] != "ready" || r[colLatency] == "-" || r[colPeak] == "-" {
			t.Errorf("%s as web-1 sees it: got %q, want ready with a latency and a peak", id, r)
		}
	}
	if rows, _ := section(out, "Seen by catalog/catalog-1 "); len(rows) != 2 {
		t.Errorf("catalog-1's own sidecar routes to catalog too: got %v in its section, want both instances:\n%s", rows, out)
	}

	var desc struct {
		Name      string `json:"name"`
		Instances []struct {
			ID string `json:"id"`
		} `json:"instanceList"`
		Consumers []consumerView `json:"consumers"`
	}
	js := m.describe(t, "-o", "json")
	if err := json.Unmarshal([]byte(js), &desc); err != nil {
		t.Fatalf("describe -o json: %v in %s", err, js)
	}
	if desc.Name != "catalog" || len(desc.Instances) != 2 {
		t.Errorf("describe -o json: got name %q, %d instances, want catalog with 2", desc.Name, len(desc.Instances))
	}
	var web *consumerView
	for i, c := range desc.Consumers {
		if c.Service == "web" && c.ID == "web-1" {
			web = &desc.Consumers[i]
		}
	}
	if web == nil || web.Admin != m.web.Admin || web.Breaker != "closed" || len(web.Endpoints) != 2 {
		t.Fatalf("describe -o json: got consumers %+v, want web/web-1 at %s, breaker closed, 2 endpoints", desc.Consumers, m.web.Admin)
	}
	for _, ep := range web.Endpoints {
		if ep.Health != "ready" || ep.Attempts == 0 || ep.Latency == "" {
			t.Errorf("endpoint in JSON: got %+v, want ready with attempts and a latency", ep)
		}
	}
	if y := m.describe(t, "-o", "yaml"); !strings.Contains(y, "consumers:") || !strings.Contains(y, "health: ready") {
		t.Errorf("describe -o yaml: want the consumers with their endpoints' health:\n%s", y)
	}
}

// An instance whose app is down shows as not-ready to the consumer, one
// whose address refuses connections as ejected once traffic found it
// out, and a sidecar that cannot be asked is named with the error while
// describe still succeeds.
func TestDescribeShowsUnhealthyInstancesAndUnreachableSidecars(t *testing.T) {
	m := startDescribeMesh(t)
	c := api.NewClient(m.mesh.Control.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Register(ctx, api.RegisterRequest{Instance: registry.Instance{
		Service: "catalog", ID: "catalog-3", Address: deadAddr(t), Ready: true, Protocol: "http"}}); err != nil {
		t.Fatalf("register catalog-3: %v", err)
	}
	ghost := deadAddr(t)
	if _, err := c.RegisterProxy(ctx, api.ProxyRequest{Proxy: registry.Proxy{Service: "ghost", ID: "ghost-1",
		Outbound: "127.0.0.1:1", Admin: ghost, Since: time.Now()}}); err != nil {
		t.Fatalf("register the ghost's proxy: %v", err)
	}
	m.mesh.WaitEndpoints(m.web, "catalog", 3)
	m.catalog2.Close() // catalog-2's sidecar finds its app down and says so

	title := "Seen by web/web-1 (admin " + m.web.Admin + "):"
	var out string
	m.mesh.Eventually(20*time.Second, func() (bool, string) {
		meshtest.Via(m.web.Outbound, "catalog", "/") // some find catalog-3 refusing
		out = m.describe(t)
		rows, _ := section(out, title)
		if r := rows["catalog-2"]; len(r) <= colHealth || r[colHealth] != "not-ready" {
			return false, "want catalog-2 not-ready:\n" + out
		}
		if r := rows["catalog-3"]; len(r) <= colHealth || r[colHealth] != "ejected" {
			return false, "want catalog-3 ejected:\n" + out
		}
		return true, ""
	})
	rows, pre := section(out, title)
	if r := rows["catalog-1"]; r[colHealth] != "ready" {
		t.Errorf("catalog-1: got %q, want ready", r)
	}
	if len(pre) != 1 || pre[0] != "Circuit breaker: none" {
		t.Errorf("breaker line without a TrafficPolicy: got %q, want \"Circuit breaker: none\"", pre)
	}
	if r := rows["catalog-3"]; len(r) == 0 || !isTime(r[len(r)-1]) {
		t.Errorf("catalog-3: got %q, want the time its ejection ends in the last column", r)
	}
	want := "sidecar ghost/ghost-1 at " + ghost + ": unreachable: "
	if !strings.Contains(out, want) {
		t.Errorf("the ghost sidecar: want a line starting %q in\n%s", want, out)
	}

	js := m.describe(t, "-o", "json")
	var desc serviceDescription
	if err := json.Unmarshal([]byte(js), &desc); err != nil {
		t.Fatalf("describe -o json: %v in %s", err, js)
	}
	found := false
	for _, cv := range desc.Consumers {
		if cv.Service == "ghost" {
			found = strings.HasPrefix(cv.Error, "unreachable: ") && len(cv.Endpoints) == 0
		}
	}
	if !found {
		t.Errorf("describe -o json: want the ghost with its error among %+v", desc.Consumers)
	}
}

func isTime(s string) bool {
	_, err := time.Parse(time.RFC3339, s)
	return err == nil
}

// A sidecar that does not route to the service is left out; one that
// answers but not with its config, or has no admin address, says so.
func TestConsumerOf(t *testing.T) {
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"services":{"search":{"endpoints":[]}}}`)
	}))
	t.Cleanup(other.Close)
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	t.Cleanup(broken.Close)
	ctx := context.Background()
	at := func(srv *httptest.Server) registry.Proxy {
		return registry.Proxy{Service: "web", ID: "web-1", Admin: srv.Listener.Addr().String()}
	}
	if v := consumerOf(ctx, at(other), "catalog"); v != nil {
		t.Errorf("a sidecar without catalog: got %+v, want it left out", v)
	}
	if v := consumerOf(ctx, at(broken), "catalog"); v == nil || v.Error != "GET /config: 500 Internal Server Error" {
		t.Errorf("a sidecar answering 500: got %+v, want the status as its error", v)
	}
	if v := consumerOf(ctx, registry.Proxy{Service: "web", ID: "web-2"}, "catalog"); v == nil || v.Error != "no admin address in its proxy record" {
		t.Errorf("a proxy record without admin: got %+v, want it said", v)
	}
}
