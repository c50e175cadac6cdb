package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/registry"
)

// twoInstances starts a control plane, catalog v1 and v2 behind sidecars,
// and a consumer-only sidecar that sees both.
func twoInstances(t *testing.T, extra ...string) (*meshtest.Mesh, *meshtest.Control, *meshtest.Sidecar, []*meshtest.Sidecar) {
	m := meshtest.New(t)
	cp := m.Control()
	var providers []*meshtest.Sidecar
	for _, v := range []string{"v1", "v2"} {
		app := m.App("catalog-" + v)
		args := append([]string{"--service", "catalog", "--id", "catalog-" + v, "--app-port", app.Port, "--label", "version=" + v}, extra...)
		providers = append(providers, m.Sidecar(cp, args...))
	}
	consumer := m.Sidecar(cp, "--service", "web")
	waitInstances(t, consumer, "catalog", 2)
	return m, cp, consumer, providers
}

// waitInstances waits until requests through consumer reach n distinct
// instances of service.
func waitInstances(t *testing.T, consumer *meshtest.Sidecar, service string, n int) map[string]int {
	t.Helper()
	var seen map[string]int
	meshtest.Eventually(t, 10*time.Second, func() (bool, string) {
		seen = map[string]int{}
		for i := 0; i < 4*n; i++ {
			resp, body, err := meshtest.Via(consumer.Outbound, service, "/")
			if err != nil {
				return false, err.Error()
			}
			if resp.StatusCode != 200 {
				return false, fmt.Sprintf("%d %s", resp.StatusCode, body)
			}
			seen[body]++
		}
		return len(seen) == n, fmt.Sprintf("answers %v", seen)
	})
	return seen
}

func TestRoutesByServiceNameInProxyAndReverseForm(t *testing.T) {
	t.Parallel()
	m, cp, consumer, _ := twoInstances(t)
	roundRobin(t, m, cp, consumer, "catalog")

	// Proxy form, as an app with HTTP_PROXY calls http://catalog/ and
	// http://catalog:8080/: round robin over both instances.
	for _, host := range []string{"catalog", "catalog:8080"} {
		seen := map[string]int{}
		for i := 0; i < 10; i++ {
			resp, body, err := meshtest.Via(consumer.Outbound, host, "/")
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("GET http://%s/ via sidecar: got %v %v %q, want 200", host, resp, err, body)
			}
			seen[body]++
		}
		if seen["instance=catalog-v1"] != 5 || seen["instance=catalog-v2"] != 5 {
			t.Errorf("host %s: got answers %v, want 5 from each instance", host, seen)
		}
	}

	// Reverse form: Host header to the outbound port.
	req, _ := http.NewRequest(http.MethodGet, "http://"+consumer.Outbound+"/", nil)
	req.Host = "catalog"
	resp, err := meshtest.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("reverse form: got status %d, want 200", resp.StatusCode)
	}
}

func TestCLIShowsServicesAndInstances(t *testing.T) {
	t.Parallel()
	m, cp, _, _ := twoInstances(t)

	out, errOut, code := m.Weft("get", "instances", "catalog", "--control", cp.Addr, "-o", "json")
	if code != 0 {
		t.Fatalf("get instances: exit %d: %s", code, errOut)
	}
	var list []registry.Instance
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("get instances -o json: %v\n%s", err, out)
	}
	if len(list) != 2 || list[0].ID != "catalog-v1" || list[1].Labels["version"] != "v2" || !list[0].Ready {
		t.Errorf("got instances %+v, want catalog-v1 and catalog-v2 (version=v2), ready", list)
	}

	out, _, code = m.Weft("get", "services", "--control", cp.Addr)
	if code != 0 || !strings.Contains(out, "catalog") || !strings.Contains(out, "web") == true && !strings.Contains(out, "NAME") {
		t.Errorf("get services: exit %d, output:\n%s", code, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || strings.Join(strings.Fields(lines[1]), " ") != "catalog mesh 2 2" {
		t.Errorf("get services: got\n%s\nwant a header and the row 'catalog mesh 2 2' (consumer-only sidecars do not register)", out)
	}

	out, _, code = m.Weft("describe", "service", "catalog", "--control", cp.Addr, "-o", "yaml")
	if code != 0 || !strings.Contains(out, "id: catalog-v2") || !strings.Contains(out, "version: v2") {
		t.Errorf("describe -o yaml: exit %d, output:\n%s", code, out)
	}

	out, _, code = m.WeftEnv([]string{"WEFT_CONTROL=" + cp.Addr}, "version")
	if code != 0 || !strings.Contains(out, "store: embedded") {
		t.Errorf("version with WEFT_CONTROL: exit %d, output:\n%s", code, out)
	}

	_, errOut, code = m.Weft("get", "widgets", "--control", cp.Addr)
	if code != 2 || !strings.Contains(errOut, `unknown kind "widgets"`) {
		t.Errorf("get widgets: got exit %d %q, want 2 and a message naming the kind", code, errOut)
	}
}

func TestMeshErrorsSayWhatFailed(t *testing.T) {
	t.Parallel()
	m := meshtest.New(t)
	cp := m.Control()
	consumer := m.Sidecar(cp, "--service", "web")

	cases := []struct {
		name, host string
		reverse    bool
		status     int
		reason     string
	}{
		{"unknown service, reverse form", "nosuch", true, 404, "unknown-service"},
		{"egress to a closed port", "127.0.0.1:1", false, 502, "upstream-connect-failed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var resp *http.Response
			var body string
			if c.reverse {
				req, _ := http.NewRequest(http.MethodGet, "http://"+consumer.Outbound+"/", nil)
				req.Host = c.host
				r, err := meshtest.Client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer r.Body.Close()
				b := new(strings.Builder)
				_, _ = fmt.Fprint(b, "")
				buf := make([]byte, 4096)
				n, _ := r.Body.Read(buf)
				resp, body = r, string(buf[:n])
			} else {
				var err error
				if resp, body, err = meshtest.Via(consumer.Outbound, c.host, "/"); err != nil {
					t.Fatal(err)
				}
			}
			if resp.StatusCode != c.status || resp.Header.Get("X-Weft-Error") != c.reason {
				t.Errorf("got %d x-weft-error=%q, want %d %q", resp.StatusCode, resp.Header.Get("X-Weft-Error"), c.status, c.reason)
			}
			var e struct{ Error, Service, Message string }
			if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error != c.reason || e.Service == "" || e.Message == "" {
				t.Errorf("got body %q, want JSON naming reason, service and message", body)
			}
		})
	}

	// A service whose only instance is not ready: 503 no-ready-instance.
	app := m.App("lonely")
	m.Sidecar(cp, "--service", "lonely", "--app-port", app.Port, "--health-interval", "100ms")
	waitInstances(t, consumer, "lonely", 1)
	app.Signal(9)
	m.Eventually(10*time.Second, func() (bool, string) {
		resp, body, err := meshtest.Via(consumer.Outbound, "lonely", "/")
		if err != nil {
			return false, err.Error()
		}
		return resp.StatusCode == 503 && resp.Header.Get("X-Weft-Error") == "no-ready-instance", fmt.Sprintf("%d %s", resp.StatusCode, body)
	})
	out, _, _ := m.Weft("get", "instances", "lonely", "--control", cp.Addr)
	if !strings.Contains(out, "false") {
		t.Errorf("get instances after the app died: got\n%s\nwant READY false", out)
	}
}
