package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/meshtest/testcert"
	"github.com/weftmesh/weft/internal/proxy"
)

// TestProtocolDetection: listeners that can forward bytes (inbound, and
// upstream listeners not declared TCP) tell HTTP/1, HTTP/2, TLS and other
// bytes apart by the first bytes, and take a connection that stays silent
// for --detect-timeout for a protocol in which the server speaks first.
// Each outcome is counted.
func TestProtocolDetection(t *testing.T) {
	t.Parallel()
	m := meshtest.New(t)
	cp := m.Control()
	detect := []string{"--detect-timeout", "200ms"}
	providers := map[string]*meshtest.Sidecar{}
	for name, appArgs := range map[string][]string{
		"web":    nil,
		"greet":  {"--tcp-echo", "--tcp-greet"}, // a TCP app nobody declared
		"secure": {"--tls"},                     // HTTPS with ALPN, end to end
	} {
		app := m.App(name+"-1", appArgs...)
		providers[name] = m.Sidecar(cp, append([]string{"--service", name, "--id", name + "-1", "--app-port", app.Port}, detect...)...)
	}
	consumer := m.Sidecar(cp, append([]string{"--service", "client",
		"--upstream", "web=0", "--upstream", "greet=0", "--upstream", "secure=0"}, detect...)...)
	up := map[string]string{}
	for _, name := range []string{"web", "greet", "secure"} {
		up[name] = consumer.Upstream(t, name)
		waitEndpoints(t, consumer, name, 1)
	}
	detections := func(sc *meshtest.Sidecar, listener, protocol, how string) float64 {
		return sc.Metric(fmt.Sprintf(`weft_protocol_detections_total{how=%q,listener=%q,protocol=%q}`, how, listener, protocol))
	}

	t.Run("HTTP/1.1 on an upstream listener is routed to its service", func(t *testing.T) {
		code, body := meshtest.Get("http://" + up["web"] + "/")
		if code != 200 || body != "instance=web-1" {
			t.Fatalf("GET via upstream web: got %d %q, want 200 instance=web-1", code, body)
		}
		if n := detections(consumer, "upstream/web", "http1", "sniffed"); n < 1 {
			t.Errorf("consumer counted %g http1 detections on upstream/web, want >= 1", n)
		}
		if n := detections(providers["web"], "inbound", "http1", "sniffed"); n < 1 {
			t.Errorf("provider counted %g http1 detections on inbound, want >= 1", n)
		}
	})

	t.Run("HTTP/2 prior knowledge on an upstream listener", func(t *testing.T) {
		c := &http.Client{Transport: proxy.NewH2CTransport(), Timeout: 10 * time.Second}
		resp, err := c.Get("http://" + up["web"] + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.ProtoMajor != 2 || string(b) != "instance=web-1" {
			t.Fatalf("h2c via upstream web: got %s %d %q, want HTTP/2.0 200 instance=web-1", resp.Proto, resp.StatusCode, b)
		}
		if n := detections(consumer, "upstream/web", "h2", "sniffed"); n != 1 {
			t.Errorf("consumer counted %g h2 detections on upstream/web, want 1", n)
		}
	})

	t.Run("a silent client is taken for server-speaks-first TCP after the timeout", func(t *testing.T) {
		c := dialTCP(t, up["greet"])
		start := time.Now()
		line := readGreeting(t, c, bufio.NewReader(c), 5*time.Second)
		if line != "220 greet-1 ready\r\n" {
			t.Fatalf("greeting: got %q", line)
		}
		// Both listeners waited for the client to speak first. (The first
		// listener's wait may begin a little before start, which is taken
		// once the dial returns: 10 ms are allowed for it.)
		if waited := time.Since(start); waited < 390*time.Millisecond {
			t.Errorf("greeting after %s: want at least the two 200ms detection timeouts", waited)
		}
		if n := detections(consumer, "upstream/greet", "tcp", "timeout"); n != 1 {
			t.Errorf("consumer counted %g tcp timeouts on upstream/greet, want 1", n)
		}
		if n := detections(providers["greet"], "inbound", "tcp", "timeout"); n != 1 {
			t.Errorf("provider counted %g tcp timeouts on inbound, want 1", n)
		}
	})

	t.Run("TLS passes through to the app, which negotiates HTTP/2 by ALPN", func(t *testing.T) {
		tr := &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "tcp", up["secure"])
			},
			// The test app's certificate is self-signed for localhost.
			TLSClientConfig:   &tls.Config{ServerName: "localhost", InsecureSkipVerify: true},
			ForceAttemptHTTP2: true,
		}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://localhost/proto")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.TLS == nil || resp.TLS.NegotiatedProtocol != "h2" || string(b) != "HTTP/2.0" {
			t.Fatalf("HTTPS through the mesh: got %s, ALPN %v, app saw %q; want h2 end to end", resp.Proto, resp.TLS, b)
		}
		if n := detections(consumer, "upstream/secure", "tls", "sniffed"); n != 1 {
			t.Errorf("consumer counted %g tls detections on upstream/secure, want 1", n)
		}
		if n := detections(providers["secure"], "inbound", "tls", "sniffed"); n != 1 {
			t.Errorf("provider counted %g tls detections on inbound, want 1", n)
		}
	})

	t.Run("TLS to the outbound listener goes where its server name says", func(t *testing.T) {
		tr := &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "tcp", consumer.Outbound)
			},
			// The server name is the mesh service; the app's certificate is
			// for localhost, and the app terminates TLS itself.
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
			ForceAttemptHTTP2: true,
		}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://secure/proto")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.TLS == nil || resp.TLS.NegotiatedProtocol != "h2" || string(b) != "HTTP/2.0" {
			t.Fatalf("HTTPS to the outbound listener with SNI secure: got %s, ALPN %v, app saw %q; want h2 end to end", resp.Proto, resp.TLS, b)
		}
		if n := detections(consumer, "outbound", "tls", "sniffed"); n != 1 {
			t.Errorf("consumer counted %g tls detections on outbound, want 1", n)
		}
		if n := consumer.Metric(`weft_tcp_connections_total{destination_service="secure",direction="outbound",source_service="client"}`); n < 1 {
			t.Errorf("consumer counted %g TCP connections to secure, want the passed-through one", n)
		}
	})

	t.Run("other bytes to the inbound listener reach the app untouched", func(t *testing.T) {
		c := dialTCP(t, providers["web"].Inbound)
		c.Write([]byte("\x00\x01 not http\r\n\r\n"))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, _ := io.ReadAll(c)
		// The app's own HTTP server answers the garbage, not the mesh.
		if !strings.HasPrefix(string(b), "HTTP/1.1 400 Bad Request") || strings.Contains(strings.ToLower(string(b)), "x-weft-error") {
			t.Fatalf("garbage to inbound: got %q, want the app's own 400", b)
		}
		if n := detections(providers["web"], "inbound", "tcp", "sniffed"); n != 1 {
			t.Errorf("provider counted %g tcp detections on inbound, want 1", n)
		}
	})
}

