package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtest"
)

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

func TestWeftRunIsOneUnit(t *testing.T) {
	// Not parallel: the app port is picked, released and bound again later.
	m := meshtest.New(t)
	cp := m.Control()
	consumer := m.Sidecar(cp, "--service", "web")

	port := freePort(t)
	unit := m.Run(cp, []string{"--service", "hello", "--id", "hello-1", "--app-port", port},
		m.Bins.TestApp, "--listen", "127.0.0.1:"+port)
	unit.WaitReady(t)
	waitInstances(t, consumer, "hello", 1)

	// The app runs with HTTP_PROXY pointing at its sidecar, and can call
	// other services by name through it.
	_, body, err := meshtest.Via(consumer.Outbound, "hello", "/env")
	if err != nil {
		t.Fatal(err)
	}
	var env map[string]string
	json.Unmarshal([]byte(body), &env)
	if env["HTTP_PROXY"] != "http://"+unit.Outbound || env["WEFT_INSTANCE"] != "hello-1" {
		t.Errorf("app environment: got %v, want HTTP_PROXY=http://%s and WEFT_INSTANCE=hello-1", env, unit.Outbound)
	}
	_, body, _ = meshtest.Via(consumer.Outbound, "hello", "/call?url=http://hello/")
	if body != "instance=hello-1" {
		t.Errorf("app calling http://hello/ through its own sidecar: got %q", body)
	}

	// SIGTERM stops both, deregistered.
	unit.Signal(syscall.SIGTERM)
	if code := unit.ExitCode(t, 20*time.Second); code != 0 {
		t.Errorf("weft run after SIGTERM: exit %d, want 0", code)
	}
	if !strings.Contains(unit.Output(), "testapp got SIGTERM") {
		t.Errorf("the app was not stopped with SIGTERM:\n%s", unit.Output())
	}
	out, _, _ := m.Weft("get", "instances", "hello", "--control", cp.Addr)
	if strings.Contains(out, "hello-1") {
		t.Errorf("still registered after stop:\n%s", out)
	}
}

func TestWeftRunPassesOnTheAppsExit(t *testing.T) {
	// Not parallel: the app port is picked, released and bound again later.
	m := meshtest.New(t)
	cp := m.Control()
	port := freePort(t)
	unit := m.Run(cp, []string{"--service", "quitter", "--id", "quitter-1", "--app-port", port},
		m.Bins.TestApp, "--listen", "127.0.0.1:"+port)
	unit.WaitReady(t)
	meshtest.Get("http://" + unit.Inbound + "/exit?code=3")
	if code := unit.ExitCode(t, 20*time.Second); code != 3 {
		t.Errorf("weft run exit code: got %d, want the app's 3", code)
	}
	out, _, _ := m.Weft("get", "instances", "quitter", "--control", cp.Addr)
	if strings.Contains(out, "quitter-1") {
		t.Errorf("still registered after the app exited:\n%s", out)
	}
}

func TestWeftRunRestartsOnFailure(t *testing.T) {
	// Not parallel: the app port is picked, released and bound again later.
	m := meshtest.New(t)
	cp := m.Control()
	port := freePort(t)
	unit := m.Run(cp, []string{"--service", "phoenix", "--app-port", port, "--restart", "on-failure", "--health-interval", "100ms"},
		m.Bins.TestApp, "--listen", "127.0.0.1:"+port)
	unit.WaitReady(t)
	meshtest.Get("http://" + unit.Inbound + "/exit?code=1")
	unit.WaitLog(t, regexpMust(`msg="app failed, restarting" status=1`), 10*time.Second)
	m.Eventually(10*time.Second, func() (bool, string) {
		code, body := meshtest.Get("http://" + unit.Inbound + "/")
		return code == 200, body
	})
	if strings.Count(unit.Output(), "testapp listening") != 2 {
		t.Errorf("want the app started twice:\n%s", unit.Output())
	}
}

func TestWeftRunKilledTakesTheAppWithIt(t *testing.T) {
	// Not parallel: the app port is picked, released and bound again later, then checked closed.
	m := meshtest.New(t)
	cp := m.Control()
	port := freePort(t)
	unit := m.Run(cp, []string{"--service", "orphan", "--app-port", port}, m.Bins.TestApp, "--listen", "127.0.0.1:"+port)
	unit.WaitReady(t)
	unit.Signal(syscall.SIGKILL)
	<-unit.Done()
	// The app must not run on unmeshed: its port closes.
	m.Eventually(10*time.Second, func() (bool, string) {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second)
		if err == nil {
			c.Close()
			return false, "app still accepting on " + port
		}
		return true, ""
	})
}

func TestAdminEndpoints(t *testing.T) {
	t.Parallel()
	m, _, consumer, provider, _ := pair(t)
	meshtest.Via(consumer.Outbound, "echo", "/")
	cases := []struct{ path, want string }{
		{"/healthz", "ok"},
		{"/readyz", `"registered": true`},
		{"/config", `"echo": {`},
		{"/debug/pprof/", "goroutine"},
	}
	for _, c := range cases {
		code, body := meshtest.Get("http://" + provider.Admin + c.path)
		if code != 200 || !strings.Contains(body, c.want) {
			t.Errorf("GET %s: got %d, want 200 containing %q; body:\n%.500s", c.path, code, c.want, body)
		}
	}
	// Each side counts a request once it has answered: poll until both
	// have counted every 200 the consumer got (waitInstances' and ours).
	in := `weft_requests_total{destination_service="echo",direction="inbound",grpc_status="",response_code="200",route="",source_service="client"}`
	out := `weft_requests_total{destination_service="echo",direction="outbound",grpc_status="",response_code="200",route="",source_service="client"}`
	m.Eventually(5*time.Second, func() (bool, string) {
		got, sent := provider.Metric(in), consumer.Metric(out)
		return got >= 1 && got == sent, fmt.Sprintf("%s: %v; %s: %v; want the same, at least 1", in, got, out, sent)
	})
}
