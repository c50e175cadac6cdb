// Package ca is the control plane's certificate authority: it creates a
// root on first start (or loads a root or intermediate the operator
// gives), and signs workload certificates from sidecars' CSRs.
//
//	first start: <data-dir>/ca/root.crt (0644) + root.key (0600, P-256)
//	--ca-cert FILE --ca-key FILE: the operator's CA (a root, or an
//	    intermediate followed by its chain up to the root)
//	<data-dir>/ca/previous.crt: roots kept in the trust bundle after a
//	    rotation, until they expire (the overlap)
//	Sign(csr, service, ttl): one URI SAN spiffe://<td>/service/<name>,
//	    client and server auth, NotBefore a minute back for clock skew
//	IssueServer(key, names, ttl): the control plane's own API
//	    certificate: DNS and IP SANs, server auth only, no URI SAN (so no
//	    sidecar takes it for a workload)
//
// The key lives on disk, readable by its owner only, never in etcd:
// docs/adr/0014-workload-identity.md says why.
package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"path/filepath"
	"time"

	"github.com/weftmesh/weft/internal/security"
)

// RootLifetime is how long a root the control plane creates is valid.
const RootLifetime = 10 * 365 * 24 * time.Hour

// ClockSkew is how far back a certificate's NotBefore is set, so that a
// peer whose clock is a little behind accepts it at once.
const ClockSkew = time.Minute

// Files in the CA directory.
const (
	RootCertFile = "root.crt"
	RootKeyFile  = "root.key"
	PreviousFile = "previous.crt"
)

// Config says where the CA comes from.
type Config struct {
	// Dir holds a generated root (created 0700 if missing), and
	// previous.crt. Usually <data-dir>/ca.
	Dir string
	// CertFile and KeyFile, both or neither, are the operator's CA (PEM):
	// the signing certificate first, then its chain up to the root.
	CertFile, KeyFile string
	TrustDomain       string
	Now               func() time.Time // nil: time.Now
}

// CA signs workload certificates. It is immutable once opened and safe
// for concurrent use.
type CA struct {
	td     string
	signer crypto.Signer
	cert   *x509.Certificate   // the signing certificate
	chain  []*x509.Certificate // intermediates to send with a leaf (the signer, when it is not the anchor)
	bundle []*x509.Certificate // trust anchors: the current root, then previous ones
	source string
	now    func() time.Time
	// Created is true when this Open made a new root.
	Created bool
}

// Open loads the CA, creating a root in Dir when none is there and no
// operator CA is given.
func Open(cfg Config) (*CA, error) {
	if err := security.ValidTrustDomain(cfg.TrustDomain); err != nil {
		return nil, fmt.Errorf("--trust-domain: %w", err)
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return nil, errors.New("--ca-cert and --ca-key go together")
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	c := &CA{td: cfg.TrustDomain, now: now}
	var certs []*x509.Certificate
	var err error
	switch {
	case cfg.CertFile != "":
		c.source = "operator"
		if certs, c.signer, err = load(cfg.CertFile, cfg.KeyFile); err != nil {
			return nil, err
		}
	default:
		c.source = "generated"
		if cfg.Dir == "" {
			return nil, errors.New("CA: no directory for the generated root")
		}
		certs, c.signer, c.Created, err = loadOrCreate(cfg.Dir, cfg.TrustDomain, now())
		if err != nil {
			return nil, err
		}
	}
	c.cert = certs[0]
	if !c.cert.IsCA || c.cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("CA certificate %q is not a CA (basic constraints CA and key usage cert sign required)", c.cert.Subject)
	}
	if !samePublicKey(c.cert.PublicKey, c.signer.Public()) {
		return nil, fmt.Errorf("CA key does not match the CA certificate %q", c.cert.Subject)
	}
	if !now().Before(c.cert.NotAfter) {
		return nil, fmt.Errorf("CA certificate %q expired at %s", c.cert.Subject, c.cert.NotAfter.UTC().Format(time.RFC3339))
	}
	anchor := certs[len(certs)-1]
	if len(certs) > 1 {
		c.chain = certs[:len(certs)-1]
	}
	c.bundle = []*x509.Certificate{anchor}
	if cfg.Dir != "" {
		prev, err := previousRoots(filepath.Join(cfg.Dir, PreviousFile), now())
		if err != nil {
			return nil, err
		}
		c.bundle = append(c.bundle, prev...)
	}
	// The chain must verify: a leaf signed now would otherwise be refused.
	if len(c.chain) > 0 {
		pool := x509.NewCertPool()
		pool.AddCert(anchor)
		inter := x509.NewCertPool()
		for _, ic := range c.chain[1:] {
			inter.AddCert(ic)
		}
		if _, err := c.cert.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			return nil, fmt.Errorf("--ca-cert: the chain does not verify up to its last certificate: %w", err)
		}
	}
	return c, nil
}

