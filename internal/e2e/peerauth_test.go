package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtest"
)

// PeerAuthentication sets what inbounds take, from the control plane:
// the mesh's policy makes every inbound strict, a service's own policy
// wins over it, and with neither each sidecar's --mtls decides. A
// sidecar without a certificate that a policy makes strict refuses
// everything and says so.
func TestPeerAuthentication(t *testing.T) {
	t.Parallel()
	m := meshtest.New(t)
	cp := m.Control()
	app := m.App("echo-1")
	provider := m.Sidecar(cp, "--service", "echo", "--id", "echo-1", "--app-port", app.Port,
		"--join-token", createToken(t, m, cp, "--service", "echo", "--ttl", "1h"))
	consumer := m.Sidecar(cp, "--service", "client", "--join-token", createToken(t, m, cp, "--service", "client", "--ttl", "1h"))
	legacyApp := m.App("legacy-1")
	legacy := m.Sidecar(cp, "--service", "legacy", "--id", "legacy-1", "--app-port", legacyApp.Port) // no certificate
	waitInstances(t, consumer, "echo", 1)

	plainOK := func(inbound string) bool {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
		resp, err := c.Get("http://" + inbound + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}
	mode := func(s *meshtest.Sidecar) string {
		_, body := meshtest.Get("http://" + s.Admin + "/config")
		var v struct {
			InboundMTLS struct{ Mode, By string } `json:"inboundMTLS"`
		}
		_ = json.Unmarshal([]byte(body), &v)
		return v.InboundMTLS.Mode + " by " + v.InboundMTLS.By
	}
	waitMode := func(s *meshtest.Sidecar, want string, plain bool) {
		t.Helper()
		m.Eventually(15*time.Second, func() (bool, string) {
			got := mode(s)
			ok := plainOK(s.Inbound)
			return got == want && ok == plain, fmt.Sprintf("mode %q, plain GET answered %v; want %q, %v", got, ok, want, plain)
		})
	}
	meshOK := func() {
		t.Helper()
		resp, body, err := meshtest.Via(consumer.Outbound, "echo", "/")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("echo through the mesh: %v %v %s", err, resp, body)
		}
	}
	waitMode(provider, "permissive by --mtls", true)

	applyDoc(t, m, cp, `apiVersion: weftmesh.io/v1alpha1
kind: PeerAuthentication
metadata: {name: mesh}
spec: {mtls: {mode: STRICT}}
`)
	waitMode(provider, "strict by PeerAuthentication/mesh", false)
	meshOK()
	waitMode(legacy, "strict by PeerAuthentication/mesh", false)
	legacy.WaitLog(t, regexp.MustCompile(`the inbound is strict but this sidecar has no workload certificate: it refuses every connection`), 10*time.Second)

	applyDoc(t, m, cp, `apiVersion: weftmesh.io/v1alpha1
kind: PeerAuthentication
metadata: {name: legacy}
spec: {service: legacy, mtls: {mode: PERMISSIVE}}
`)
	waitMode(legacy, "permissive by PeerAuthentication/legacy", true)
	waitMode(provider, "strict by PeerAuthentication/mesh", false)

	if _, errOut, code := m.Weft("delete", "PeerAuthentication", "mesh", "--control", cp.Addr); code != 0 {
		t.Fatalf("weft delete PeerAuthentication mesh: %s", errOut)
	}
	waitMode(provider, "permissive by --mtls", true)
	meshOK()
}

// applyDoc applies one YAML document with weft apply.
func applyDoc(t *testing.T, m *meshtest.Mesh, cp *meshtest.Control, doc string) {
	t.Helper()
	if out, errOut, code := m.Weft("apply", "-f", writeFile(t, "resource.yaml", doc), "--control", cp.Target()); code != 0 {
		t.Fatalf("weft apply %s: %s %s", doc, out, errOut)
	}
}
