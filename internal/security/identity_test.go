package security_test

import (
	"crypto/x509"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/security"
)

var idCases = []struct {
	in      string
	td, svc string // want; "" for an error
	err     string
}{
	{in: "spiffe://weft.local/service/web", td: "weft.local", svc: "web"},
	{in: "spiffe://prod.example.com/service/catalog-v2", td: "prod.example.com", svc: "catalog-v2"},
	{in: "spiffe://a/service/x", td: "a", svc: "x"},
	{in: "https://weft.local/service/web", err: "want the form spiffe://"},
	{in: "SPIFFE://weft.local/service/web", err: "want the form spiffe://"},
	{in: "spiffe://weft.local", err: "no path"},
	{in: "spiffe://weft.local/", err: `path "/": want /service/<name>`},
	{in: "spiffe://weft.local/service/", err: "not a valid service name"},
	{in: "spiffe://weft.local/service/web/", err: "not a valid service name"},
	{in: "spiffe://weft.local/service/web/extra", err: "not a valid service name"},
	{in: "spiffe://weft.local/ns/default/sa/web", err: "want /service/<name>"},
	{in: "spiffe://weft.local/service/Web", err: "not a valid service name"},
	{in: "spiffe://weft.local/service/we%62", err: "not a valid service name"},
	{in: "spiffe://weft.local/service/web?x=1", err: "not a valid service name"},
	{in: "spiffe://weft.local/service/web#f", err: "not a valid service name"},
	{in: "spiffe://Weft.local/service/web", err: "want lower-case"},
	{in: "spiffe://weft.local:8443/service/web", err: "character ':'"},
	{in: "spiffe://user@weft.local/service/web", err: "character '@'"},
	{in: "spiffe:///service/web", err: "trust domain \"\""},
	{in: "spiffe://-bad.local/service/web", err: "not starting or ending with '-'"},
	{in: "spiffe://weft..local/service/web", err: "labels of 1 to 63"},
	{in: "spiffe://" + strings.Repeat("a", 64) + "/service/web", err: "labels of 1 to 63"},
	{in: "spiffe://weft.local/service/" + strings.Repeat("a", 64), err: "not a valid service name"},
	{in: "spiffe://weft.local/service/" + strings.Repeat("a", 3000), err: "longer than 2048"},
}

func TestParseServiceID(t *testing.T) {
	t.Parallel()
	for _, c := range idCases {
		id, err := security.ParseServiceID(c.in)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("ParseServiceID(%.80q): got %v, want %s %s", c.in, err, c.td, c.svc)
		case c.err == "" && (id.TrustDomain != c.td || id.Service != c.svc):
			t.Errorf("ParseServiceID(%.80q): got %+v, want %s %s", c.in, id, c.td, c.svc)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("ParseServiceID(%.80q): got %+v, %v; want an error containing %q", c.in, id, err, c.err)
		}
	}
}

func TestServiceID(t *testing.T) {
	t.Parallel()
	if got, err := security.ServiceID("weft.local", "web"); err != nil || got != "spiffe://weft.local/service/web" {
		t.Errorf("ServiceID: got %q, %v; want spiffe://weft.local/service/web", got, err)
	}
	if _, err := security.ServiceID("weft.local", "Web"); err == nil || !strings.Contains(err.Error(), "service:") {
		t.Errorf("ServiceID with a bad service: got %v, want an error naming the service", err)
	}
	if _, err := security.ServiceID("weft_local", "web"); err == nil || !strings.Contains(err.Error(), "trust domain") {
		t.Errorf("ServiceID with a bad trust domain: got %v, want an error naming the trust domain", err)
	}
}

func TestIdentityOf(t *testing.T) {
	t.Parallel()
	u := func(s string) *url.URL { x, _ := url.Parse(s); return x }
	cases := []struct {
		name string
		uris []*url.URL
		want string
	}{
		{"one", []*url.URL{u("spiffe://weft.local/service/web")}, "web"},
		{"none", nil, ""},
		{"two", []*url.URL{u("spiffe://weft.local/service/web"), u("spiffe://weft.local/service/db")}, ""},
		{"not spiffe", []*url.URL{u("https://web")}, ""},
		{"escaped", []*url.URL{u("spiffe://weft.local/service/a%2Fb")}, ""},
	}
	for _, c := range cases {
		id, err := security.IdentityOf(&x509.Certificate{URIs: c.uris})
		if id.Service != c.want || (c.want == "") != (err != nil) {
			t.Errorf("%s: got %+v, %v; want service %q", c.name, id, err, c.want)
		}
	}
}

// FuzzParseServiceID: whatever parses prints back as the same string.
func FuzzParseServiceID(f *testing.F) {
	for _, c := range idCases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := security.ParseServiceID(s)
		if err != nil {
			return
		}
		if id.String() != s {
			t.Fatalf("ParseServiceID(%q) = %+v, which prints as %q", s, id, id.String())
		}
		if again, err := security.ServiceID(id.TrustDomain, id.Service); err != nil || again != s {
			t.Fatalf("ServiceID(%q, %q) = %q, %v; want %q", id.TrustDomain, id.Service, again, err, s)
		}
	})
}

// FuzzIdentityOf parses arbitrary DER as a certificate and its identity:
// nothing panics, and an identity found is one ParseServiceID accepts.
func FuzzIdentityOf(f *testing.F) {
	root := newCA(f, "weft.local", nil)
	f.Add(root.Certificate().Raw)
	f.Add(issue(f, root, "web", time.Hour).Leaf.Raw)
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x01})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, der []byte) {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return
		}
		id, err := security.IdentityOf(cert)
		if err != nil {
			return
		}
		if _, err := security.ParseServiceID(id.String()); err != nil {
			t.Fatalf("IdentityOf gave %s, which ParseServiceID refuses: %v", id, err)
		}
	})
}
