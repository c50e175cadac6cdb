package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtest"
)

// steadyLoad sends requests to service through outbound until stop is
// closed, and counts answers that were not 200.
type steadyLoad struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	failures   []string
	stop       chan struct{}
	done       chan struct{}
}

func startLoad(outbound, service string) *steadyLoad {
	l := &steadyLoad{stop: make(chan struct{}), done: make(chan struct{})}
	c := meshtest.ProxyClient(outbound)
	go func() {
		defer close(l.done)
		defer c.CloseIdleConnections()
		for {
			select {
			case <-l.stop:
				return
			default:
			}
			resp, err := c.Get("http://" + service + "/")
			if err == nil {
				resp.Body.Close()
			}
			if err == nil && resp.StatusCode == 200 {
				l.ok.Add(1)
				continue
			}
			l.failed.Add(1)
			l.mu.Lock()
			if err != nil {
				l.failures = append(l.failures, err.Error())
			} else {
				l.failures = append(l.failures, fmt.Sprintf("%d %s", resp.StatusCode, resp.Header.Get("X-Weft-Error")))
			}
			l.mu.Unlock()
		}
	}()
	return l
}

func (l *steadyLoad) finish(t *testing.T) {
	t.Helper()
	close(l.stop)
	<-l.done
	if n := l.failed.Load(); n > 0 {
		t.Errorf("%d of %d requests failed: %v", n, n+l.ok.Load(), l.failures[:min(len(l.failures), 5)])
	}
}

// passed waits for n more successful requests.
func (l *steadyLoad) passed(t *testing.T, n int64) {
	t.Helper()
	target := l.ok.Load() + n
	meshtest.Eventually(t, 20*time.Second, func() (bool, string) {
		return l.ok.Load() >= target, fmt.Sprintf("%d ok, %d failed", l.ok.Load(), l.failed.Load())
	})
}

func TestKilledProviderLosesNoRequests(t *testing.T) {
	t.Parallel()
	m, cp, consumer, providers := twoInstances(t, "--lease-ttl", "3s")
	load := startLoad(consumer.Outbound, "catalog")
	load.passed(t, 50)

	providers[0].Signal(syscall.SIGKILL)
	// Connections to the dead sidecar fail at once: the consumer moves the
	// request to the other instance, so nothing fails.
	load.passed(t, 200)
	// Within the lease TTL the registry forgets the dead instance.
	m.Eventually(10*time.Second, func() (bool, string) {
		out, _, _ := m.Weft("get", "instances", "catalog", "--control", cp.Addr)
		return !strings.Contains(out, "catalog-v1"), out
	})
	load.finish(t)
}

