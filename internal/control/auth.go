package control

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/security"
	"github.com/weftmesh/weft/internal/telemetry"
)

// API authentication: the API the CLI uses asks for a bearer token. The
// control plane makes it on first start, in its data dir (APITokenFile,
// 0600), and leaves a copy for its local user where the CLI looks
// (api.TokenPath). What sidecars call (the push stream, registration and
// leases, reports, spans) asks, when the API serves TLS (apitls.go), for
// a workload certificate of the service the call is for, or the token;
// on plain loopback it is open to this host's processes. Certificate
// requests carry their own proof (a join token or the certificate in
// force); health, readiness, metrics and the version are open. The
// dashboard's pages load without the token and its figures ask for it
// (dashboard.RequireToken).

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
// control plane at addr (userAddrs).
func saveForUser(addr, token string) ([]string, error) {
	var paths []string
	for _, a := range userAddrs(addr) {
		p, err := api.SaveToken(a, token)
		if err != nil {
			return paths, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// userAddrs are the addresses the local user reaches the control plane
// at addr by: addr, or the loopback addresses of its port when addr is a
// wildcard (so that --control 127.0.0.1:PORT finds what is left there).
func userAddrs(addr string) []string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return []string{addr}
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return []string{net.JoinHostPort("127.0.0.1", port), net.JoinHostPort("localhost", port)}
	}
	return []string{addr}
}

// Who may make a call (access).
type access int

const (
	openAccess     access = iota // anyone
	sidecarAccess                // a sidecar: with TLS, its certificate (or the token)
	operatorAccess               // the API token
)

// accessOf classifies r, and for a sidecar's call names the service it
// speaks for when the path does ("" when any of the mesh's may make it).
func accessOf(r *http.Request) (access, string) {
	p, m := r.URL.Path, r.Method
	switch {
	case p == "/healthz", p == "/readyz", p == "/metrics", p == "/v1/version":
		return openAccess, ""
	case m == http.MethodPost && strings.HasPrefix(p, "/v1/certificates"):
		return openAccess, "" // a join token or a renewal proof says who asks (certs.go)
	case strings.HasPrefix(p, "/ui/") || p == "/ui":
		return openAccess, "" // the dashboard, which asks for the same token itself (docs/dashboard.md)
	case m == http.MethodGet && p == "/v1/stream":
		return sidecarAccess, ""
	case (m == http.MethodPut || m == http.MethodDelete) && (strings.HasPrefix(p, "/v1/instances/") || strings.HasPrefix(p, "/v1/proxies/")):
		return sidecarAccess, pathService(p) // a sidecar's registration
	case m == http.MethodPost && strings.HasPrefix(p, "/v1/leases/"):
		return sidecarAccess, ""
	case m == http.MethodPost && strings.HasPrefix(p, "/v1/telemetry/"):
		return sidecarAccess, pathService(p)
	case m == http.MethodPost && p == "/v1/traces":
		return sidecarAccess, ""
	}
	return operatorAccess, ""
}

// pathService is the second segment of /v1/KIND/SERVICE/...
func pathService(p string) string {
	parts := strings.SplitN(strings.TrimPrefix(p, "/v1/"), "/", 3)
	if len(parts) < 2 {
		return ""
	}
	return parts[1]
}

// authenticator checks each call's credentials (accessOf says which it
// needs). Without TLS on the API (loopback only), sidecars' calls are
// open to this host's processes, as they were before TLS; with it, each
// must carry a workload certificate of this mesh, of the service it
// speaks for, or the API token.
type authenticator struct {
	want   []byte                     // "Bearer TOKEN"
	bundle func() []*x509.Certificate // the CA's trust bundle; nil without TLS
	now    func() time.Time
	next   http.Handler
}

func authenticate(token string, bundle func() []*x509.Certificate, next http.Handler) http.Handler {
	return &authenticator{want: []byte("Bearer " + token), bundle: bundle, now: time.Now, next: next}
}

func (a *authenticator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	acc, service := accessOf(r)
	switch {
	case acc == openAccess:
	case a.tokenOK(r):
	case acc == sidecarAccess && a.bundle == nil:
	case acc == sidecarAccess:
		id, status, msg := a.sidecarCert(r, service)
		if status != 0 {
			a.refuse(w, status, msg)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), callerKey{}, id))
	default:
		msg := "this control plane's API needs its token: send Authorization: Bearer TOKEN. " +
			"The CLI reads WEFT_TOKEN, or the file weft control wrote for its user at first start (~/.config/weft/tokens/HOST_PORT); " +
			"the token is in the control plane's data dir, file " + APITokenFile
		if r.Header.Get("Authorization") != "" {
			msg = "wrong API token for this control plane (the one in its data dir, file " + APITokenFile + ", is asked for)"
		}
		a.refuse(w, http.StatusUnauthorized, msg)
		return
	}
	a.next.ServeHTTP(w, r)
}

func (a *authenticator) tokenOK(r *http.Request) bool {
	return subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), a.want) == 1
}

// sidecarCert checks the client certificate of a sidecar's call: it must
// chain to the trust bundle now and, when the call names a service, be
// that service's. It returns the identity it proves, and status 0 when
// the call may go on, else the status and why not.
func (a *authenticator) sidecarCert(r *http.Request, service string) (security.ID, int, string) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return security.ID{}, http.StatusUnauthorized, "this control plane takes sidecars' calls with their workload certificate: " +
			"start the sidecar with --join-token (weft token create), or give it the API token (WEFT_TOKEN)"
	}
	raw := make([][]byte, len(r.TLS.PeerCertificates))
	for i, c := range r.TLS.PeerCertificates {
		raw[i] = c.Raw
	}
	_, id, err := security.VerifyChain(raw, a.bundle(), a.now())
	if err != nil {
		return id, http.StatusUnauthorized, fmt.Sprintf("client certificate refused: %v", err)
	}
	if service != "" && id.Service != service {
		return id, http.StatusForbidden, fmt.Sprintf("the certificate of %s may not speak for service %s", id, service)
	}
	return id, 0, ""
}

// callerKey is the context key of the identity a sidecar's call proved
// with its certificate.
type callerKey struct{}

// certCaller is the workload identity r's certificate proved (false: the
// call came with the API token, or on plain loopback, where nothing
// binds it to a service).
func certCaller(r *http.Request) (security.ID, bool) {
	id, ok := r.Context().Value(callerKey{}).(security.ID)
	return id, ok
}

func (a *authenticator) refuse(w http.ResponseWriter, status int, msg string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="weft"`)
	}
	telemetry.WriteJSON(w, status, api.Error{Error: msg})
}
