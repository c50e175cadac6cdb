package control

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/security"
	"github.com/weftmesh/weft/internal/security/ca"
)

// newCSR is a key and a PEM CSR for it.
func newCSR(t *testing.T) (*ecdsa.PrivateKey, []byte, string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{"ignored"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return key, der, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func (tc *testControl) requestCert(t *testing.T, req security.CertificateRequest, token string) (int, string, *security.CertificateResponse) {
	t.Helper()
	b, _ := json.Marshal(req)
	h := map[string]string{}
	if token != "" {
		h["Authorization"] = "Bearer " + token
	}
	code, body := tc.send(t, http.MethodPost, "/v1/certificates", string(b), h)
	if code != http.StatusOK {
		return code, body, nil
	}
	var out security.CertificateResponse
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatalf("answer %s: %v", body, err)
	}
	return code, body, &out
}

// proofFor is a renewal proof of cert (PEM chain) and key over csrDER.
func proofFor(t *testing.T, chain string, key *ecdsa.PrivateKey, csrDER []byte) *security.RenewalProof {
	t.Helper()
	sig, err := security.SignRenewal(key, csrDER)
	if err != nil {
		t.Fatal(err)
	}
	return &security.RenewalProof{Chain: chain, Signature: sig}
}

func TestCertificates(t *testing.T) {
	tc := start(t)
	web := tc.createToken(t, security.TokenRequest{Service: "web"})
	mesh := tc.createToken(t, security.TokenRequest{Mesh: true})
	key, _, csr := newCSR(t)

	refusals := []struct {
		name    string
		req     security.CertificateRequest
		token   string
		code    int
		message string
	}{
		{"no token", security.CertificateRequest{Service: "web", CSR: csr}, "", 401, "no join token"},
		{"unknown token", security.CertificateRequest{Service: "web", CSR: csr}, "0123456789ab.c2VjcmV0", 401, "unknown or expired"},
		{"wrong secret", security.CertificateRequest{Service: "web", CSR: csr}, web.ID + ".c2VjcmV0", 401, "unknown or expired"},
		{"malformed token", security.CertificateRequest{Service: "web", CSR: csr}, "garbage", 401, "malformed"},
		{"another service's token", security.CertificateRequest{Service: "catalog", CSR: csr}, web.Secret, 403, "is for service web, not catalog"},
		{"bad CSR", security.CertificateRequest{Service: "web", CSR: "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"}, web.Secret, 400, "csr: "},
		{"no CSR", security.CertificateRequest{Service: "web"}, web.Secret, 400, "csr: no PEM block"},
		{"bad service", security.CertificateRequest{Service: "Web!", CSR: csr}, web.Secret, 400, "service: "},
	}
	for _, r := range refusals {
		code, body, _ := tc.requestCert(t, r.req, r.token)
		if code != r.code || !strings.Contains(body, r.message) {
			t.Errorf("%s: got %d %s, want %d naming %q", r.name, code, body, r.code, r.message)
		}
		if _, secret, ok := strings.Cut(r.token, "."); ok && strings.Contains(body, secret) {
			t.Errorf("%s: the answer echoes the token: %s", r.name, body)
		}
	}

	code, body, got := tc.requestCert(t, security.CertificateRequest{Service: "web", CSR: csr}, web.Secret)
	if code != 200 {
		t.Fatalf("with web's token: got %d %s, want 200", code, body)
	}
	chain, err := security.ParseCertificates([]byte(got.Chain))
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := security.ParseCertificates([]byte(got.TrustBundle))
	if err != nil {
		t.Fatal(err)
	}
	leaf, id, err := security.VerifyChain([][]byte{chain[0].Raw}, bundle, time.Now())
	if err != nil || id.String() != "spiffe://weft.local/service/web" || got.SPIFFEID != id.String() {
		t.Fatalf("issued: %v %v (answer says %s), want spiffe://weft.local/service/web verifying against the bundle", id, err, got.SPIFFEID)
	}
	if !leaf.PublicKey.(*ecdsa.PublicKey).Equal(key.Public()) || len(leaf.DNSNames) != 0 {
		t.Errorf("issued for another key, or with the CSR's names %v", leaf.DNSNames)
	}
	if life := time.Until(got.NotAfter); life < DefaultCertTTL-time.Minute || life > DefaultCertTTL {
		t.Errorf("notAfter in %s, want the default 24h", life)
	}
	if code, body, _ := tc.requestCert(t, security.CertificateRequest{Service: "ledger", CSR: csr}, mesh.Secret); code != 200 {
		t.Errorf("a mesh-wide token for any service: got %d %s, want 200", code, body)
	}

	// Renewal: the certificate in force and its key, no token.
	newKey, newDER, newCSRPEM := newCSR(t)
	renew := security.CertificateRequest{Service: "web", CSR: newCSRPEM, Proof: proofFor(t, got.Chain, key, newDER)}
	code, body, renewed := tc.requestCert(t, renew, "")
	if code != 200 {
		t.Fatalf("renewal with a good proof: got %d %s, want 200", code, body)
	}
	rc, _ := security.ParseCertificates([]byte(renewed.Chain))
	if !rc[0].PublicKey.(*ecdsa.PublicKey).Equal(newKey.Public()) {
		t.Error("renewed for another key than the new CSR's")
	}
	_, otherDER, otherCSR := newCSR(t)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	// A certificate that expired, from the same CA (its key is in the data dir).
	old, err := ca.Open(ca.Config{Dir: filepath.Join(tc.cfg.DataDir, "ca"), TrustDomain: "weft.local", Now: func() time.Time { return time.Now().Add(-2 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	oldKey, oldDER, _ := newCSR(t)
	oldCSR, _ := x509.ParseCertificateRequest(oldDER)
	expired, err := old.Sign(oldCSR, "web", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	expiredPEM := string(security.EncodeCertificates(expired.Chain))
	// And one of another CA.
	foreign, err := ca.Open(ca.Config{Dir: t.TempDir(), TrustDomain: "weft.local"})
	if err != nil {
		t.Fatal(err)
	}
	foreignCert, _ := foreign.Sign(oldCSR, "web", time.Hour)
	bad := []struct {
		name    string
		req     security.CertificateRequest
		code    int
		message string
	}{
		{"proof signed by another key", security.CertificateRequest{Service: "web", CSR: otherCSR, Proof: proofFor(t, got.Chain, other, otherDER)}, 401, "not by the key"},
		{"proof over another CSR", security.CertificateRequest{Service: "web", CSR: otherCSR, Proof: proofFor(t, got.Chain, key, newDER)}, 401, "not by the key"},
		{"proof of another service", security.CertificateRequest{Service: "catalog", CSR: otherCSR, Proof: proofFor(t, got.Chain, key, otherDER)}, 403, "not of service catalog"},
		{"expired certificate", security.CertificateRequest{Service: "web", CSR: otherCSR, Proof: proofFor(t, expiredPEM, oldKey, otherDER)}, 401, "expired"},
		{"another CA", security.CertificateRequest{Service: "web", CSR: otherCSR, Proof: proofFor(t, string(security.EncodeCertificates(foreignCert.Chain)), oldKey, otherDER)}, 401, "unknown authority"},
		{"no chain", security.CertificateRequest{Service: "web", CSR: otherCSR, Proof: &security.RenewalProof{}}, 401, "renewal proof: chain"},
	}
	for _, b := range bad {
		code, body, _ := tc.requestCert(t, b.req, "")
		if code != b.code || !strings.Contains(body, b.message) {
			t.Errorf("%s: got %d %s, want %d naming %q", b.name, code, body, b.code, b.message)
		}
	}

	_, m := tc.get(t, "/metrics")
	for _, want := range []string{
		`weft_control_certificates_issued_total{how="join-token"} 2`,
		`weft_control_certificates_issued_total{how="renewal"} 1`,
		`weft_control_certificates_refused_total{reason="unauthenticated"} 9`,
		`weft_control_certificates_refused_total{reason="forbidden"} 2`,
		`weft_control_certificates_refused_total{reason="bad-request"} 3`,
		`weft_control_ca_expiry_timestamp_seconds`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics: want %s; got:\n%s", want, grepLines(m, "weft_control_c"))
		}
	}

	code, body = tc.get(t, "/v1/ca")
	var info security.CAInfo
	json.Unmarshal([]byte(body), &info)
	if code != 200 || info.TrustDomain != "weft.local" || info.Source != "generated" || len(info.Roots) != 1 || time.Until(info.NotAfter) < 9*365*24*time.Hour {
		t.Errorf("GET /v1/ca: got %d %s, want the generated 10-year root of weft.local", code, body)
	}
}

func TestIdentityConfig(t *testing.T) {
	for _, c := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.TrustDomain = "Bad_Domain" }, "--trust-domain"},
		{func(c *Config) { c.CertTTL = 0 }, "--cert-ttl"},
		{func(c *Config) { c.CACert = "x.crt" }, "--ca-cert and --ca-key"},
	} {
		cfg := Default()
		c.edit(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate: got %v, want an error naming %s", err, c.want)
		}
	}
}
