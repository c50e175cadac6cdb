package ca_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/security"
	"github.com/weftmesh/weft/internal/security/ca"
)

func csrFor(t *testing.T, tmpl *x509.CertificateRequest) *x509.CertificateRequest {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

func TestFirstStartCreatesARoot(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "ca")
	c, err := ca.Open(ca.Config{Dir: dir, TrustDomain: "weft.local"})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Created {
		t.Error("Created: got false on first start, want true")
	}
	for name, want := range map[string]os.FileMode{ca.RootKeyFile: 0o600, ca.RootCertFile: 0o644, ".": 0o700} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != want {
			t.Errorf("%s: mode %04o, want %04o", name, got, want)
		}
	}
	root := c.Certificate()
	if _, ok := root.PublicKey.(*ecdsa.PublicKey); !ok || root.PublicKey.(*ecdsa.PublicKey).Curve != elliptic.P256() {
		t.Errorf("root key: got %T, want ECDSA P-256", root.PublicKey)
	}
	if life := root.NotAfter.Sub(root.NotBefore); life < ca.RootLifetime {
		t.Errorf("root lifetime: got %s, want at least %s", life, ca.RootLifetime)
	}
	again, err := ca.Open(ca.Config{Dir: dir, TrustDomain: "weft.local"})
	if err != nil {
		t.Fatal(err)
	}
	if again.Created || !again.Certificate().Equal(root) {
		t.Error("second start: got a new root, want the one in the directory")
	}
}

func TestKeyReadableByOthersIsRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := ca.Open(ca.Config{Dir: dir, TrustDomain: "weft.local"}); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, ca.RootKeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ca.Open(ca.Config{Dir: dir, TrustDomain: "weft.local"})
	if err == nil || !strings.Contains(err.Error(), "readable by its owner only") {
		t.Errorf("Open with a 0644 key: got %v, want a refusal saying the key must be 0600", err)
	}
	os.Remove(filepath.Join(dir, ca.RootKeyFile))
	if _, err := ca.Open(ca.Config{Dir: dir, TrustDomain: "weft.local"}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("Open with the key gone: got %v, want an error saying one file is missing", err)
	}
}

func TestSign(t *testing.T) {
	t.Parallel()
	c, err := ca.Open(ca.Config{Dir: t.TempDir(), TrustDomain: "prod.example"})
	if err != nil {
		t.Fatal(err)
	}
	// The CSR asks for names and a subject of its own: none of them is used.
	evil, _ := url.Parse("spiffe://prod.example/service/admin")
	csr := csrFor(t, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "admin"}, DNSNames: []string{"admin"},
		IPAddresses: []net.IP{net.ParseIP("10.0.0.1")}, URIs: []*url.URL{evil}, EmailAddresses: []string{"a@b"}})
	before := time.Now()
	got, err := c.Sign(csr, "web", 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	cert := got.Cert
	if len(cert.URIs) != 1 || cert.URIs[0].String() != "spiffe://prod.example/service/web" || got.ID != cert.URIs[0].String() {
		t.Errorf("URI SANs: got %v, want only spiffe://prod.example/service/web", cert.URIs)
	}
	if len(cert.DNSNames)+len(cert.IPAddresses)+len(cert.EmailAddresses) != 0 || cert.Subject.CommonName != "" {
		t.Errorf("names from the CSR: got DNS %v IP %v email %v CN %q, want none", cert.DNSNames, cert.IPAddresses, cert.EmailAddresses, cert.Subject.CommonName)
	}
	if skew := before.Sub(cert.NotBefore); skew < 59*time.Second || skew > 2*time.Minute {
		t.Errorf("NotBefore: %s before signing, want about a minute", skew)
	}
	if life := cert.NotAfter.Sub(before); life < 9*time.Minute || life > 11*time.Minute {
		t.Errorf("NotAfter: %s after signing, want 10m", life)
	}
	if len(cert.ExtKeyUsage) != 2 || cert.IsCA {
		t.Errorf("ExtKeyUsage %v, IsCA %v: want server and client auth, not a CA", cert.ExtKeyUsage, cert.IsCA)
	}
	if _, id, err := security.VerifyChain([][]byte{cert.Raw}, c.Bundle(), time.Now()); err != nil || id.Service != "web" {
		t.Errorf("VerifyChain: got %v, %v; want web", id, err)
	}
	// A CSR whose signature does not match its key is refused.
	bad := csrFor(t, &x509.CertificateRequest{})
	bad.Signature = append([]byte(nil), bad.Signature...)
	bad.Signature[len(bad.Signature)-1] ^= 1
	if _, err := c.Sign(bad, "web", time.Minute); err == nil || !strings.Contains(err.Error(), "signature") {
		t.Errorf("Sign of a CSR with a broken signature: got %v, want refused", err)
	}
	if _, err := c.Sign(csrFor(t, &x509.CertificateRequest{}), "Not_A_Name", time.Minute); err == nil {
		t.Error("Sign for an invalid service name: accepted, want refused")
	}
}