// TestH2CUpgrade: an HTTP/1.1 client asking to upgrade to h2c (RFC 7540
// §3.2) gets 101 and its request answered as HTTP/2 stream 1, on the
// outbound listener (fast path) and on an h2c app's inbound listener.
func TestH2CUpgrade(t *testing.T) {
	t.Parallel()
	m := meshtest.New(t)
	cp := m.Control()
	web := m.App("web-1")
	m.Sidecar(cp, "--service", "web", "--app-port", web.Port)
	h2app := m.App("grpcish-1", "--h2c")
	h2sc := m.Sidecar(cp, "--service", "grpcish", "--app-port", h2app.Port, "--app-protocol", "h2c")
	consumer := m.Sidecar(cp, "--service", "client")
	waitEndpoints(t, consumer, "web", 1)

	for _, tc := range []struct{ name, addr, host, path, want string }{
		{"outbound", consumer.Outbound, "web", "/", "instance=web-1"},
		{"inbound of an h2c app", h2sc.Inbound, "grpcish", "/proto", "HTTP/2.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := h2cUpgradeGet(t, tc.addr, tc.host, tc.path)
			if status != "200" || body != tc.want {
				t.Fatalf("upgraded GET %s: got :status %s body %q, want 200 %q", tc.path, status, body, tc.want)
			}
		})
	}
}

