package security_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/security"
	"github.com/weftmesh/weft/internal/security/ca"
)

// newCA makes a CA in a temporary directory; clock nil is time.Now.
func newCA(t testing.TB, td string, clock func() time.Time) *ca.CA {
	t.Helper()
	c, err := ca.Open(ca.Config{Dir: t.TempDir(), TrustDomain: td, Now: clock})
	if err != nil {
		t.Fatalf("ca.Open: %v", err)
	}
	return c
}

// issue makes a key and has c sign it for service.
func issue(t testing.TB, c *ca.CA, service string, ttl time.Duration) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := x509.ParseCertificateRequest(der)
	got, err := c.Sign(csr, service, ttl)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	out := &tls.Certificate{PrivateKey: key, Leaf: got.Cert}
	for _, x := range got.Chain {
		out.Certificate = append(out.Certificate, x.Raw)
	}
	return out
}

func creds(t *testing.T, cert *tls.Certificate, bundle ...*x509.Certificate) *security.Credentials {
	t.Helper()
	c := security.NewCredentials()
	if err := c.Update(cert, bundle); err != nil {
		t.Fatalf("Update: %v", err)
	}
	return c
}

// handshake connects client to server over loopback TCP and returns the
// server's view of the peer (its service) and each side's error.
func handshake(t *testing.T, client, server *tls.Config) (peer, serial string, clientErr, serverErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		peer string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		tc := tls.Server(c, server)
		if err := tc.Handshake(); err != nil {
			done <- result{err: err}
			return
		}
		p, err := security.PeerService(tc.ConnectionState())
		// The client reads a byte, so that it sees a refusal of its
		// certificate (TLS 1.3 sends it after the client's Finished).
		tc.Write([]byte{1})
		done <- result{p, err}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	tc := tls.Client(c, client)
	clientErr = tc.Handshake()
	if clientErr == nil {
		_, clientErr = io.ReadFull(tc, make([]byte, 1))
		serial = tc.ConnectionState().PeerCertificates[0].SerialNumber.String()
	} else {
		c.Close()
	}
	r := <-done
	return r.peer, serial, clientErr, r.err
}

func TestHandshake(t *testing.T) {
	t.Parallel()
	root := newCA(t, "weft.local", nil)
	other := newCA(t, "weft.local", nil)
	otherDomain := newCA(t, "other.example", nil)
	past := func() time.Time { return time.Now().Add(-48 * time.Hour) }
	// A CA that signs as of two days ago, so its certificates have expired.
	oldCA, err := ca.Open(ca.Config{Dir: t.TempDir(), TrustDomain: "weft.local", Now: past})
	if err != nil {
		t.Fatal(err)
	}
	web := creds(t, issue(t, root, "web", time.Hour), root.Bundle()...)
	catalog := creds(t, issue(t, root, "catalog", time.Hour), root.Bundle()...)
	cases := []struct {
		name           string
		client, server *security.Credentials
		want           string
		wantClientErr  string
		wantServerErr  string
	}{
		{name: "same CA", client: web, server: catalog, want: "web"},
		{name: "client of another CA", client: creds(t, issue(t, other, "web", time.Hour), other.Bundle()[0], root.Bundle()[0]), server: catalog,
			wantServerErr: "certificate signed by unknown authority"},
		{name: "server of another CA", client: web, server: creds(t, issue(t, other, "catalog", time.Hour), other.Bundle()...),
			wantClientErr: "certificate signed by unknown authority"},
		{name: "server of another trust domain", client: creds(t, issue(t, root, "web", time.Hour), root.Bundle()[0], otherDomain.Bundle()[0]),
			server: creds(t, issue(t, otherDomain, "catalog", time.Hour), otherDomain.Bundle()...), wantClientErr: `trust domain "other.example", want "weft.local"`},
		{name: "wrong service", client: web, server: creds(t, issue(t, root, "ledger", time.Hour), root.Bundle()...),
			wantClientErr: `service "ledger", want "catalog"`},
		{name: "expired server", client: web, server: creds(t, issue(t, oldCA, "catalog", time.Hour), oldCA.Bundle()...),
			wantClientErr: "certificate has expired"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "expired server" {
				// The client trusts the old CA too: only the expiry is wrong.
				tc.client = creds(t, issue(t, oldCA, "web", 72*time.Hour), append(oldCA.Bundle(), root.Bundle()...)...)
			}
			peer, _, cerr, serr := handshake(t, tc.client.ClientConfig("catalog"), tc.server.ServerConfig())
			check := func(side string, err error, want string) {
				t.Helper()
				switch {
				case want == "" && err != nil:
					t.Errorf("%s: got %v, want no error", side, err)
				case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
					t.Errorf("%s: got %v, want an error containing %q", side, err, want)
				}
			}
			if tc.wantServerErr == "" { // (a client refused by the server sees only "bad certificate")
				check("client", cerr, tc.wantClientErr)
			}
			if tc.wantClientErr == "" {
				check("server", serr, tc.wantServerErr)
			}
			if peer != tc.want {
				t.Errorf("server's peer: got %q, want %q", peer, tc.want)
			}
		})
	}
}