func TestControlPlaneRestartUnderTraffic(t *testing.T) {
	// Not parallel: restarts the control plane on the address it released.
	m, cp, consumer, _ := twoInstances(t)
	load := startLoad(consumer.Outbound, "catalog")
	load.passed(t, 50)

	ext := writeFile(t, "ext.yaml", "apiVersion: weftmesh.io/v1alpha1\nkind: ExternalService\nmetadata: {name: kept}\nspec: {endpoints: [{address: 127.0.0.1:9}]}\n"+`---
apiVersion: weftmesh.io/v1alpha1
kind: Fault
metadata: {name: teapot}
spec: {abort: {httpStatus: 418, percent: 100}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: catalog}
spec:
  parentRefs: [{group: "", kind: Service, name: catalog}]
  rules:
  - matches: [{path: {value: /teapot}}]
    filters: [{type: ExtensionRef, extensionRef: {group: weftmesh.io, kind: Fault, name: teapot}}]
  - backendRefs: [{name: catalog}]
`)
	if _, errOut, code := m.Weft("apply", "-f", ext, "--control", cp.Addr); code != 0 {
		t.Fatalf("apply: %s", errOut)
	}
	teapot := func(when string) {
		t.Helper()
		resp, err := meshtest.ProxyClient(consumer.Outbound).Get("http://catalog/teapot")
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusTeapot || resp.Header.Get("X-Weft-Error") != "fault-injected" {
			t.Errorf("%s: /teapot answered %d %q, want the route's 418 fault-injected", when, resp.StatusCode, resp.Header.Get("X-Weft-Error"))
		}
	}
	m.Eventually(10*time.Second, func() (bool, string) {
		_, body := meshtest.Get("http://" + consumer.Admin + "/config")
		return strings.Contains(body, "Fault/teapot"), "consumer /config without the route"
	})
	teapot("with the control plane up")
	cp.Signal(syscall.SIGKILL)
	<-cp.Done()
	// Sidecars keep routing with what they last knew, routes included.
	load.passed(t, 200)
	teapot("with the control plane killed")
	if code, body := meshtest.Get("http://" + consumer.Admin + "/readyz"); code != 200 || !strings.Contains(body, `"controlConnected": false`) {
		t.Errorf("consumer readyz without control plane: got %d %s, want 200 and controlConnected false", code, body)
	}

	cp2 := m.ControlAt(cp.Addr, cp.DataDir)
	load.passed(t, 100)
	// State survived the restart, and sidecars resynced: a new instance is routed to.
	out, _, _ := m.Weft("get", "instances", "catalog", "--control", cp2.Addr)
	if !strings.Contains(out, "catalog-v1") || !strings.Contains(out, "catalog-v2") {
		t.Errorf("instances after restart:\n%s", out)
	}
	if out, _, _ := m.Weft("get", "externalservices", "--control", cp2.Addr); !strings.Contains(out, "kept") {
		t.Errorf("config after restart: got\n%s\nwant ExternalService kept", out)
	}
	if out, _, code := m.Weft("history", "httproute", "catalog", "--control", cp2.Addr); code != 0 || !strings.Contains(out, "created") {
		t.Errorf("the route's history after restart: got (%d)\n%s\nwant its created revision", code, out)
	}
	teapot("after the restart")
	app := m.App("catalog-v3")
	m.Sidecar(cp2, "--service", "catalog", "--id", "catalog-v3", "--app-port", app.Port)
	waitInstances(t, consumer, "catalog", 3)
	load.finish(t)
}