// h2cUpgradeGet sends GET with Upgrade: h2c, then reads the answer to
// stream 1 as HTTP/2 frames.
func h2cUpgradeGet(t *testing.T, addr, host, path string) (status, body string) {
	t.Helper()
	c := dialTCP(t, addr)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n", path, host)
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 101") {
		t.Fatalf("upgrade: got %q, %v; want 101 Switching Protocols", line, err)
	}
	for line != "\r\n" {
		if line, err = br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, br)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	dec := hpack.NewDecoder(4096, func(f hpack.HeaderField) {
		if f.Name == ":status" {
			status = f.Value
		}
	})
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading frames: %v (status %q, body %q so far)", err, status, sb.String())
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.HeadersFrame:
			if f.StreamID != 1 {
				t.Fatalf("headers on stream %d, want 1", f.StreamID)
			}
			if _, err := dec.Write(f.HeaderBlockFragment()); err != nil {
				t.Fatal(err)
			}
			if f.StreamEnded() {
				return status, sb.String()
			}
		case *http2.DataFrame:
			sb.Write(f.Data())
			if f.StreamEnded() {
				return status, sb.String()
			}
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY %v: %s", f.ErrCode, f.DebugData())
		case *http2.RSTStreamFrame:
			t.Fatalf("RST_STREAM %v", f.ErrCode)
		}
	}
}

// TestInboundTerminatesTLSWithALPN: with a certificate, the inbound
// listener terminates TLS, offers h2 and http/1.1 by ALPN, and serves what
// the client chose, HTTP/2 or HTTP/1.1, to a plain HTTP/1.1 app.
func TestInboundTerminatesTLSWithALPN(t *testing.T) {
	t.Parallel()
	m := meshtest.New(t)
	cp := m.Control()
	certFile, keyFile, pool := selfSignedFiles(t)
	app := m.App("web-1")
	provider := m.Sidecar(cp, "--service", "web", "--app-port", app.Port,
		"--inbound-tls-cert", certFile, "--inbound-tls-key", keyFile)

	for _, tc := range []struct {
		alpn      []string
		wantProto string
	}{{[]string{"h2", "http/1.1"}, "h2"}, {[]string{"http/1.1"}, "http/1.1"}} {
		tr := &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "tcp", provider.Inbound)
			},
			TLSClientConfig:   &tls.Config{ServerName: "localhost", RootCAs: pool, NextProtos: tc.alpn},
			ForceAttemptHTTP2: len(tc.alpn) > 1,
		}
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://localhost/proto")
		if err != nil {
			t.Fatalf("ALPN %v: %v", tc.alpn, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		tr.CloseIdleConnections()
		if resp.StatusCode != 200 || resp.TLS == nil || resp.TLS.NegotiatedProtocol != tc.wantProto || string(b) != "HTTP/1.1" {
			t.Errorf("ALPN %v: got %d, negotiated %q, app saw %q; want 200, %q, and a plain HTTP/1.1 request at the app",
				tc.alpn, resp.StatusCode, resp.TLS.NegotiatedProtocol, b, tc.wantProto)
		}
	}
	for _, proto := range []string{"h2", "http1"} {
		series := fmt.Sprintf(`weft_protocol_detections_total{how="sniffed",listener="inbound+tls",protocol=%q}`, proto)
		if n := provider.Metric(series); n != 1 {
			t.Errorf("%s = %g, want 1", series, n)
		}
	}
}

// selfSignedFiles writes a certificate for localhost and its key as PEM
// files, and returns them with a pool that trusts the certificate.
func selfSignedFiles(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	c, err := testcert.New()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, c.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, c.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, c.Pool
}