func TestRotationNeedsNoNewConfig(t *testing.T) {
	t.Parallel()
	root := newCA(t, "weft.local", nil)
	web := creds(t, issue(t, root, "web", time.Hour), root.Bundle()...)
	catalog := creds(t, issue(t, root, "catalog", time.Hour), root.Bundle()...)
	client, server := web.ClientConfig("catalog"), catalog.ServerConfig()
	_, first, cerr, serr := handshake(t, client, server)
	if cerr != nil || serr != nil {
		t.Fatalf("first handshake: client %v, server %v", cerr, serr)
	}
	next := issue(t, root, "catalog", time.Hour)
	if err := catalog.Update(next, root.Bundle()); err != nil {
		t.Fatal(err)
	}
	// A resumed session shows the old certificate: a new cache per client
	// config is not what is tested here, so ask for a full handshake.
	fresh := client.Clone()
	fresh.ClientSessionCache = nil
	_, second, cerr, serr := handshake(t, fresh, server)
	if cerr != nil || serr != nil {
		t.Fatalf("handshake after rotation: client %v, server %v", cerr, serr)
	}
	if want := next.Leaf.SerialNumber.String(); second != want || second == first {
		t.Errorf("serial served after rotation: got %s (before %s), want %s", second, first, want)
	}
}

// TestResumption: client configs share a session cache, and a resumed
// session is checked against the bundle in force like a full handshake.
func TestResumption(t *testing.T) {
	t.Parallel()
	root := newCA(t, "weft.local", nil)
	web := creds(t, issue(t, root, "web", time.Hour), root.Bundle()...)
	catalog := creds(t, issue(t, root, "catalog", time.Hour), root.Bundle()...)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	server := catalog.ServerConfig()
	serve := make(chan error, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				serve <- nil
				return
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			tc := tls.Server(c, server)
			if err := tc.Handshake(); err == nil {
				tc.Write([]byte{1})
			}
			c.Close()
		}
	}()
	dial := func(cfg *tls.Config) (tls.ConnectionState, error) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		tc := tls.Client(c, cfg)
		if err := tc.Handshake(); err != nil {
			return tls.ConnectionState{}, err
		}
		_, err = io.ReadFull(tc, make([]byte, 1)) // the session ticket comes with it
		return tc.ConnectionState(), err
	}
	if _, err := dial(web.ClientConfig("catalog")); err != nil {
		t.Fatalf("first handshake: %v", err)
	}
	st, err := dial(web.ClientConfig("catalog")) // another config, the same cache
	if err != nil || !st.DidResume {
		t.Fatalf("second handshake: resumed %v, err %v; want a resumed session", st.DidResume, err)
	}
	if svc, err := security.PeerService(st); err != nil || svc != "catalog" {
		t.Errorf("PeerService of a resumed session: got %q, %v; want catalog", svc, err)
	}
	// The client's bundle moves to another root: the cached session of the
	// old one is refused, not resumed blindly.
	other := newCA(t, "weft.local", nil)
	if err := web.Update(issue(t, other, "web", time.Hour), other.Bundle()); err != nil {
		t.Fatal(err)
	}
	if _, err := dial(web.ClientConfig("catalog")); err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Errorf("resuming after the bundle changed: got %v, want the server refused for an unknown authority", err)
	}
	ln.Close()
	<-serve
}

