package control

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/registry"
	"github.com/weftmesh/weft/internal/security"
	"github.com/weftmesh/weft/internal/security/ca"
)

// workloadCert is a certificate for service from tc's CA, by a join
// token, as a sidecar gets one.
func (tc *testControl) workloadCert(t *testing.T, service string) tls.Certificate {
	t.Helper()
	tok := tc.createToken(t, security.TokenRequest{Service: service})
	key, _, csr := newCSR(t)
	code, body, got := tc.requestCert(t, security.CertificateRequest{Service: service, CSR: csr}, tok.Secret)
	if code != http.StatusOK {
		t.Fatalf("certificate for %s: got %d %s", service, code, body)
	}
	return certOf(t, got.Chain, key)
}

func certOf(t *testing.T, chainPEM string, key *ecdsa.PrivateKey) tls.Certificate {
	t.Helper()
	chain, err := security.ParseCertificates([]byte(chainPEM))
	if err != nil {
		t.Fatal(err)
	}
	c := tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, x := range chain {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c
}

// call sends method path with cert (nil: none) and auth (the
// Authorization header, "" for none) over TLS checked against roots.
func (tc *testControl) call(t *testing.T, roots *x509.CertPool, cert *tls.Certificate, auth, method, path, body string) (int, string) {
	t.Helper()
	cfg := &tls.Config{RootCAs: roots}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	tr := &http.Transport{Proxy: nil, TLSClientConfig: cfg}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(method, tc.URL()+path, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// With TLS on the API: only HTTPS is served, with a certificate of the
// CA that the local user's CLI finds by itself; a sidecar's call needs a
// workload certificate of this CA and of the service it speaks for (or
// the token); a certificate never stands in for the token on the CLI's
// API.
func TestAPIOverTLS(t *testing.T) {
	tc := startWith(t, func(c *Config) { c.TLS = TLSOn })
	if !strings.HasPrefix(tc.URL(), "https://") {
		t.Fatalf("URL %s: want https://", tc.URL())
	}
	roots := pool(tc.identity.ca.Bundle())
	token := "Bearer " + tc.api.Token

	// The CLI's client, with nothing but the address: the CA and token
	// the control plane left for this user.
	cli := api.NewClient(tc.URL())
	if _, err := cli.Services(ctx(t)); err != nil {
		t.Fatalf("a CLI client with the CA left for this user: %v", err)
	}
	cli.HTTP.CloseIdleConnections()
	if path, _ := api.CAPath(tc.Addr()); !fileExists(path) {
		t.Errorf("no CA file left for the user at %s", path)
	}
	// Plain HTTP to it is not served.
	if code, body := getPlain(t, "http://"+tc.Addr()+"/v1/version"); code != http.StatusBadRequest {
		t.Errorf("plain HTTP to the TLS API: got %d %s, want 400", code, body)
	}

	web := tc.workloadCert(t, "web")
	other := otherCAcert(t, "web")
	reg := func(service string) string {
		b, _ := json.Marshal(api.RegisterRequest{Instance: registry.Instance{Service: service, ID: service + "-1", Address: "127.0.0.1:9", Ready: true}, TTLSeconds: 30})
		return string(b)
	}
	for _, c := range []struct {
		name         string
		cert         *tls.Certificate
		auth         string
		method, path string
		body         string
		want         int
		says         string
	}{
		{"registration without a certificate", nil, "", "PUT", "/v1/instances/web/web-1", reg("web"), 401, "--join-token"},
		{"registration with web's certificate", &web, "", "PUT", "/v1/instances/web/web-1", reg("web"), 200, "lease"},
		{"registration of another service", &web, "", "PUT", "/v1/instances/catalog/catalog-1", reg("catalog"), 403, "may not speak for service catalog"},
		{"registration with another CA's certificate", &other, "", "PUT", "/v1/instances/web/web-1", reg("web"), 401, "client certificate refused"},
		{"registration with the API token", nil, token, "PUT", "/v1/instances/catalog/catalog-1", reg("catalog"), 200, "lease"},
		{"the push stream without a certificate", nil, "", "GET", "/v1/stream", "", 401, "workload certificate"},
		{"the CLI's API with a certificate, no token", &web, "", "GET", "/v1/services", "", 401, "needs its token"},
		{"the CLI's API with the token", nil, token, "GET", "/v1/services", "", 200, "web"},
		{"health without anything", nil, "", "GET", "/healthz", "", 200, "ok"},
	} {
		code, body := tc.call(t, roots, c.cert, c.auth, c.method, c.path, c.body)
		if code != c.want || !strings.Contains(body, c.says) {
			t.Errorf("%s: got %d %.300s, want %d saying %q", c.name, code, body, c.want, c.says)
		}
	}
}

// A sidecar's certificate binds the leases it may use to its service: it
// keeps its own lease alive and registers on it, but may neither renew
// another service's lease nor attach a record to it (which its own
// deregistration would then revoke). The API token is not bound.
func TestLeasesBoundToTheirService(t *testing.T) {
	tc := startWith(t, func(c *Config) { c.TLS = TLSOn })
	roots := pool(tc.identity.ca.Bundle())
	web, catalog := tc.workloadCert(t, "web"), tc.workloadCert(t, "catalog")
	register := func(cert *tls.Certificate, service, id string, lease registry.LeaseID) (int, string) {
		t.Helper()
		b, _ := json.Marshal(api.RegisterRequest{Instance: registry.Instance{Service: service, ID: id, Address: "127.0.0.1:9", Ready: true}, Lease: lease, TTLSeconds: 30})
		return tc.call(t, roots, cert, "", "PUT", "/v1/instances/"+service+"/"+id, string(b))
	}
	leaseOf := func(code int, body string) registry.LeaseID {
		t.Helper()
		var r api.RegisterResponse
		if code != http.StatusOK || json.Unmarshal([]byte(body), &r) != nil || r.Lease == 0 {
			t.Fatalf("registration: got %d %s, want 200 with a lease", code, body)
		}
		return r.Lease
	}
	webLease := leaseOf(register(&web, "web", "web-1", 0))
	catalogLease := leaseOf(register(&catalog, "catalog", "catalog-1", 0))
	keepAlive := func(cert *tls.Certificate, auth string, lease registry.LeaseID) (int, string) {
		return tc.call(t, roots, cert, auth, "POST", "/v1/leases/"+lease.String()+"/keepalive", "")
	}

	if code, body := keepAlive(&web, "", webLease); code != http.StatusNoContent {
		t.Errorf("web keeps its own lease alive: got %d %s, want 204", code, body)
	}
	if code, body := register(&web, "web", "web-2", webLease); code != http.StatusOK {
		t.Errorf("web registers a second instance on its lease: got %d %s, want 200", code, body)
	}
	if code, body := keepAlive(&web, "", catalogLease); code != http.StatusForbidden || !strings.Contains(body, "holds records of service catalog") {
		t.Errorf("web keeps catalog's lease alive: got %d %s, want 403 naming catalog", code, body)
	}
	if code, body := register(&web, "web", "web-3", catalogLease); code != http.StatusForbidden || !strings.Contains(body, "may use only a lease of service web") {
		t.Errorf("web registers on catalog's lease: got %d %s, want 403", code, body)
	}
	// Nothing of web's was attached to catalog's lease.
	if held, err := tc.instances.LeaseServices(ctx(t), int64(catalogLease)); err != nil || len(held) != 1 || held[0] != "catalog" {
		t.Errorf("catalog's lease holds %q (%v), want only catalog", held, err)
	}
	if code, body := keepAlive(nil, "Bearer "+tc.api.Token, catalogLease); code != http.StatusNoContent {
		t.Errorf("the API token keeps any lease alive: got %d %s, want 204", code, body)
	}
	if code, body := keepAlive(&web, "", 0x5eed); code != http.StatusNotFound {
		t.Errorf("an unknown lease: got %d %s, want 404", code, body)
	}
}

// otherCAcert is a certificate for service from a CA of its own.
func otherCAcert(t *testing.T, service string) tls.Certificate {
	t.Helper()
	c, err := ca.Open(ca.Config{Dir: t.TempDir(), TrustDomain: security.DefaultTrustDomain})
	if err != nil {
		t.Fatal(err)
	}
	key, der, _ := newCSR(t)
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	issued, err := c.Sign(csr, service, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return certOf(t, string(security.EncodeCertificates(issued.Chain)), key)
}

// A client that does not trust the control plane's CA says what to give
// it.
func TestAPIOverTLSUnknownCA(t *testing.T) {
	tc := startWith(t, func(c *Config) { c.TLS = TLSOn })
	wrong := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(wrong, security.EncodeCertificates([]*x509.Certificate{otherCAcert(t, "web").Leaf}), 0o644); err != nil {
		t.Fatal(err)
	}
	c := api.NewClientTLS(tc.URL(), api.TLSOptions{CAFile: wrong})
	defer c.HTTP.CloseIdleConnections()
	_, err := c.Services(ctx(t))
	if err == nil || !strings.Contains(err.Error(), "--control-ca") || !strings.Contains(err.Error(), wrong) {
		t.Errorf("with another CA: got %v, want an error naming --control-ca and %s", err, wrong)
	}
	bad := api.NewClientTLS(tc.URL(), api.TLSOptions{CAFile: filepath.Join(t.TempDir(), "missing.pem")})
	if bad.Err() == nil || !strings.Contains(bad.Err().Error(), "missing.pem") {
		t.Errorf("with a CA file that is not there: Err %v, want it named", bad.Err())
	}
}

func TestAPITLSConfig(t *testing.T) {
	for _, c := range []struct {
		name  string
		cfg   func(*Config)
		err   string
		tlsOn bool
	}{
		{"loopback: off by default", func(c *Config) {}, "", false},
		{"wildcard: on by default", func(c *Config) { c.Listen = "0.0.0.0:15010" }, "", true},
		{"wildcard, off: refused", func(c *Config) { c.Listen = ":15010"; c.TLS = TLSOff }, "is not a loopback address", false},
		{"operator's certificate: on", func(c *Config) { c.TLSCert, c.TLSKey = "c.pem", "k.pem" }, "", true},
		{"certificate without key", func(c *Config) { c.TLSCert = "c.pem" }, "--tls-cert and --tls-key go together", false},
		{"bad mode", func(c *Config) { c.TLS = "yes" }, `--tls "yes"`, false},
	} {
		cfg := Default()
		c.cfg(&cfg)
		err := cfg.Validate()
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: got %v, want an error saying %q", c.name, err, c.err)
		case c.err == "" && cfg.tlsOn() != c.tlsOn:
			t.Errorf("%s: TLS on %v, want %v", c.name, cfg.tlsOn(), c.tlsOn)
		}
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func getPlain(t *testing.T, url string) (int, string) {
	t.Helper()
	tr := &http.Transport{Proxy: nil}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
