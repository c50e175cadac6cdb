package e2e

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtest"
)

// sidecarCert is the certificate part of a sidecar's /config.
type sidecarCert struct {
	State     string    `json:"state"`
	SPIFFEID  string    `json:"spiffeID"`
	Serial    string    `json:"serial"`
	NotAfter  time.Time `json:"notAfter"`
	LastError string    `json:"lastError"`
}

func certOf(t *testing.T, s *meshtest.Sidecar) (*sidecarCert, string) {
	t.Helper()
	code, body := meshtest.Get("http://" + s.Admin + "/config")
	if code != 200 {
		return nil, fmt.Sprintf("/config: %d %s", code, body)
	}
	var v struct {
		Certificate *sidecarCert `json:"certificate"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("/config: %v", err)
	}
	b, _ := json.Marshal(v.Certificate)
	return v.Certificate, string(b)
}

func createToken(t *testing.T, m *meshtest.Mesh, cp *meshtest.Control, args ...string) string {
	t.Helper()
	out, errOut, code := m.Weft(append([]string{"token", "create", "--control", cp.Target()}, args...)...)
	token := strings.TrimSpace(out)
	if code != 0 || strings.Count(token, ".") != 1 || !strings.Contains(errOut, "shown only now") {
		t.Fatalf("weft token create %v: exit %d, stdout %q, stderr %q; want the token alone on stdout", args, code, out, errOut)
	}
	return token
}

func TestCertificates(t *testing.T) {
	t.Parallel()
	m := meshtest.New(t)
	cp := m.Control("--cert-ttl", "6s")
	token := createToken(t, m, cp, "--service", "web", "--ttl", "1h")
	id, secret, _ := strings.Cut(token, ".")

	list, _, code := m.Weft("token", "list", "--control", cp.Addr)
	if code != 0 || !strings.Contains(list, id) || !strings.Contains(list, "service/web") || strings.Contains(list, secret) {
		t.Errorf("weft token list: exit %d\n%s\nwant the token's id and scope, never its secret", code, list)
	}

	web := m.Sidecar(cp, "--service", "web", "--join-token", token)
	m.Eventually(20*time.Second, func() (bool, string) {
		c, raw := certOf(t, web)
		return c != nil && c.State == "valid" && c.SPIFFEID == "spiffe://weft.local/service/web", raw
	})

	// A wrong token: no certificate, the sidecar says why and serves on.
	stranger := m.Sidecar(cp, "--service", "web", "--join-token", "0123456789ab.bm9wZQ")
	stranger.WaitLog(t, regexp.MustCompile(`no workload certificate yet.*401 Unauthorized.*unknown or expired`), 20*time.Second)
	if c, raw := certOf(t, stranger); c == nil || c.State != "pending" || !strings.Contains(c.LastError, "unknown or expired") {
		t.Errorf("/config of the sidecar with a wrong token: got %s, want pending with the refusal", raw)
	}
	if strings.Contains(stranger.Output(), "bm9wZQ") {
		t.Error("the sidecar logged its token")
	}
	// Another service's token is refused too.
	other := m.Sidecar(cp, "--service", "catalog", "--join-token", token)
	other.WaitLog(t, regexp.MustCompile(`no workload certificate yet.*403 Forbidden.*is for service web, not catalog`), 20*time.Second)

	// Rotation with 6 s certificates: several renewals, and the certificate
	// in force is never expired when looked at.
	serials := map[string]bool{}
	m.Eventually(45*time.Second, func() (bool, string) {
		c, raw := certOf(t, web)
		now := time.Now()
		if c == nil || c.State != "valid" || !now.Before(c.NotAfter) {
			t.Fatalf("at %s the certificate in force is %s: want a valid one at every look", now.Format(time.RFC3339Nano), raw)
		}
		serials[c.Serial] = true
		return len(serials) >= 4, fmt.Sprintf("%d serials: %v", len(serials), serials)
	})
	if n := strings.Count(web.Output(), "workload certificate renewed"); n < 3 {
		t.Errorf("renewals logged: %d, want at least 3", n)
	}
	_, metrics := meshtest.Get("http://" + cp.Addr + "/metrics")
	if !regexp.MustCompile(`weft_control_certificates_issued_total\{how="renewal"\} ([3-9]|\d\d)`).MatchString(metrics) {
		t.Errorf("control plane metrics: want at least 3 renewals by proof:\n%s", grepLines(metrics, "weft_control_certificates"))
	}
	if !regexp.MustCompile(`weft_certificate_renewals_total\{outcome="success"\} ([4-9]|\d\d)`).MatchString(metricsOf(web)) {
		t.Errorf("sidecar metrics: want at least 4 successful requests:\n%s", grepLines(metricsOf(web), "weft_certificate"))
	}

	// weft check names the sidecars without a certificate.
	out, _, code := m.Weft("check", "--control", cp.Addr)
	if code != 1 || !strings.Contains(out, "WARNING: no certificate yet") || !strings.Contains(out, "spiffe://weft.local/service/web") {
		t.Errorf("weft check: exit %d\n%s\nwant exit 1 with a warning for the sidecars without a certificate", code, out)
	}

	if out, _, code := m.Weft("token", "delete", id, "--control", cp.Addr); code != 0 || !strings.Contains(out, "deleted") {
		t.Errorf("weft token delete: exit %d %s", code, out)
	}
	if list, _, _ := m.Weft("token", "list", "--control", cp.Addr); strings.Contains(list, id) {
		t.Errorf("weft token list after delete:\n%s", list)
	}
}

func metricsOf(s *meshtest.Sidecar) string {
	_, body := meshtest.Get("http://" + s.Admin + "/metrics")
	return body
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestCheckWarnsNearExpiry: weft check is quiet while every certificate
// has time left, and warns (exit 1) about one expiring within the
// threshold asked for.
func TestCheckWarnsNearExpiry(t *testing.T) {
	t.Parallel()
	m := meshtest.New(t)
	cp := m.Control("--cert-ttl", "1h")
	token := createToken(t, m, cp, "--mesh")
	web := m.Sidecar(cp, "--service", "web", "--join-token", token)
	m.Sidecar(cp, "--service", "plain") // no token: listed, not a warning
	m.Eventually(20*time.Second, func() (bool, string) {
		c, raw := certOf(t, web)
		return c != nil && c.State == "valid", raw
	})
	out, errOut, code := m.Weft("check", "--control", cp.Addr)
	if code != 0 || strings.Contains(out, "WARNING") || !strings.Contains(out, "CA (generated)") || !strings.Contains(out, "no workload certificate (no --join-token)") {
		t.Errorf("weft check with an hour left: exit %d\n%s%s\nwant exit 0, the CA and both sidecars listed", code, out, errOut)
	}
	out, errOut, code = m.Weft("check", "--within", "2h", "--control", cp.Addr)
	if code != 1 || !strings.Contains(out, "WARNING: expires within 2h0m0s") || !strings.Contains(errOut, "1 of 3 certificates need attention") {
		t.Errorf("weft check --within 2h: exit %d\n%s%s\nwant exit 1 warning of web's certificate", code, out, errOut)
	}
	out, _, code = m.Weft("check", "--root-within", "87660h", "--control", cp.Addr)
	if code != 1 || !strings.Contains(out, "WARNING: the CA's certificate expires within") {
		t.Errorf("weft check --root-within 10y: exit %d\n%s\nwant a warning for the CA", code, out)
	}
}

// TestCertificateOutlivesControlPlane: with the control plane stopped
// during renewal, the sidecar keeps its certificate until it expires,
// says so loudly, and renews once the control plane is back.
func TestCertificateOutlivesControlPlane(t *testing.T) {
	// Not parallel: the control plane is restarted on the address it had.
	m := meshtest.New(t)
	cp := m.Control("--cert-ttl", "5s")
	token := createToken(t, m, cp, "--service", "web")
	web := m.Sidecar(cp, "--service", "web", "--join-token", token)
	m.Eventually(20*time.Second, func() (bool, string) {
		c, raw := certOf(t, web)
		return c != nil && c.State == "valid", raw
	})
	cp.Signal(syscall.SIGTERM)
	if code := cp.ExitCode(t, 20*time.Second); code != 0 {
		t.Fatalf("control plane exit %d after SIGTERM", code)
	}
	// Until its notAfter the certificate stays in force; after, expired.
	var last *sidecarCert
	m.Eventually(20*time.Second, func() (bool, string) {
		c, raw := certOf(t, web)
		if c == nil {
			t.Fatalf("no certificate in /config: %s", raw)
		}
		now := time.Now()
		if now.Before(c.NotAfter.Add(-100*time.Millisecond)) && c.State != "valid" {
			t.Fatalf("at %s, before its notAfter, the certificate is %s", now.Format(time.RFC3339Nano), raw)
		}
		last = c
		return c.State == "expired", raw
	})
	web.WaitLog(t, regexp.MustCompile(`level=WARN msg="workload certificate renewal failing: it expires soon, still serving with it"`), 10*time.Second)
	web.WaitLog(t, regexp.MustCompile(`level=ERROR msg="workload certificate EXPIRED and renewal still failing`), 10*time.Second)
	if last.LastError == "" {
		t.Error("/config of the expired certificate: no lastError")
	}

	back := m.ControlAt(cp.Addr, cp.DataDir, "--cert-ttl", "5s")
	m.Eventually(30*time.Second, func() (bool, string) {
		c, raw := certOf(t, web)
		return c != nil && c.State == "valid" && c.Serial != last.Serial, raw
	})
	// Expired, it could not prove itself with its certificate: it joined
	// again with its token.
	_, metrics := meshtest.Get("http://" + back.Addr + "/metrics")
	if !strings.Contains(metrics, `weft_control_certificates_issued_total{how="join-token"} 1`) {
		t.Errorf("control plane back: want one certificate by join token:\n%s", grepLines(metrics, "weft_control_certificates"))
	}
}

// TestRootRotation: weft control --ca-rotate makes a new root and keeps
// the old one in the trust bundle, so a sidecar holding a certificate of
// the old root renews by proof, without its join token, onto the new.
func TestRootRotation(t *testing.T) {
	// Not parallel: the control plane is restarted on the address it had.
	m := meshtest.New(t)
	cp := m.Control("--cert-ttl", "20s")
	token := createToken(t, m, cp, "--service", "web")
	web := m.Sidecar(cp, "--service", "web", "--join-token", token)
	var first *sidecarCert
	m.Eventually(20*time.Second, func() (bool, string) {
		c, raw := certOf(t, web)
		first = c
		return c != nil && c.State == "valid", raw
	})
	cp.Signal(syscall.SIGTERM)
	if code := cp.ExitCode(t, 20*time.Second); code != 0 {
		t.Fatalf("control plane exit %d after SIGTERM", code)
	}
	rotated := m.ControlAt(cp.Addr, cp.DataDir, "--cert-ttl", "20s", "--ca-rotate")
	rotated.WaitLog(t, regexp.MustCompile(`msg="CA root rotated`), 10*time.Second)
	rotated.WaitLog(t, regexp.MustCompile(`msg="CA root created"`), 10*time.Second)
	m.Eventually(30*time.Second, func() (bool, string) {
		c, raw := certOf(t, web)
		return c != nil && c.State == "valid" && c.Serial != first.Serial, raw
	})
	_, metrics := meshtest.Get("http://" + rotated.Addr + "/metrics")
	if !strings.Contains(metrics, `weft_control_certificates_issued_total{how="renewal"} 1`) ||
		!strings.Contains(metrics, `weft_control_certificates_issued_total{how="join-token"} 0`) {
		t.Errorf("after rotation: want one renewal by proof (the old root still trusted) and no join:\n%s", grepLines(metrics, "weft_control_certificates"))
	}
	out, _, code := m.Weft("check", "--control", rotated.Addr)
	if code != 0 || !strings.Contains(out, "spiffe://weft.local/service/web") {
		t.Errorf("weft check after rotation: exit %d\n%s", code, out)
	}
}
