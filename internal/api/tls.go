package api

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// A control plane whose API serves TLS is reached at https://HOST:PORT.
// Its certificate is checked against, in order: the PEM file the caller
// gives (a sidecar's --control-ca), WEFT_CONTROL_CA, the CA file the
// control plane left for its local user (CAPath), or the system's roots
// (for a certificate the operator had signed by a public or company CA).

// ControlCAEnv names the environment variable that gives a PEM file of
// the CA an https control plane's certificate chains to.
const ControlCAEnv = "WEFT_CONTROL_CA"

// CAPath is the file, for the local user, that holds the CA of the
// control plane at addr: <user config dir>/weft/ca/<host>_<port>.pem.
func CAPath(addr string) (string, error) { return userFile(addr, "ca", ".pem") }

// SaveCA writes the PEM CA of the control plane at addr to the local
// user's file for it (CAPath).
func SaveCA(addr string, pemData []byte) (string, error) {
	path, err := CAPath(addr)
	if err != nil {
		return "", err
	}
	return path, writeUserFile(path, pemData, 0o644, "the control plane's CA")
}

// loadRoots is the pool an https control plane at addr is checked
// against, and where it came from (nil, "system roots" when no file is
// given or saved).
func loadRoots(addr, file string) (*x509.CertPool, string, error) {
	from := file
	if from == "" {
		from = os.Getenv(ControlCAEnv)
	}
	if from == "" {
		p, err := CAPath(addr)
		if err != nil {
			return nil, "", err
		}
		if _, err := os.Stat(p); err != nil {
			return nil, "system roots", nil
		}
		from = p
	}
	b, err := os.ReadFile(from)
	if err != nil {
		return nil, "", fmt.Errorf("control plane CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, "", fmt.Errorf("control plane CA %s: no PEM certificate in it", from)
	}
	return pool, from, nil
}

// TLSOptions are how a Client reaches an https control plane.
type TLSOptions struct {
	// CAFile is a PEM file of the CA to check the control plane's
	// certificate with ("": WEFT_CONTROL_CA, the saved CA, system roots).
	CAFile string
	// ClientCertificate, when set, gives the certificate to present: a
	// sidecar's workload certificate (nil from it: none yet).
	ClientCertificate func() *tls.Certificate
}

// ClientTLS is the TLS config of calls to the https control plane at
// addr, and what its certificate is checked against.
func ClientTLS(addr string, o TLSOptions) (*tls.Config, string, error) {
	roots, from, err := loadRoots(addr, o.CAFile)
	if err != nil {
		return nil, "", err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
	if get := o.ClientCertificate; get != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if c := get(); c != nil {
				return c, nil
			}
			return &tls.Certificate{}, nil // none yet: the control plane then says what it wants
		}
	}
	return cfg, from, nil
}

// newTLSTransport is Transport's like for an https control plane.
func newTLSTransport(cfg *tls.Config) *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     cfg,
		TLSHandshakeTimeout: 5 * time.Second,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
	}
}

// explainTLS adds to an error of a TLS handshake with the control plane
// what to do about it.
func explainTLS(err error, base, roots string) error {
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	switch {
	case errors.As(err, &unknown):
		return fmt.Errorf("%w (checked against %s: give the control plane's CA with --control-ca or %s; weft control leaves it for its local user in ~/.config/weft/ca/HOST_PORT.pem)", err, roots, ControlCAEnv)
	case errors.As(err, &host):
		return fmt.Errorf("%w (the control plane's certificate does not name the host in %s: start it with --tls-host NAME)", err, base)
	case strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return fmt.Errorf("%w (the control plane at %s serves plain HTTP: use http://)", err, base)
	}
	return err
}
