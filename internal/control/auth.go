package control

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/telemetry"
)

// API authentication: the API the CLI uses asks for a bearer token. The
// control plane makes it on first start, in its data dir (APITokenFile,
// 0600), and leaves a copy for its local user where the CLI looks
// (api.TokenPath). What sidecars and exporters call is open: the push
// stream, registration and leases, reports, spans and certificate
// requests (a join token or a certificate proves who asks for one);
// so are health, readiness, metrics and the version. The dashboard's
// pages load without it and its figures ask for it (dashboard.RequireToken).

// APITokenFile is the token's file in the data dir.
const APITokenFile = "api-token"

// loadAPIToken reads the data dir's token, making one on first start.
func loadAPIToken(dataDir string) (string, error) {
	path := filepath.Join(dataDir, APITokenFile)
	b, err := os.ReadFile(path)
	if err == nil {
		if t := strings.TrimSpace(string(b)); len(t) >= 32 {
			return t, nil
		}
		return "", fmt.Errorf("API token file %s: too short; remove it to make a new one", path)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("API token: %w", err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("API token: %w", err)
	}
	t := hex.EncodeToString(raw[:])
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("API token: %w", err)
	}
	if err := os.WriteFile(path, []byte(t+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("API token: %w", err)
	}
	return t, nil
}

// saveForUser leaves the token where the local user's CLI looks for the
// control plane at addr, and at the loopback addresses of its port when
// addr is a wildcard (so that --control 127.0.0.1:PORT finds it).
func saveForUser(addr, token string) ([]string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	addrs := []string{addr}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		addrs = []string{net.JoinHostPort("127.0.0.1", port), net.JoinHostPort("localhost", port)}
	}
	var paths []string
	for _, a := range addrs {
		p, err := api.SaveToken(a, token)
		if err != nil {
			return paths, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// openToAll reports whether r may be served without the API token.
func openToAll(r *http.Request) bool {
	p, m := r.URL.Path, r.Method
	switch {
	case p == "/healthz", p == "/readyz", p == "/metrics", p == "/v1/version":
		return true
	case m == http.MethodGet && p == "/v1/stream":
		return true
	case (m == http.MethodPut || m == http.MethodDelete) && (strings.HasPrefix(p, "/v1/instances/") || strings.HasPrefix(p, "/v1/proxies/")):
		return true // a sidecar's registration
	case m == http.MethodPost && strings.HasPrefix(p, "/v1/leases/"):
		return true
	case m == http.MethodPost && (strings.HasPrefix(p, "/v1/telemetry/") || p == "/v1/traces" || strings.HasPrefix(p, "/v1/certificates")):
		return true
	case strings.HasPrefix(p, "/ui/") || p == "/ui":
		return true // the dashboard, which asks for the same token itself (docs/dashboard.md)
	}
	return false
}

// authenticate serves r when it carries the API token, or needs none.
func authenticate(token string, next http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if openToAll(r) {
			next.ServeHTTP(w, r)
			return
		}
		got := r.Header.Get("Authorization")
		if subtle.ConstantTimeCompare([]byte(got), want) == 1 {
			next.ServeHTTP(w, r)
			return
		}
		msg := "this control plane's API needs its token: send Authorization: Bearer TOKEN. " +
			"The CLI reads WEFT_TOKEN, or the file weft control wrote for its user at first start (~/.config/weft/tokens/HOST_PORT); " +
			"the token is in the control plane's data dir, file " + APITokenFile
		if got != "" {
			msg = "wrong API token for this control plane (the one in its data dir, file " + APITokenFile + ", is asked for)"
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="weft"`)
		telemetry.WriteJSON(w, http.StatusUnauthorized, api.Error{Error: msg})
	})
}