// TrustDomain is the trust domain the CA issues in.
func (c *CA) TrustDomain() string { return c.td }

// Certificate is the signing certificate (the root, or the operator's
// intermediate).
func (c *CA) Certificate() *x509.Certificate { return c.cert }

// Source is "generated" or "operator".
func (c *CA) Source() string { return c.source }

// Bundle is the trust bundle: the current anchor, then previous roots.
func (c *CA) Bundle() []*x509.Certificate { return c.bundle }

// BundlePEM is Bundle as PEM.
func (c *CA) BundlePEM() []byte { return security.EncodeCertificates(c.bundle) }

// Issued is a signed workload certificate.
type Issued struct {
	Cert  *x509.Certificate
	Chain []*x509.Certificate // Cert, then the CA's intermediates
	ID    string
}

// Sign issues a certificate for service, valid for ttl (cut to the CA's
// own expiry), to the public key of csr once its signature checks. Only
// the SPIFFE ID goes in the certificate: the subject and names the CSR
// asks for are ignored.
func (c *CA) Sign(csr *x509.CertificateRequest, service string, ttl time.Duration) (*Issued, error) {
	if ttl <= 0 {
		return nil, fmt.Errorf("certificate lifetime %s: must be positive", ttl)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("CSR: signature does not verify: %w", err)
	}
	if err := acceptableKey(csr.PublicKey); err != nil {
		return nil, fmt.Errorf("CSR: %w", err)
	}
	id, err := security.ServiceID(c.td, service)
	if err != nil {
		return nil, err
	}
	uri, err := url.Parse(id)
	if err != nil {
		return nil, fmt.Errorf("SPIFFE ID %q: %w", id, err)
	}
	now := c.now()
	notAfter := now.Add(ttl)
	if notAfter.After(c.cert.NotAfter) {
		notAfter = c.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		NotBefore:             now.Add(-ClockSkew),
		NotAfter:              notAfter,
		URIs:                  []*url.URL{uri},
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	if _, ok := csr.PublicKey.(*rsa.PublicKey); ok {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, csr.PublicKey, c.signer)
	if err != nil {
		return nil, fmt.Errorf("sign certificate for %s: %w", id, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("sign certificate for %s: %w", id, err)
	}
	return &Issued{Cert: leaf, Chain: append([]*x509.Certificate{leaf}, c.chain...), ID: id}, nil
}

// IssueServer issues a server certificate for pub, valid for ttl (cut
// to the CA's own expiry), naming hosts: each an IP address or a DNS
// name. It has no URI SAN and only server auth, so it proves a host, never
// a workload: the control plane serves its API with it.
func (c *CA) IssueServer(pub crypto.PublicKey, hosts []string, ttl time.Duration) (*Issued, error) {
	if ttl <= 0 {
		return nil, fmt.Errorf("certificate lifetime %s: must be positive", ttl)
	}
	if len(hosts) == 0 {
		return nil, errors.New("server certificate: no host names")
	}
	if err := acceptableKey(pub); err != nil {
		return nil, fmt.Errorf("server certificate: %w", err)
	}
	now := c.now()
	notAfter := now.Add(ttl)
	if notAfter.After(c.cert.NotAfter) {
		notAfter = c.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: hosts[0]},
		NotBefore:             now.Add(-ClockSkew),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, pub, c.signer)
	if err != nil {
		return nil, fmt.Errorf("sign server certificate for %v: %w", hosts, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("sign server certificate for %v: %w", hosts, err)
	}
	return &Issued{Cert: leaf, Chain: append([]*x509.Certificate{leaf}, c.chain...)}, nil
}

// ParseCSR reads one PEM CERTIFICATE REQUEST.
func ParseCSR(data []byte) (*x509.CertificateRequest, error) {
	b, rest := pem.Decode(data)
	if b == nil {
		return nil, errors.New("csr: no PEM block")
	}
	if b.Type != "CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("csr: PEM type %q, want CERTIFICATE REQUEST", b.Type)
	}
	if len(pemTrim(rest)) != 0 {
		return nil, errors.New("csr: more than one PEM block")
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("csr: %w", err)
	}
	return csr, nil
}

func pemTrim(b []byte) []byte {
	for len(b) > 0 && (b[0] == '\n' || b[0] == '\r' || b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}

func acceptableKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return fmt.Errorf("ECDSA curve %s: want P-256 or P-384", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("RSA key of %d bits: want at least 2048", k.N.BitLen())
		}
	default:
		return fmt.Errorf("key type %T: want ECDSA, Ed25519 or RSA", pub)
	}
	return nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic("ca: crypto/rand failed: " + err.Error())
	}
	return n.Add(n, big.NewInt(1)) // never 0
}

func samePublicKey(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}
