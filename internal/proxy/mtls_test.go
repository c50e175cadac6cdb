package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/internal/proxy/conn"
	"github.com/weftmesh/weft/internal/proxy/plan"
	"github.com/weftmesh/weft/internal/proxy/stdhttp"
	"github.com/weftmesh/weft/internal/proxy/tcp"
	"github.com/weftmesh/weft/internal/security"
	"github.com/weftmesh/weft/internal/security/ca"
	"github.com/weftmesh/weft/internal/snapshot"
	"github.com/weftmesh/weft/internal/testlog"
)

// testCA opens a CA in a temporary directory.
func testCA(t *testing.T) *ca.CA {
	t.Helper()
	c, err := ca.Open(ca.Config{Dir: t.TempDir(), TrustDomain: "weft.test"})
	if err != nil {
		t.Fatalf("ca.Open: %v", err)
	}
	return c
}

// workload is Credentials holding a certificate c signs for service.
func workload(t *testing.T, c *ca.CA, service string) *security.Credentials {
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
	got, err := c.Sign(csr, service, time.Hour)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	cert := &tls.Certificate{PrivateKey: key, Leaf: got.Cert}
	for _, x := range got.Chain {
		cert.Certificate = append(cert.Certificate, x.Raw)
	}
	creds := security.NewCredentials()
	if err := creds.Update(cert, c.Bundle()); err != nil {
		t.Fatalf("Update: %v", err)
	}
	return creds
}

// mtlsSide is one end of a mutual-TLS pair of sidecars.
type mtlsSide struct {
	out, upstream, in string // the outbound, a TCP upstream listener bound to svc, the inbound
	m                 *plan.Metrics
	reg               *prometheus.Registry
	inLog             *testlog.Buffer // what the inbound logged
}

// mtlsPair is a caller's sidecar (creds of service "client") in front of
// the inbound of service svc (creds server) for app, speaking appProto
// (http, h2c or tcp); strict makes the inbound take only mutual TLS.
func mtlsPair(t *testing.T, client, server *security.Credentials, app, appProto string, strict bool) mtlsSide {
	return mtlsPairWith(t, client, server, app, appProto, strict, true)
}

// mtlsPairWith is mtlsPair whose outbound forwards HTTP/2 with Weft's
// engine (frames) or with x/net's.
func mtlsPairWith(t *testing.T, client, server *security.Credentials, app, appProto string, strict, frames bool) mtlsSide {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := plan.NewMetrics(reg)
	in := stdhttp.NewInbound("svc", "svc-1", app, stdhttp.NewTransport(), m)
	h2 := stdhttp.NewH2CTransport()
	if appProto == "h2c" {
		in.Transport, in.H2 = h2, h2
	}
	t.Cleanup(h2.CloseIdleConnections)
	t.Cleanup(in.CloseIdle)
	meshTLS := server.ServerConfig()
	meshTLS.NextProtos = conn.MeshALPN
	bytes := &tcp.Proxy{}
	inLogger, inLog := testlog.New(slog.LevelInfo)
	inCfg := Config{Name: "inbound", Resolve: in.Resolve, H2: in, H2Frames: in.RouteH2, Metrics: m, Log: inLogger, TCP: bytes,
		MeshTLS: meshTLS, Strict: func() bool { return strict },
		Opaque: func() (*plan.Cluster, bool) { return in.AppCluster(), appProto == "tcp" }}
	if appProto == "h2c" {
		inCfg.H1 = in
	}
	inAddr := serveProxy(t, inCfg)
	table := plan.NewTable(m, plan.Policy{}) // (no x-weft-source sent: the inbound knows the caller by its certificate)
	table.SetPeerTLS(client)
	snap := &snapshot.Snapshot{Services: map[string]*snapshot.Service{"svc": {Name: "svc", Policy: testPolicy(), Protocol: appProto,
		Endpoints: []snapshot.Endpoint{{Instance: "svc-1", Address: inAddr, Protocol: appProto, Ready: true, MTLS: true}}}}}
	if errs := table.Update(snap); len(errs) > 0 {
		t.Fatal(errs)
	}
	t.Cleanup(table.CloseIdle)
	out := stdhttp.NewOutbound(table, stdhttp.NewTransport(), stdhttp.NewTransport(), m, discard)
	outH2 := stdhttp.NewH2CTransport()
	out.H2 = outH2
	t.Cleanup(outH2.CloseIdleConnections)
	outCfg := Config{Name: "outbound", Resolve: out.Resolve, H2: out, Metrics: m, Log: discard}
	if frames {
		outCfg.H2Frames = out.RouteH2
	}
	return mtlsSide{
		out: serveProxy(t, outCfg),
		upstream: serveProxy(t, Config{Name: "upstream/svc", TCP: bytes, Metrics: m, Log: discard,
			Opaque: func() (*plan.Cluster, bool) { return table.Lookup("svc"), true }}),
		in: inAddr, m: m, reg: reg, inLog: inLog,
	}
}