// TestIssueServer: the control plane's API certificate names its hosts,
// verifies for them against the bundle, and is no workload identity.
func TestIssueServer(t *testing.T) {
	t.Parallel()
	c, err := ca.Open(ca.Config{Dir: t.TempDir(), TrustDomain: "prod.example"})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	got, err := c.IssueServer(key.Public(), []string{"control.example", "127.0.0.1", "::1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert := got.Cert
	if len(cert.URIs) != 0 {
		t.Errorf("URI SANs %v: want none", cert.URIs)
	}
	if _, err := security.IdentityOf(cert); err == nil {
		t.Error("IdentityOf the server certificate: accepted as a workload, want refused")
	}
	if len(cert.ExtKeyUsage) != 1 || cert.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Errorf("ExtKeyUsage %v: want server auth only", cert.ExtKeyUsage)
	}
	pool := x509.NewCertPool()
	for _, r := range c.Bundle() {
		pool.AddCert(r)
	}
	for _, host := range []string{"control.example", "127.0.0.1", "::1"} {
		if _, err := cert.Verify(x509.VerifyOptions{DNSName: host, Roots: pool}); err != nil {
			t.Errorf("verify for %s: %v", host, err)
		}
	}
	if _, err := cert.Verify(x509.VerifyOptions{DNSName: "other.example", Roots: pool}); err == nil {
		t.Error("verify for a host it does not name: accepted")
	}
	if _, err := c.IssueServer(key.Public(), nil, time.Hour); err == nil {
		t.Error("IssueServer with no hosts: accepted")
	}
}

// TestOperatorIntermediate: a root the operator keeps offline signs an
// intermediate the control plane is given; leaves chain through it.
func TestOperatorIntermediate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rootTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "offline root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(48 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	rootDER, _ := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	rootCert, _ := x509.ParseCertificate(rootDER)
	interKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	interTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "weft intermediate"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	interDER, _ := x509.CreateCertificate(rand.Reader, interTmpl, rootCert, interKey.Public(), rootKey)
	certFile, keyFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: interDER}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rootDER})...)
	os.WriteFile(certFile, chain, 0o644)
	keyDER, _ := x509.MarshalECPrivateKey(interKey)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)

	c, err := ca.Open(ca.Config{CertFile: certFile, KeyFile: keyFile, TrustDomain: "weft.local"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Source() != "operator" || len(c.Bundle()) != 1 || !c.Bundle()[0].Equal(rootCert) {
		t.Errorf("operator CA: source %q, bundle of %d; want operator, the offline root only", c.Source(), len(c.Bundle()))
	}
	got, err := c.Sign(csrFor(t, &x509.CertificateRequest{}), "web", 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Chain) != 2 {
		t.Errorf("chain: %d certificates, want the leaf and the intermediate", len(got.Chain))
	}
	if !got.Cert.NotAfter.Equal(c.Certificate().NotAfter) {
		t.Errorf("NotAfter %s: want it cut to the intermediate's %s", got.Cert.NotAfter, c.Certificate().NotAfter)
	}
	raw := [][]byte{got.Chain[0].Raw, got.Chain[1].Raw}
	if _, _, err := security.VerifyChain(raw, c.Bundle(), time.Now()); err != nil {
		t.Errorf("leaf through the intermediate to the offline root: %v", err)
	}
	// The wrong key for the certificate is refused at start.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherDER, _ := x509.MarshalECPrivateKey(other)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: otherDER}), 0o600)
	if _, err := ca.Open(ca.Config{CertFile: certFile, KeyFile: keyFile, TrustDomain: "weft.local"}); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("Open with another key: got %v, want a mismatch", err)
	}
	if _, err := ca.Open(ca.Config{CertFile: certFile, TrustDomain: "weft.local"}); err == nil || !strings.Contains(err.Error(), "go together") {
		t.Errorf("Open with --ca-cert alone: got %v, want an error naming both flags", err)
	}
}

// TestPreviousRootOverlap: after a root rotation the old root stays in
// the bundle (previous.crt) until it expires.
func TestPreviousRootOverlap(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first, err := ca.Open(ca.Config{Dir: dir, TrustDomain: "weft.local"})
	if err != nil {
		t.Fatal(err)
	}
	// Rotate: the root goes to previous.crt and the key goes; the next
	// start makes a new root.
	if err := ca.Rotate(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, ca.RootKeyFile)); !os.IsNotExist(err) {
		t.Errorf("the old key after Rotate: %v, want it removed", err)
	}
	second, err := ca.Open(ca.Config{Dir: dir, TrustDomain: "weft.local"})
	if err != nil {
		t.Fatal(err)
	}
	b := second.Bundle()
	if len(b) != 2 || !b[0].Equal(second.Certificate()) || !b[1].Equal(first.Certificate()) {
		t.Fatalf("bundle after rotation: %d roots, want the new root then the old", len(b))
	}
	pemBundle, err := security.ParseCertificates(second.BundlePEM())
	if err != nil || len(pemBundle) != 2 {
		t.Errorf("BundlePEM: %d certificates, %v; want 2", len(pemBundle), err)
	}
	// A CA whose own root has expired does not start.
	late, err := ca.Open(ca.Config{Dir: dir, TrustDomain: "weft.local", Now: func() time.Time { return time.Now().Add(ca.RootLifetime + time.Hour) }})
	if err == nil {
		t.Fatalf("Open ten years on: accepted an expired root (bundle %d)", len(late.Bundle()))
	}
}

func TestParseCSR(t *testing.T) {
	t.Parallel()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	good := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	if _, err := ca.ParseCSR(good); err != nil {
		t.Errorf("a good CSR: %v", err)
	}
	for name, in := range map[string][]byte{
		"empty":     nil,
		"not PEM":   []byte("hello"),
		"a cert":    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"two":       append(append([]byte(nil), good...), good...),
		"truncated": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der[:20]}),
	} {
		if _, err := ca.ParseCSR(in); err == nil || !strings.HasPrefix(err.Error(), "csr") {
			t.Errorf("%s: got %v, want an error naming the csr", name, err)
		}
	}
}

// FuzzParseCSR: no input makes the parser panic.
func FuzzParseCSR(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\n-----END CERTIFICATE REQUEST-----\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		if csr, err := ca.ParseCSR(in); err == nil && csr == nil {
			t.Fatal("ParseCSR: no error and no CSR")
		}
	})
}
