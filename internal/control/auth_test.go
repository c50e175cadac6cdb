package control

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/api"
)

// The API asks for the token: none or a wrong one gets 401 with a
// message that says where the token is (never the token); the right one
// is served. What sidecars call, health and metrics need none. The token
// is made once, 0600, and left for the local user.
func TestAPIToken(t *testing.T) {
	tc := start(t)
	token := api.LoadToken(tc.Addr())
	if len(token) != 64 {
		t.Fatalf("the token left for this user: %q, want 64 hex digits", token)
	}
	info, err := os.Stat(filepath.Join(tc.cfg.DataDir, APITokenFile))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("the data dir's token file: %v %v, want mode 0600", info, err)
	}
	path, _ := api.TokenPath(tc.Addr())
	if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("the user's token file %s: %v %v, want mode 0600", path, info, err)
	}
	get := func(path, auth string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+tc.Addr()+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := tc.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b := make([]byte, 4096)
		n, _ := resp.Body.Read(b)
		return resp.StatusCode, string(b[:n])
	}
	for _, c := range []struct {
		name, auth string
		want       int
		says       string
	}{
		{"no token", "", http.StatusUnauthorized, "needs its token"},
		{"wrong token", "Bearer " + strings.Repeat("0", 64), http.StatusUnauthorized, "wrong API token"},
		{"not bearer", "Basic " + token, http.StatusUnauthorized, "wrong API token"},
		{"the token", "Bearer " + token, http.StatusOK, "["},
	} {
		code, body := get("/v1/services", c.auth)
		if code != c.want || !strings.Contains(body, c.says) || (code != 200 && strings.Contains(body, token)) {
			t.Errorf("%s: got %d %s, want %d saying %q (and never the token)", c.name, code, body, c.want, c.says)
		}
	}
	for _, open := range []string{"/healthz", "/readyz", "/metrics", "/v1/version"} {
		if code, body := get(open, ""); code != http.StatusOK {
			t.Errorf("GET %s without a token: got %d %.200s, want 200", open, code, body)
		}
	}
	// Restarted on the same data dir, the token stays.
	again, err := loadAPIToken(tc.cfg.DataDir)
	if err != nil || again != token {
		t.Errorf("the token on a second start: %q %v, want the first", again, err)
	}
}