func TestBundleOverlap(t *testing.T) {
	t.Parallel()
	oldRoot := newCA(t, "weft.local", nil)
	newRoot := newCA(t, "weft.local", nil)
	both := append(append([]*x509.Certificate(nil), newRoot.Bundle()...), oldRoot.Bundle()...)
	// During the overlap a sidecar renewed under the new root and one
	// still holding the old root's certificate talk both ways.
	renewed := creds(t, issue(t, newRoot, "web", time.Hour), both...)
	notYet := creds(t, issue(t, oldRoot, "catalog", time.Hour), both...)
	for _, p := range []struct {
		name           string
		client, server *security.Credentials
	}{{"new to old", renewed, notYet}, {"old to new", notYet, renewed}} {
		want := "catalog"
		if p.server == renewed {
			want = "web"
		}
		if _, _, cerr, serr := handshake(t, p.client.ClientConfig(want), p.server.ServerConfig()); cerr != nil || serr != nil {
			t.Errorf("%s during the overlap: client %v, server %v; want both accepted", p.name, cerr, serr)
		}
	}
	// After the overlap the old root is gone from the bundle: refused.
	after := creds(t, issue(t, newRoot, "catalog", time.Hour), newRoot.Bundle()...)
	if _, _, cerr, _ := handshake(t, after.ClientConfig("catalog"), notYet.ServerConfig()); cerr == nil {
		t.Error("a certificate of the old root after the overlap: accepted, want refused")
	}
}

func TestNoCertificateYet(t *testing.T) {
	t.Parallel()
	root := newCA(t, "weft.local", nil)
	catalog := creds(t, issue(t, root, "catalog", time.Hour), root.Bundle()...)
	empty := security.NewCredentials()
	_, _, cerr, _ := handshake(t, empty.ClientConfig("catalog"), catalog.ServerConfig())
	if cerr == nil {
		t.Fatal("a client without a certificate: handshake succeeded, want it refused")
	}
	if empty.Certificate() != nil {
		t.Error("Certificate before Update: got one, want nil")
	}
	if err := empty.Update(issue(t, root, "web", time.Hour), newCA(t, "weft.local", nil).Bundle()); err == nil {
		t.Error("Update with a bundle the certificate does not chain to: accepted, want an error")
	}
}

func TestPeerServiceNeedsAHandshake(t *testing.T) {
	t.Parallel()
	if _, err := security.PeerService(tls.ConnectionState{}); !errors.Is(err, security.ErrNoIdentity) {
		t.Errorf("PeerService of no handshake: got %v, want ErrNoIdentity", err)
	}
}

// A peer's chain, once verified, is not verified again at each handshake
// (verifyPeer keeps it by the bundle in force), but never past the
// expiry of a certificate in it: the handshake after the server's
// certificate has expired fails as a first one would. The same peer
// verified for one usage is verified again for another.
func TestVerifiedChainsExpire(t *testing.T) {
	t.Parallel()
	root := newCA(t, "weft.local", nil)
	web := creds(t, issue(t, root, "web", time.Hour), root.Bundle()...)
	short := issue(t, root, "catalog", 1500*time.Millisecond)
	catalog := creds(t, short, root.Bundle()...)
	for i := range 2 {
		if _, _, cerr, serr := handshake(t, web.ClientConfig("catalog"), catalog.ServerConfig()); cerr != nil || serr != nil {
			t.Fatalf("handshake %d while the server's certificate is valid: client %v, server %v; want none", i+1, cerr, serr)
		}
	}
	// catalog's certificate is a server's to web; as a client's it is
	// verified on its own (the certificates carry both usages).
	if peer, _, cerr, serr := handshake(t, catalog.ClientConfig("web"), web.ServerConfig()); cerr != nil || serr != nil || peer != "catalog" {
		t.Fatalf("catalog calling web: peer %q, client %v, server %v; want catalog, no errors", peer, cerr, serr)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !time.Now().After(short.Leaf.NotAfter) {
		if time.Now().After(deadline) {
			t.Fatalf("the clock did not pass %v", short.Leaf.NotAfter)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, _, cerr, _ := handshake(t, web.ClientConfig("catalog"), catalog.ServerConfig()); cerr == nil || !strings.Contains(cerr.Error(), "certificate has expired") {
		t.Errorf("handshake after the server's certificate expired: got %v, want an error containing %q", cerr, "certificate has expired")
	}
}
