package sidecar

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/control"
	"github.com/weftmesh/weft/internal/security"
	"github.com/weftmesh/weft/internal/telemetry"
)

// runControlAt runs a control plane on addr with dataDir and workload
// certificates of ttl, until stop (or the test's end).
func runControlAt(t *testing.T, addr, dataDir string, ttl time.Duration) (c *control.Control, stop func()) {
	t.Helper()
	cfg := control.Default()
	cfg.Listen, cfg.DataDir, cfg.CertTTL = addr, dataDir, ttl
	ctx, cancel := context.WithCancel(context.Background())
	c, err := control.New(ctx, cfg, control.Deps{Logger: slog.New(slog.DiscardHandler), Registry: telemetry.NewRegistry()})
	if err != nil {
		cancel()
		t.Fatalf("control.New: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("control plane Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return c, stop
}

func newToken(t *testing.T, controlAddr string, req security.TokenRequest) string {
	t.Helper()
	b, _ := json.Marshal(req)
	tr := &http.Transport{Proxy: nil}
	defer tr.CloseIdleConnections()
	post, _ := http.NewRequest(http.MethodPost, "http://"+controlAddr+"/v1/tokens", strings.NewReader(string(b)))
	post.Header.Set("Content-Type", "application/json")
	post.Header.Set("Authorization", "Bearer "+api.LoadToken(controlAddr)) // (the API token the control plane left for this user)
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(post)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out security.TokenCreated
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(body, &out) != nil {
		t.Fatalf("POST /v1/tokens: %d %s", resp.StatusCode, body)
	}
	return out.Secret
}

// adminConfig is the sidecar's /config certificate.
func adminConfig(t *testing.T, s *Sidecar) *certView {
	t.Helper()
	_, _, admin := s.Addrs()
	code, body := getBody(t, "http://"+admin+"/config")
	if code != 200 {
		t.Fatalf("/config: %d %s", code, body)
	}
	var v struct {
		Certificate *certView `json:"certificate"`
	}
	json.Unmarshal([]byte(body), &v)
	return v.Certificate
}

func getBody(t *testing.T, url string) (int, string) {
	t.Helper()
	tr := &http.Transport{Proxy: nil}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// selfHandshake connects the credentials to themselves over loopback: a
// client for service want, a server that requires a client certificate.
func selfHandshake(t *testing.T, c *security.Credentials, want string) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srvErr := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			srvErr <- err
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		tc := tls.Server(conn, c.ServerConfig())
		err = tc.Handshake()
		if err == nil {
			_, err = tc.Write([]byte{1})
		}
		srvErr <- err
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	tc := tls.Client(conn, c.ClientConfig(want))
	err = tc.Handshake()
	if err == nil {
		_, err = io.ReadFull(tc, make([]byte, 1))
	}
	if serr := <-srvErr; err == nil {
		err = serr
	}
	return err
}

func TestCertificateWithJoinToken(t *testing.T) {
	c, _ := runControlAt(t, "127.0.0.1:0", t.TempDir(), 3*time.Second)
	token := newToken(t, c.Addr(), security.TokenRequest{Service: "web"})
	s, _ := runSidecar(t, nil, func(cfg *Config) { cfg.Control, cfg.JoinToken = c.Addr(), token })
	creds := s.Credentials()
	if creds == nil {
		t.Fatal("Credentials with a join token: nil")
	}
	eventually(t, "a first certificate", func() (bool, string) {
		return creds.Certificate() != nil, "none yet"
	})
	id, _ := creds.ID()
	if id.String() != "spiffe://weft.local/service/web" {
		t.Errorf("identity: got %s, want spiffe://weft.local/service/web", id)
	}
	v := adminConfig(t, s)
	if v == nil || v.State != "valid" || v.SPIFFEID != id.String() || v.Serial == "" || v.NotAfter == nil {
		t.Errorf("/config certificate: got %+v, want valid, the SPIFFE ID, serial and notAfter", v)
	}
	if err := selfHandshake(t, creds, "web"); err != nil {
		t.Errorf("mutual TLS with the certificate: %v", err)
	}

	// Rotation with a 3 s lifetime: new serials, none ever in force expired.
	seen := map[string]bool{}
	eventually(t, "three certificates", func() (bool, string) {
		cert := creds.Certificate()
		if now := time.Now(); !now.Before(cert.Leaf.NotAfter) {
			t.Fatalf("certificate in force expired at %s (now %s)", cert.Leaf.NotAfter, now)
		}
		seen[cert.Leaf.SerialNumber.String()] = true
		return len(seen) >= 3, "serials seen: " + strings.Join(keys(seen), ", ")
	})
	if err := selfHandshake(t, creds, "web"); err != nil {
		t.Errorf("mutual TLS after rotation, same configs' code: %v", err)
	}
	if err := selfHandshake(t, creds, "catalog"); err == nil || !strings.Contains(err.Error(), `want "catalog"`) {
		t.Errorf("a client wanting catalog, served by web: got %v, want refused", err)
	}
	_, _, admin := s.Addrs()
	_, m := getBody(t, "http://"+admin+"/metrics")
	if !strings.Contains(m, `weft_certificate_renewals_total{outcome="success"}`) || !strings.Contains(m, "weft_certificate_expiry_timestamp_seconds 1.") {
		t.Errorf("/metrics: want weft_certificate_renewals_total and weft_certificate_expiry_timestamp_seconds; got:\n%s", grep(m, "weft_certificate"))
	}
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestNoCertificateWithoutAValidToken(t *testing.T) {
	c, _ := runControlAt(t, "127.0.0.1:0", t.TempDir(), time.Hour)
	other := newToken(t, c.Addr(), security.TokenRequest{Service: "catalog"})
	for name, token := range map[string]string{"unknown": "0123456789ab.bm9wZQ", "another service's": other} {
		t.Run(name, func(t *testing.T) {
			log, buf := newLog(slog.LevelInfo)
			s, _ := runSidecar(t, log, func(cfg *Config) { cfg.Control, cfg.JoinToken = c.Addr(), token })
			eventually(t, "the refusal in /config", func() (bool, string) {
				v := adminConfig(t, s)
				return v != nil && v.State == "pending" && strings.Contains(v.LastError, "refused"), "certificate " + toJSON(v)
			})
			if s.Credentials().Certificate() != nil {
				t.Error("a certificate without a valid token")
			}
			// (the log line is written just after /config shows the refusal)
			eventually(t, "the refusal in the log", func() (bool, string) {
				l := buf.String()
				return strings.Contains(l, "no workload certificate yet"), l
			})
			if l := buf.String(); strings.Contains(l, token) {
				t.Errorf("log: shows the token:\n%s", l)
			}
		})
	}
	if s := startSidecar(t, nil); s.Credentials() != nil || s.certView() != nil {
		t.Error("a sidecar without a join token: has Credentials or a certificate view, want none")
	}
}

func toJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

// TestRenewalWhileControlPlaneIsDown: the certificate in force is kept
// until it expires, loudly; a control plane back renews it.
func TestRenewalWhileControlPlaneIsDown(t *testing.T) {
	dir := t.TempDir()
	c, stopControl := runControlAt(t, "127.0.0.1:0", dir, 4*time.Second)
	addr := c.Addr()
	token := newToken(t, addr, security.TokenRequest{Service: "web"})
	log, buf := newLog(slog.LevelInfo)
	s, _ := runSidecar(t, log, func(cfg *Config) { cfg.Control, cfg.JoinToken = addr, token })
	creds := s.Credentials()
	eventually(t, "a first certificate", func() (bool, string) { return creds.Certificate() != nil, "none yet" })
	stopControl()
	held := creds.Certificate()
	eventually(t, "the expiry of the certificate held", func() (bool, string) {
		now := time.Now()
		if cur := creds.Certificate(); cur != held {
			// A renewal that raced the stop is fine: follow that one.
			held = cur
		}
		return !now.Before(held.Leaf.NotAfter), "expires " + held.Leaf.NotAfter.String()
	})
	eventually(t, "loud logs", func() (bool, string) {
		l := buf.String()
		return strings.Contains(l, "renewal failing: it expires soon") && strings.Contains(l, "EXPIRED"), l
	})
	if v := adminConfig(t, s); v == nil || v.State != "expired" || v.LastError == "" {
		t.Errorf("/config while expired: got %s, want expired with the last error", toJSON(v))
	}
	runControlAt(t, addr, dir, 4*time.Second)
	deadline := time.Now().Add(30 * time.Second) // the retry backoff reaches 10 s
	for time.Now().Before(deadline) && !time.Now().Before(creds.Certificate().Leaf.NotAfter) {
		time.Sleep(50 * time.Millisecond) // polling interval
	}
	if cur := creds.Certificate(); !time.Now().Before(cur.Leaf.NotAfter) {
		t.Fatalf("no new certificate 30s after the control plane came back; log:\n%s", buf.String())
	}
}
