package e2e

import (
	"fmt"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtest"
)

// A mesh service whose only instance stopped answers 503
// no-ready-instance in proxy form, never egress, until `weft delete
// service` makes the mesh forget it.
func TestStoppedServiceIsNotEgress(t *testing.T) {
	m := meshtest.New(t)
	cp := m.Control()
	consumer := m.Sidecar(cp, "--service", "web")
	app := m.App("hello-1")
	provider := m.Sidecar(cp, "--service", "hello", "--id", "hello-1", "--app-port", app.Port)
	waitInstances(t, consumer, "hello", 1)

	provider.Signal(syscall.SIGTERM)
	if code := provider.ExitCode(t, 20*time.Second); code != 0 {
		t.Fatalf("provider sidecar after SIGTERM: exit %d, want 0", code)
	}
	proxyGet := func() (int, string, string) {
		resp, err := meshtest.ProxyClient(consumer.Outbound).Get("http://hello/")
		if err != nil {
			return 0, "", err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("X-Weft-Error"), string(b)
	}
	m.Eventually(10*time.Second, func() (bool, string) {
		code, reason, body := proxyGet()
		return code == 503 && reason == "no-ready-instance", fmt.Sprintf("%d %s %s", code, reason, body)
	})
	if _, _, body := proxyGet(); strings.Contains(body, "egress") {
		t.Errorf("body %s names egress", body)
	}
	if out, _, _ := m.Weft("get", "services", "--control", cp.Addr); !strings.Contains(out, "hello") {
		t.Errorf("weft get services after the last instance left: got %q, want hello listed", out)
	}

	out, errOut, code := m.Weft("delete", "service", "hello", "--control", cp.Addr)
	if code != 0 || !strings.Contains(out, "service/hello deleted") {
		t.Fatalf("weft delete service hello: exit %d, %q %q", code, out, errOut)
	}
	// Forgotten: in proxy form the name is egress again (the answer now
	// comes from trying the host outside the mesh, whatever it resolves to).
	m.Eventually(10*time.Second, func() (bool, string) {
		code, reason, body := proxyGet()
		return reason != "no-ready-instance", fmt.Sprintf("%d %s %s", code, reason, body)
	})
}
