package e2e

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/meshtest"
)

// The slim sidecar build links no etcd and no gRPC, refuses the control
// plane verbs, and its sidecar joins a mesh run by the full binary.
func TestSlimSidecarBuild(t *testing.T) {
	t.Parallel()
	m := meshtest.New(t)
	root, err := meshtest.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	deps, err := exec.Command("go", "list", "-C", root, "-deps", "-tags", "sidecaronly", "./cmd/weft").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, d := range strings.Fields(string(deps)) {
		if strings.Contains(d, "go.etcd.io/") || strings.Contains(d, "google.golang.org/grpc") {
			t.Errorf("the slim build links %s", d)
		}
	}

	built, err := meshtest.GoBuild(t.TempDir(), []string{"-tags", "sidecaronly"}, "./cmd/weft")
	if err != nil {
		t.Fatal(err)
	}
	slim := built["./cmd/weft"]
	ctl := exec.Command(slim, "control")
	ctl.Env = meshtest.Env()
	out, err := ctl.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "this build has no control plane") {
		t.Errorf("slim weft control: got %q %v, want an error saying there is no control plane", out, err)
	}

	cp := m.Control()
	app := m.App("thin-1")
	m.Start("slim sidecar", slim, nil, "sidecar", "--control", cp.Addr, "--service", "thin", "--id", "thin-1",
		"--app-port", app.Port, "--outbound", "127.0.0.1:0", "--inbound", "127.0.0.1:0", "--admin", "127.0.0.1:0")
	consumer := m.Sidecar(cp, "--service", "web")
	waitInstances(t, consumer, "thin", 1)
}
