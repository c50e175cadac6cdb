package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/meshtest"
)

// A control plane whose API serves TLS: the CLI and sidecars reach it at
// https:// with the CA it left for its user; sidecars with join tokens
// register, get the push stream, report and send spans with their
// workload certificates, and carry traffic; a sidecar with neither a
// join token nor the API token is refused at start, one that does not
// trust the control plane's CA says what to give it, and plain HTTP to
// it gets nowhere. No secret shows in logs, /config or weft get.
func TestControlPlaneOverTLS(t *testing.T) {
	t.Parallel()
	m := meshtest.New(t)
	cp := m.Control("--tls", "on")
	if !strings.HasPrefix(cp.URL, "https://") {
		t.Fatalf("control plane API at %s, want https://", cp.URL)
	}
	app := m.App("echo-1")
	echoToken, clientToken := createToken(t, m, cp, "--service", "echo", "--ttl", "1h"), createToken(t, m, cp, "--service", "client", "--ttl", "1h")
	provider := m.Sidecar(cp, "--service", "echo", "--id", "echo-1", "--app-port", app.Port, "--report-interval", "1s",
		"--join-token", echoToken)
	consumer := m.Sidecar(cp, "--service", "client", "--trace-sampling", "1", "--report-interval", "1s",
		"--join-token", clientToken)
	waitInstances(t, consumer, "echo", 1)
	for range 5 {
		resp, body, err := meshtest.Via(consumer.Outbound, "echo", "/")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET echo through the mesh: %v %v %s", err, resp, body)
		}
	}
	if out, errOut, code := m.Weft("get", "services", "--control", cp.URL); code != 0 || !strings.Contains(out, "echo") {
		t.Errorf("weft get services over https: exit %d %s%s, want echo listed", code, out, errOut)
	}
	// Reports and spans reach it with the sidecars' certificates.
	m.Eventually(20*time.Second, func() (bool, string) {
		code, body := cp.API("GET", "/v1/stats/echo", "", nil)
		var s struct {
			Services []struct {
				Requests uint64 `json:"requests"`
			} `json:"services"`
		}
		_ = json.Unmarshal([]byte(body), &s)
		return code == 200 && len(s.Services) == 1 && s.Services[0].Requests >= 5, fmt.Sprintf("GET /v1/stats/echo: %d %.300s", code, body)
	})
	m.Eventually(20*time.Second, func() (bool, string) {
		code, body := cp.API("GET", "/v1/traces?service=client", "", nil)
		return code == 200 && strings.Contains(body, `"echo"`), fmt.Sprintf("GET /v1/traces: %d %.300s", code, body)
	})
	if n := metricSum(provider.Admin, "weft_certificate_renewals_total", `outcome="success"`); n < 1 {
		t.Errorf("the provider got %v certificates, want its first", n)
	}

	// No secret anywhere a user or a log reader sees: the join tokens'
	// secrets, the API token, private keys.
	secrets := map[string]string{"API token": readToken(t, cp), "PEM private key": "PRIVATE KEY"}
	for name, tok := range map[string]string{"echo's join token": echoToken, "client's join token": clientToken} {
		_, secret, _ := strings.Cut(tok, ".")
		secrets[name] = secret
	}
	yaml, errOut, code := m.Weft("get", "proxies", "-o", "yaml", "--control", cp.URL)
	if code != 0 || !strings.Contains(yaml, "echo-1") {
		t.Errorf("weft get proxies -o yaml: exit %d %s%s", code, yaml, errOut)
	}
	_, providerConfig := meshtest.Get("http://" + provider.Admin + "/config")
	_, consumerConfig := meshtest.Get("http://" + consumer.Admin + "/config")
	for where, text := range map[string]string{"the control plane's log": cp.Output(), "the provider's log": provider.Output(),
		"the consumer's log": consumer.Output(), "weft get proxies -o yaml": yaml, "the provider's /config": providerConfig,
		"the consumer's /config": consumerConfig} {
		for name, secret := range secrets {
			if strings.Contains(text, secret) {
				t.Errorf("%s shows the %s", where, name)
			}
		}
	}

	caFile, err := api.CAPath(cp.Addr)
	if err != nil {
		t.Fatal(err)
	}
	// No join token, no API token (a user the control plane left none
	// for): refused at start, saying what to give.
	elsewhere := "XDG_CONFIG_HOME=" + t.TempDir()
	lone := m.Start("sidecar without credentials", m.Bins.Weft, []string{elsewhere}, "sidecar", "--control", cp.URL, "--control-ca", caFile,
		"--service", "lone", "--outbound", "127.0.0.1:0", "--admin", "127.0.0.1:0")
	if code := lone.ExitCode(t, 30*time.Second); code == 0 || !strings.Contains(lone.Output(), "--join-token") {
		t.Errorf("a sidecar without credentials: exit %d, output %s; want it refused naming --join-token", code, lone.Output())
	}
	// A CA that is not the control plane's: the sidecar says so and what
	// to give.
	other := filepath.Join(t.TempDir(), "other-ca.pem")
	otherCP := m.Control("--tls", "on")
	otherPath, _ := api.CAPath(otherCP.Addr)
	b, err := os.ReadFile(otherPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, b, 0o644); err != nil {
		t.Fatal(err)
	}
	wrong := m.SidecarNoWait(cp.URL, "--service", "wrong", "--control-ca", other,
		"--join-token", createToken(t, m, cp, "--service", "wrong", "--ttl", "1h"))
	wrong.WaitLog(t, regexp.MustCompile(`certificate signed by unknown authority.*--control-ca`), 20*time.Second)
	// Plain HTTP to it.
	if _, errOut, code := m.Weft("get", "services", "--control", "http://"+cp.Addr); code == 0 || !strings.Contains(errOut, "HTTPS") {
		t.Errorf("weft get services over plain HTTP to the TLS API: exit %d %s, want an error saying it serves HTTPS", code, errOut)
	}
}
