package sidecar

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/security"
	"github.com/weftmesh/weft/internal/security/ca"
)

// credsFor is Credentials with a certificate authority signs for service.
func credsFor(t *testing.T, authority *ca.CA, service string) *security.Credentials {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := x509.ParseCertificateRequest(der)
	issued, err := authority.Sign(csr, service, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert := &tls.Certificate{PrivateKey: key, Leaf: issued.Cert}
	for _, c := range issued.Chain {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	creds := security.NewCredentials()
	if err := creds.Update(cert, authority.Bundle()); err != nil {
		t.Fatal(err)
	}
	return creds
}

// A peer that shows a certificate of another service than the one dialed
// is refused, and the refusing side logs it: once per service per
// peerRefusalEvery, not once per connection.
func TestPeerCertificateRefusalIsLogged(t *testing.T) {
	authority, err := ca.Open(ca.Config{Dir: t.TempDir(), TrustDomain: "weft.test"})
	if err != nil {
		t.Fatal(err)
	}
	server := credsFor(t, authority, "not-svc").ServerConfig()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", server)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	log, out := newLog(slog.LevelInfo)
	p := newPeerTLS(credsFor(t, authority, "client"), log)
	clock := time.Now()
	p.now = func() time.Time { return clock }
	dial := func() error {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), p.ClientConfig("svc"))
		if err == nil {
			c.Close()
		}
		return err
	}
	for i := range 3 {
		if err := dial(); err == nil || !strings.Contains(err.Error(), `want "svc"`) {
			t.Fatalf("dial %d to a peer of another service: %v, want refused", i, err)
		}
	}
	if n := strings.Count(out.String(), "a peer's certificate refused"); n != 1 {
		t.Errorf("3 refusals within %s logged %d times, want once:\n%s", peerRefusalEvery, n, out.String())
	}
	if !strings.Contains(out.String(), "service=svc") || !strings.Contains(out.String(), "not-svc") {
		t.Errorf("the log line does not name the service dialed and the peer's: %s", out.String())
	}
	clock = clock.Add(peerRefusalEvery)
	_ = dial()
	if n := strings.Count(out.String(), "a peer's certificate refused"); n != 2 {
		t.Errorf("a refusal %s later: logged %d times in all, want 2", peerRefusalEvery, n)
	}
	ln.Close()
	<-done
}
