package control

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/security/ca"
)

// TLS on the API (Config.TLS). With it the control plane serves only
// HTTPS, and sidecars' calls (registration, leases, the push stream,
// reports, spans) must carry a workload certificate of this mesh's CA,
// of the service they speak for (auth.go). Listening beyond loopback
// needs it: plain HTTP there would give the network every sidecar's
// registration and the API token.
const (
	TLSAuto = "auto" // on when --listen is not a loopback address
	TLSOn   = "on"
	TLSOff  = "off"
)

// apiCertTTL is the life of the API certificate the CA issues; it is
// made anew at 70% of it.
const apiCertTTL = 7 * 24 * time.Hour

// tlsOn reports whether the API serves TLS under c.
func (c Config) tlsOn() bool {
	switch c.TLS {
	case TLSOn:
		return true
	case TLSOff:
		return false
	}
	return c.TLSCert != "" || !loopbackListen(c.Listen)
}

// validateTLS checks the TLS flags.
func (c Config) validateTLS() error {
	switch c.TLS {
	case TLSAuto, TLSOn, TLSOff, "":
	default:
		return fmt.Errorf("--tls %q: want auto, on or off", c.TLS)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if c.TLS == TLSOff && c.TLSCert != "" {
		return errors.New("--tls off with --tls-cert: choose one")
	}
	if c.TLS == TLSOff && !loopbackListen(c.Listen) {
		return fmt.Errorf("--tls off: --listen %s is not a loopback address; there the API needs TLS (--tls auto or on: a certificate from this control plane's CA; or --tls-cert and --tls-key)", c.Listen)
	}
	for _, h := range c.TLSHosts {
		if h == "" {
			return errors.New("--tls-host: empty name")
		}
	}
	return nil
}

// loopbackListen reports whether a listen address (host:port) is on
// loopback only; an empty host or a wildcard is every interface.
func loopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// apiCert serves the API's certificate: the operator's (--tls-cert), or
// one the CA issues for the names the control plane is reached by.
type apiCert struct {
	ca    *ca.CA
	hosts []string
	now   func() time.Time

	mu    sync.Mutex
	cert  *tls.Certificate
	renew time.Time
}

// newAPICert loads the operator's certificate, or issues the first one.
func newAPICert(cfg Config, authority *ca.CA, listen string) (*apiCert, error) {
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert %s, --tls-key %s: %w", cfg.TLSCert, cfg.TLSKey, err)
		}
		return &apiCert{cert: &cert, now: time.Now}, nil
	}
	a := &apiCert{ca: authority, hosts: apiHosts(listen, cfg.TLSHosts), now: time.Now}
	if _, err := a.get(nil); err != nil {
		return nil, err
	}
	return a, nil
}

// get is tls.Config.GetCertificate: the certificate in force, made anew
// when it nears its end.
func (a *apiCert) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ca == nil || (a.cert != nil && a.now().Before(a.renew)) {
		return a.cert, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("API certificate key: %w", err)
	}
	issued, err := a.ca.IssueServer(key.Public(), a.hosts, apiCertTTL)
	if err != nil {
		return nil, fmt.Errorf("API certificate: %w", err)
	}
	cert := &tls.Certificate{PrivateKey: key, Leaf: issued.Cert}
	for _, c := range issued.Chain {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	life := issued.Cert.NotAfter.Sub(a.now())
	a.cert, a.renew = cert, a.now().Add(life*7/10)
	return cert, nil
}

// apiHosts are the names the API certificate carries: the listen host
// (every interface's address for a wildcard), this host's name,
// loopback, and the operator's extra names.
func apiHosts(listen string, extra []string) []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	host, _, _ := net.SplitHostPort(listen)
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range addrs {
				if n, ok := a.(*net.IPNet); ok {
					hosts = append(hosts, n.IP.String())
				}
			}
		}
	} else {
		hosts = append(hosts, host)
	}
	if name, err := os.Hostname(); err == nil && name != "" {
		hosts = append(hosts, name)
	}
	hosts = append(hosts, extra...)
	slices.Sort(hosts)
	return slices.Compact(hosts)
}

// serverTLS is the API's TLS config: TLS 1.2 or later (browsers reach
// the dashboard too), client certificates asked for but not required:
// auth.go checks a sidecar's against the trust bundle and tells the CLI
// (token only) from a sidecar.
func (a *apiCert) serverTLS() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: a.get,
		ClientAuth:     tls.RequestClientCert,
	}
}

// saveCAForUser leaves the trust bundle where the local user's CLI and
// sidecars look for the CA of an https control plane at addr (as
// saveForUser does the token), and returns the files written.
func saveCAForUser(addr string, bundlePEM []byte) ([]string, error) {
	var paths []string
	for _, a := range userAddrs(addr) {
		p, err := api.SaveCA(a, bundlePEM)
		if err != nil {
			return paths, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}