func TestSidecarWaitsForControlPlane(t *testing.T) {
	// Not parallel: binds, later, an address it released.
	m := meshtest.New(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there until the control plane starts below

	app := m.App("late-1")
	sc := m.SidecarNoWait(addr, "--service", "late", "--app-port", app.Port)
	sc.WaitLog(t, regexpMust(`msg="waiting for control plane"`), 10*time.Second)
	if code, body := meshtest.Get("http://" + sc.Admin + "/readyz"); code != 503 || !strings.Contains(body, "waitingFor") {
		t.Errorf("readyz before the control plane exists: got %d %s, want 503 saying what it waits for", code, body)
	}
	m.ControlAt(addr, t.TempDir())
	sc.WaitReady(t)
}

func TestBadInvocationsExitWithOneClearLine(t *testing.T) {
	t.Parallel()
	m := meshtest.New(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	readOnly := filepath.Join(t.TempDir(), "ro")
	os.Mkdir(readOnly, 0o500)

	cases := []struct {
		name string
		args []string
		want string
	}{
		{"bad service name", []string{"sidecar", "--service", "Bad_Name"}, "--service"},
		{"unknown flag", []string{"sidecar", "--servce", "x"}, "flag provided but not defined: -servce"},
		{"taken outbound port", []string{"sidecar", "--service", "a", "--outbound", taken.Addr().String(), "--admin", "127.0.0.1:0"}, "--outbound " + taken.Addr().String()},
		{"taken control port", []string{"control", "--listen", taken.Addr().String(), "--data-dir", t.TempDir()}, "--listen"},
		{"unwritable data dir", []string{"control", "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(readOnly, "d")}, "--data-dir"},
		{"bad listen address", []string{"control", "--listen", "nonsense"}, `--listen "nonsense"`},
		{"run without a command", []string{"run", "--service", "a"}, "weft run --service NAME"},
		{"upstream without a port", []string{"sidecar", "--service", "a", "--upstream", "mysql"}, `"mysql": want SERVICE=[HOST:]PORT[/tcp]`},
		{"upstream with an unknown protocol", []string{"sidecar", "--service", "a", "--upstream", "mysql=3306/udp"}, `not "udp"`},
		{"unknown app protocol", []string{"sidecar", "--service", "a", "--app-port", "1", "--app-protocol", "thrift"}, `--app-protocol "thrift": want http, h2c or tcp`},
		{"unknown HTTP/2 engine", []string{"sidecar", "--service", "a", "--http2-engine", "nghttp2"}, `--http2-engine "nghttp2": want weft or x/net`},
		{"TLS certificate without a key", []string{"sidecar", "--service", "a", "--app-port", "1", "--inbound-tls-cert", "c.pem"}, "--inbound-tls-cert and --inbound-tls-key go together"},
		{"TLS certificate that is not there", []string{"sidecar", "--service", "a", "--app-port", "1", "--outbound", "127.0.0.1:0", "--inbound", "127.0.0.1:0", "--admin", "127.0.0.1:0",
			"--inbound-tls-cert", "/nonexistent/c.pem", "--inbound-tls-key", "/nonexistent/k.pem"}, "--inbound-tls-cert /nonexistent/c.pem"},
		{"taken upstream port", []string{"sidecar", "--service", "a", "--outbound", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--upstream", "db=" + taken.Addr().String()}, "--upstream db=" + taken.Addr().String()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "unwritable data dir" && os.Geteuid() == 0 {
				// root writes anywhere; use a path under a regular file instead.
				f := filepath.Join(t.TempDir(), "file")
				os.WriteFile(f, nil, 0o600)
				c.args[len(c.args)-1] = filepath.Join(f, "d")
			}
			_, errOut, code := m.Weft(c.args...)
			lines := strings.Split(strings.TrimSpace(errOut), "\n")
			last := lines[len(lines)-1]
			if code == 0 || !strings.Contains(last, c.want) || !strings.HasPrefix(last, "weft: ") {
				t.Errorf("weft %v: got exit %d, stderr %q; want non-zero and a last line 'weft: ...' containing %q", c.args, code, errOut, c.want)
			}
		})
	}
}

func TestSIGTERMDrainsAndDeregisters(t *testing.T) {
	t.Parallel()
	m, cp, consumer, providers := twoInstances(t)
	// A slow request is in flight on catalog-v1 when its sidecar is told to stop.
	type result struct {
		code int
		body string
	}
	got := make(chan result, 1)
	go func() {
		code, body := meshtest.Get("http://" + providers[0].Inbound + "/slow?d=1s")
		got <- result{code, body}
	}()
	meshtest.Eventually(t, 5*time.Second, func() (bool, string) {
		c := inflight(providers[0].Admin)
		return c > 0, fmt.Sprintf("in-flight inbound %d", c)
	})
	providers[0].Signal(syscall.SIGTERM)
	r := <-got
	if r.code != 200 || r.body != "slow instance=catalog-v1" {
		t.Errorf("in-flight request during drain: got %d %q, want 200 from catalog-v1", r.code, r.body)
	}
	if code := providers[0].ExitCode(t, 15*time.Second); code != 0 {
		t.Errorf("sidecar exit code after SIGTERM: got %d, want 0", code)
	}
	out, _, _ := m.Weft("get", "instances", "catalog", "--control", cp.Addr)
	if strings.Contains(out, "catalog-v1") {
		t.Errorf("catalog-v1 still registered after a clean stop:\n%s", out)
	}
	waitInstances(t, consumer, "catalog", 1)
}

// inflight reads weft_requests_in_flight of the inbound direction from a
// sidecar's metrics.
func inflight(admin string) int {
	_, body := meshtest.Get("http://" + admin + "/metrics")
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, `weft_requests_in_flight{direction="inbound"`) {
			var n int
			fmt.Sscanf(line[strings.LastIndex(line, " ")+1:], "%d", &n)
			return n
		}
	}
	return -1
}

func regexpMust(s string) *regexp.Regexp { return regexp.MustCompile(s) }

func TestHTTPHealthCheckWithdrawsAndRestoresTheInstance(t *testing.T) {
	t.Parallel()
	m := meshtest.New(t)
	cp := m.Control()
	app := m.App("moody-1")
	m.Sidecar(cp, "--service", "moody", "--app-port", app.Port, "--health-path", "/health", "--health-interval", "100ms")
	consumer := m.Sidecar(cp, "--service", "web")
	waitInstances(t, consumer, "moody", 1)

	meshtest.Get("http://" + app.Addr + "/sick")
	m.Eventually(10*time.Second, func() (bool, string) {
		resp, body, err := meshtest.Via(consumer.Outbound, "moody", "/")
		if err != nil {
			return false, err.Error()
		}
		return resp.StatusCode == 503 && resp.Header.Get("X-Weft-Error") == "no-ready-instance", body
	})
	meshtest.Get("http://" + app.Addr + "/well")
	waitInstances(t, consumer, "moody", 1)
}