// tcpEcho is a TCP app that echoes each line back upper-cased.
func tcpEcho(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b := make([]byte, 256)
				for {
					n, err := c.Read(b)
					if err != nil {
						return
					}
					c.Write([]byte(strings.ToUpper(string(b[:n]))))
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// Sidecars speak mutual TLS to a peer that takes it, on HTTP/1.1,
// HTTP/2 (gRPC-shaped) and TCP; the inbound knows the caller by its
// certificate (no x-weft-source is sent); a strict inbound refuses the
// plain connections of clients without a sidecar.
func TestMutualTLSEveryProtocol(t *testing.T) {
	authority := testCA(t)
	client, server := workload(t, authority, "client"), workload(t, authority, "svc")
	h1App := serveH2C(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "app saw %s %s source=%q", r.Proto, r.URL.Path, r.Header.Get(plan.SourceHeader))
	}))

	t.Run("http1", func(t *testing.T) {
		p := mtlsPair(t, client, server, h1App, "http", true)
		// A caller that claims to be another service is who its
		// certificate says it is.
		req, _ := http.NewRequest(http.MethodGet, "http://svc/items", nil)
		req.Header.Set(plan.SourceHeader, "forged")
		resp, err := (&http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(mustURL(t, "http://"+p.out))}}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != `app saw HTTP/1.1 /items source="client"` {
			t.Fatalf("got %d %q, want 200 from the app, told the source its certificate proves", resp.StatusCode, body)
		}
		waitFor(t, 5*time.Second, "the inbound's count of the caller by its certificate", func() bool {
			return sample(t, p.reg, "weft_requests_total", "direction", "inbound", "source_service", "client", "response_code", "200") == 1
		})
		if n := sample(t, p.reg, "weft_protocol_detections_total", "listener", "inbound+mtls", "protocol", "http1"); n != 1 {
			t.Errorf("mutual-TLS connections carrying HTTP/1.1: got %v, want 1", n)
		}
		// A client without a sidecar: refused, and counted.
		resp, err = http.Get("http://" + p.in + "/items")
		if err == nil {
			resp.Body.Close()
			t.Fatalf("plain GET to the strict inbound: got %d, want the connection refused", resp.StatusCode)
		}
		if n := sample(t, p.reg, "weft_connections_refused_total", "listener", "inbound", "reason", "not-mtls"); n != 1 {
			t.Errorf("refused plain connections: got %v, want 1", n)
		}
	})

	t.Run("h2", func(t *testing.T) {
		p := mtlsPair(t, client, server, h1App, "h2c", true)
		req := newH2Request(t, http.MethodPost, p.out, "svc", "/pkg.Svc/Get", strings.NewReader("hi"))
		req.Header.Set(plan.SourceHeader, "forged")
		resp, body := h2Do(t, newH2CClient(t), req)
		if resp.StatusCode != 200 || string(body) != `app saw HTTP/2.0 /pkg.Svc/Get source="client"` {
			t.Fatalf("got %d %q, want 200 from the app over HTTP/2", resp.StatusCode, body)
		}
		if n := sample(t, p.reg, "weft_protocol_detections_total", "listener", "inbound+mtls", "protocol", "h2"); n != 1 {
			t.Errorf("mutual-TLS connections carrying HTTP/2: got %v, want 1", n)
		}
	})

	t.Run("h2 through x/net", func(t *testing.T) {
		p := mtlsPairWith(t, client, server, h1App, "h2c", true, false)
		req := newH2Request(t, http.MethodPost, p.out, "svc", "/pkg.Svc/Get", strings.NewReader("hi"))
		resp, body := h2Do(t, newH2CClient(t), req)
		if resp.StatusCode != 200 || string(body) != `app saw HTTP/2.0 /pkg.Svc/Get source="client"` {
			t.Fatalf("got %d %q, want 200 from the app over HTTP/2", resp.StatusCode, body)
		}
		if n := sample(t, p.reg, "weft_protocol_detections_total", "listener", "inbound+mtls", "protocol", "h2"); n != 1 {
			t.Errorf("mutual-TLS connections carrying HTTP/2: got %v, want 1", n)
		}
	})

	t.Run("tcp", func(t *testing.T) {
		p := mtlsPair(t, client, server, tcpEcho(t), "tcp", true)
		c, err := net.Dial("tcp", p.upstream)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "balance loom\n")
		got := make([]byte, 64)
		n, err := io.ReadAtLeast(c, got, len("BALANCE LOOM\n"))
		if err != nil || string(got[:n]) != "BALANCE LOOM\n" {
			t.Fatalf("got %q (%v), want the app's echo through mutual TLS", got[:n], err)
		}
		if n := sample(t, p.reg, "weft_protocol_detections_total", "listener", "inbound+mtls", "protocol", "tcp"); n != 1 {
			t.Errorf("mutual-TLS connections carrying TCP: got %v, want 1", n)
		}
	})
}

