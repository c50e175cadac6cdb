package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtest"
)

func writeFile(t *testing.T, name, content string) string {
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Consumer only: the provider has no sidecar and is known to the mesh as
// an ExternalService.
func TestExternalServiceApplyRegisterDelete(t *testing.T) {
	t.Parallel()
	m := meshtest.New(t)
	cp := m.Control()
	consumer := m.Sidecar(cp, "--service", "web")
	legacy1, legacy2 := m.App("legacy-1"), m.App("legacy-2")

	good := writeFile(t, "legacy.yaml", `
apiVersion: weftmesh.io/v1alpha1
kind: ExternalService
metadata:
  name: legacy
spec:
  endpoints:
    - address: `+legacy1.Addr+`
      labels: {dc: east}
`)
	out, errOut, code := m.Weft("apply", "-f", good, "--control", cp.Addr)
	if code != 0 || !regexp.MustCompile(`^ExternalService/legacy created \(revision \d+\)$`).MatchString(strings.TrimSpace(out)) {
		t.Fatalf("apply: exit %d, out %q, err %q", code, out, errOut)
	}
	if out, _, _ = m.Weft("apply", "-f", good, "--control", cp.Addr); strings.TrimSpace(out) != "ExternalService/legacy unchanged" {
		t.Errorf("second apply: got %q, want unchanged", out)
	}
	waitInstances(t, consumer, "legacy", 1)

	// A bad file names the field and changes nothing.
	bad := writeFile(t, "bad.yaml", `
apiVersion: weftmesh.io/v1alpha1
kind: ExternalService
metadata:
  name: legacy
spec:
  endpoints:
    - address: nowhere
`)
	_, errOut, code = m.Weft("apply", "-f", bad, "--control", cp.Addr)
	if code == 0 || !strings.Contains(errOut, "spec.endpoints[0].address") || !strings.Contains(errOut, `"nowhere" is not host:port`) {
		t.Errorf("bad apply: got exit %d, stderr %q; want non-zero naming spec.endpoints[0].address", code, errOut)
	}
	if resp, body, err := meshtest.Via(consumer.Outbound, "legacy", "/"); err != nil || body != "instance=legacy-1" {
		t.Errorf("after a rejected apply: got %v %q %v, want legacy-1 still served", resp, body, err)
	}

	// weft register adds a second endpoint to the same service.
	out, errOut, code = m.Weft("register", "legacy", legacy2.Addr, "--label", "dc=west", "--control", cp.Addr)
	if code != 0 || !strings.Contains(out, "ExternalService/legacy configured") {
		t.Fatalf("register: exit %d, out %q, err %q", code, out, errOut)
	}
	waitInstances(t, consumer, "legacy", 2)
	out, _, _ = m.Weft("get", "externalservices", "--control", cp.Addr)
	if !strings.Contains(out, legacy1.Addr+","+legacy2.Addr) && !strings.Contains(out, legacy2.Addr+","+legacy1.Addr) {
		t.Errorf("get externalservices: got\n%s\nwant both endpoints", out)
	}

	out, _, code = m.Weft("delete", "externalservice", "legacy", "--control", cp.Addr)
	if code != 0 || strings.TrimSpace(out) != "ExternalService/legacy deleted" {
		t.Errorf("delete: exit %d %q", code, out)
	}
	m.Eventually(5*time.Second, func() (bool, string) {
		resp, body, err := meshtest.Via(consumer.Outbound, "legacy", "/")
		if err != nil {
			return false, err.Error()
		}
		// legacy is no mesh service any more: proxy form treats it as egress,
		// which cannot resolve the name.
		return resp.StatusCode == 502, body
	})
	if _, errOut, code = m.Weft("delete", "externalservice", "legacy", "--control", cp.Addr); code == 0 || !strings.Contains(errOut, "not found") {
		t.Errorf("deleting twice: got exit %d %q, want not found", code, errOut)
	}
}

// The control plane on an external etcd started by the test: state
// survives a restart of the control plane, and two control planes on the
// same etcd serve one mesh.
func TestExternalEtcd(t *testing.T) {
	// Not parallel: restarts a control plane on the address the first one released.
	m := meshtest.New(t)
	etcd := meshtest.Etcd(t)
	cp1 := m.Control("--etcd-endpoints", etcd)
	out, _, _ := m.Weft("version", "--control", cp1.Addr)
	if !strings.Contains(out, "store: external") {
		t.Fatalf("version: got %q, want store: external", out)
	}
	cp2 := m.Control("--etcd-endpoints", etcd)

	app := m.App("far-1")
	m.Sidecar(cp1, "--service", "far", "--id", "far-1", "--app-port", app.Port)
	consumer := m.Sidecar(cp2, "--service", "near")
	waitInstances(t, consumer, "far", 1) // registered through cp1, pushed by cp2

	cp1.Signal(9)
	<-cp1.Done()
	cp1b := m.ControlAt(cp1.Addr, t.TempDir(), "--etcd-endpoints", etcd) // a fresh data dir: state is in etcd
	out, _, _ = m.Weft("get", "instances", "far", "--control", cp1b.Addr)
	if !strings.Contains(out, "far-1") {
		t.Errorf("after restarting on external etcd: got\n%s\nwant far-1", out)
	}
}
