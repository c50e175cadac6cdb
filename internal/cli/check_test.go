package cli

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/registry"
)

// fakeSidecarAdmin serves a /config whose certificate was valid from
// notBefore to notAfter ("" for a sidecar without a join token).
func fakeSidecarAdmin(t *testing.T, cert string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/config" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, `{"service":"x"%s}`, cert)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func certJSON(state string, notBefore, notAfter time.Time, lastErr string) string {
	return fmt.Sprintf(`,"certificate":{"state":%q,"spiffeID":"spiffe://weft.local/service/x","notBefore":%q,"notAfter":%q,"lastError":%q}`,
		state, notBefore.Format(time.RFC3339), notAfter.Format(time.RFC3339), lastErr)
}

func TestCheck(t *testing.T) {
	now := time.Now()
	cases := []struct {
		name string
		cert string
		args []string
		want string // "" for no warning
	}{
		{"fresh", certJSON("valid", now.Add(-time.Hour), now.Add(23*time.Hour), ""), nil, ""},
		{"no join token", "", nil, ""},
		{"near expiry", certJSON("valid", now.Add(-22*time.Hour), now.Add(2*time.Hour), ""), nil, "WARNING: less than 20% of its 24h00m lifetime left"},
		{"within", certJSON("valid", now.Add(-time.Hour), now.Add(23*time.Hour), ""), []string{"--within", "48h"}, "WARNING: expires within 48h0m0s"},
		{"expired", certJSON("expired", now.Add(-2*time.Hour), now.Add(-time.Hour), "control plane unreachable"), nil, "WARNING: certificate expired: control plane unreachable"},
		{"pending", `,"certificate":{"state":"pending","lastError":"refused (401)"}`, nil, "WARNING: no certificate yet: refused (401)"},
		{"failing", certJSON("valid", now.Add(-time.Hour), now.Add(23*time.Hour), "connection refused"), nil, "WARNING: renewal failing: connection refused"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			addr := startControl(t)
			cl := api.NewClient(addr)
			p := registry.Proxy{Service: "x", ID: "x-1", Outbound: "127.0.0.1:15001", Admin: fakeSidecarAdmin(t, c.cert)}
			if _, err := cl.RegisterProxy(context.Background(), api.ProxyRequest{Proxy: p}); err != nil {
				t.Fatal(err)
			}
			out, _, err := weft(t, append([]string{"check", "--control", addr}, c.args...)...)
			if !strings.Contains(out, "CA (generated)") || !strings.Contains(out, "sidecar x/x-1") {
				t.Errorf("weft check:\n%s\nwant the CA and the sidecar listed", out)
			}
			switch {
			case c.want == "" && err != nil:
				t.Errorf("weft check: got %v\n%s\nwant no warning", err, out)
			case c.want != "" && (err == nil || ExitCode(err) != 1 || !strings.Contains(out, c.want)):
				t.Errorf("weft check: got %v\n%s\nwant exit 1 and %q", err, out, c.want)
			}
		})
	}
	t.Run("unreachable sidecar", func(t *testing.T) {
		addr := startControl(t)
		p := registry.Proxy{Service: "x", ID: "x-1", Outbound: "127.0.0.1:15001", Admin: deadAddr(t)}
		if _, err := api.NewClient(addr).RegisterProxy(context.Background(), api.ProxyRequest{Proxy: p}); err != nil {
			t.Fatal(err)
		}
		if out, _, err := weft(t, "check", "--control", addr); ExitCode(err) != 1 || !strings.Contains(out, "unreachable") {
			t.Errorf("weft check with a sidecar that does not answer: got %v\n%s", err, out)
		}
	})
	if _, _, err := weft(t, "check", "--threshold", "2"); ExitCode(err) != 2 {
		t.Errorf("--threshold 2: got %v, want a usage error", err)
	}
}