// A certificate from another CA, an expired one, or one for the wrong
// service, gets no connection: the inbound refuses the first two (counts
// them and logs why), the caller the third (its sidecar logs it:
// sidecar.peerTLS); either way the request fails with the mesh's own
// error, which says it is TLS.
func TestMutualTLSRefusals(t *testing.T) {
	authority, other := testCA(t), testCA(t)
	expired := expiredWorkload(t, "client")
	app := serveH2C(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "app") }))
	for _, tc := range []struct {
		name           string
		client, server *security.Credentials
		refusedIn      float64 // connections the inbound refused
		inLogs         string  // why, in the inbound's log
		says           string  // what the answer's message says
	}{
		// (the client trusts the server's CA too: only its own
		// certificate is wrong)
		{"client from another CA", workloadTrusting(t, other, "client", authority), workload(t, authority, "svc"), 1,
			"unknown authority", "tls: "},
		{"expired client certificate", expired.client, expired.server, 1, "certificate has expired", "tls: "},
		{"server for another service", workload(t, authority, "client"), workload(t, authority, "not-svc"), 0,
			"", `service "not-svc", want "svc"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mtlsPair(t, tc.client, tc.server, app, "http", true)
			resp, err := (&http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(mustURL(t, "http://"+p.out))}}).Get("http://svc/")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode < 500 || resp.Header.Get("X-Weft-Error") == "" {
				t.Fatalf("got %d %q (x-weft-error %q), want the mesh's 5xx", resp.StatusCode, body, resp.Header.Get("X-Weft-Error"))
			}
			if !strings.Contains(string(body), tc.says) && !strings.Contains(string(body), strings.ReplaceAll(tc.says, `"`, `\"`)) {
				t.Errorf("body %q does not say %q", body, tc.says)
			}
			waitFor(t, 5*time.Second, "the inbound's count of refused handshakes", func() bool {
				return sample(t, p.reg, "weft_connections_refused_total", "listener", "inbound", "reason", "handshake") >= tc.refusedIn
			})
			if tc.inLogs != "" {
				waitFor(t, 5*time.Second, "the inbound's log line: mutual TLS from a peer refused ... "+tc.inLogs, func() bool {
					l := p.inLog.String()
					return strings.Contains(l, "mutual TLS from a peer refused") && strings.Contains(l, tc.inLogs)
				})
			}

		})
	}
}

// workloadTrusting is workload whose trust bundle holds the roots of
// also too.
func workloadTrusting(t *testing.T, c *ca.CA, service string, also ...*ca.CA) *security.Credentials {
	t.Helper()
	creds := workload(t, c, service)
	bundle := creds.Bundle()
	for _, a := range also {
		bundle = append(bundle, a.Bundle()...)
	}
	if err := creds.Update(creds.Certificate(), bundle); err != nil {
		t.Fatal(err)
	}
	return creds
}

// expiredWorkload is a client certificate that expired an hour ago and a
// server certificate in force, from one CA (so expiry is all that is
// wrong with the first).
func expiredWorkload(t *testing.T, service string) (pair struct{ client, server *security.Credentials }) {
	t.Helper()
	dir := t.TempDir()
	past, err := ca.Open(ca.Config{Dir: dir, TrustDomain: "weft.test", Now: func() time.Time { return time.Now().Add(-2 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	present, err := ca.Open(ca.Config{Dir: dir, TrustDomain: "weft.test"})
	if err != nil {
		t.Fatal(err)
	}
	pair.client, pair.server = workload(t, past, service), workload(t, present, "svc")
	if leaf := pair.client.Certificate().Leaf; !leaf.NotAfter.Before(time.Now()) {
		t.Fatalf("the expired certificate is valid until %s", leaf.NotAfter)
	}
	return pair
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
