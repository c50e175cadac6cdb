package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/proxy"
)

// TestAccessLogs: with --access-log, each sidecar writes one JSON line
// per request: the consumer's outbound line and the provider's inbound
// line name the same request id, the calling and the called service,
// the instance and the status, for HTTP/1.1 and HTTP/2 callers alike;
// weft top shows them too.
func TestAccessLogs(t *testing.T) {
	t.Parallel()
	m := meshtest.New(t)
	cp := m.Control()
	dir := t.TempDir()
	provLog, consLog := filepath.Join(dir, "provider.log"), filepath.Join(dir, "consumer.log")
	app := m.App("logged-0", "--h2c")
	m.Sidecar(cp, "--service", "logged", "--id", "logged-0", "--app-port", app.Port, "--access-log", provLog)
	consumer := m.Sidecar(cp, "--service", "web", "--access-log", consLog)
	waitEndpoints(t, consumer, "logged", 1)

	c := meshtest.ProxyClient(consumer.Outbound)
	defer c.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, "http://logged/bytes?n=100", nil)
	req.Header.Set("X-Request-Id", "e2e-log-1")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h2 := proxy.NewH2CTransport() // an h2c client
	defer h2.CloseIdleConnections()
	h2req, _ := http.NewRequest(http.MethodGet, "http://"+consumer.Outbound+"/status?code=404", nil)
	h2req.Host = "logged"
	h2req.Header.Set("X-Request-Id", "e2e-log-2")
	if resp, err := h2.RoundTrip(h2req); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}

	line := func(file, id string) map[string]any {
		t.Helper()
		var got map[string]any
		m.Eventually(10*time.Second, func() (bool, string) {
			b, _ := os.ReadFile(file)
			for _, l := range strings.Split(string(b), "\n") {
				if strings.Contains(l, `"request_id":"`+id+`"`) {
					got = nil
					if err := json.Unmarshal([]byte(l), &got); err != nil {
						return false, fmt.Sprintf("%s: not JSON: %v: %s", file, err, l)
					}
					return true, ""
				}
			}
			return false, fmt.Sprintf("%s has no line for %s:\n%s", file, id, b)
		})
		return got
	}
	for _, c := range []struct {
		file, id, direction string
		status              float64
		bytes               float64
	}{
		{consLog, "e2e-log-1", "outbound", 200, 100}, {provLog, "e2e-log-1", "inbound", 200, 100},
		{consLog, "e2e-log-2", "outbound", 404, -1}, {provLog, "e2e-log-2", "inbound", 404, -1},
	} {
		got := line(c.file, c.id)
		want := map[string]any{"direction": c.direction, "source_service": "web", "destination_service": "logged", "instance": "logged-0",
			"status": c.status, "attempts": 1.0}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s %s: %s is %v, want %v (%v)", filepath.Base(c.file), c.id, k, got[k], v, got)
			}
		}
		if c.id == "e2e-log-1" && got["bytes"] != c.bytes {
			t.Errorf("%s %s: bytes %v, want %v", filepath.Base(c.file), c.id, got["bytes"], c.bytes)
		}
		if d, _ := got["duration_ms"].(float64); d <= 0 || got["method"] != "GET" {
			t.Errorf("%s %s: duration_ms %v, method %v", filepath.Base(c.file), c.id, got["duration_ms"], got["method"])
		}
	}

	// weft top samples the same requests from the sidecars' rings.
	out, errOut, code := m.Weft("top", "--once", "--control", cp.Addr)
	lines := strings.Split(out, "\n")
	find := func(words ...string) bool {
		for _, l := range lines {
			f := strings.Fields(l)
			if len(f) >= len(words) && strings.Join(f[2:2+len(words)], " ") == strings.Join(words, " ") {
				return true
			}
		}
		return false
	}
	for _, want := range [][]string{{"outbound", "web", "logged", "GET", "/bytes?n=100", "200"}, {"inbound", "web", "logged", "GET", "/bytes?n=100", "200"},
		{"outbound", "web", "logged", "GET", "/status?code=404", "404"}} {
		if code != 0 || !find(want...) {
			t.Errorf("weft top --once (exit %d, %s):\n%s\nwant a line with %v", code, errOut, out, want)
		}
	}
}
