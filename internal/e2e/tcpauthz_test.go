package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtest"
)

// tcpEchoApp is a TCP app that echoes each connection's lines and keeps
// the first line of every connection it accepted: what it saw.
type tcpEchoApp struct {
	ln   net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	seen []string
}

func startTCPEchoApp(t *testing.T) *tcpEchoApp {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &tcpEchoApp{ln: ln}
	t.Cleanup(func() { ln.Close(); a.wg.Wait() })
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			a.wg.Add(1)
			go func() {
				defer a.wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				br := bufio.NewReader(c)
				for first := true; ; first = false {
					line, err := br.ReadString('\n')
					if first {
						a.mu.Lock()
						a.seen = append(a.seen, line)
						a.mu.Unlock()
					}
					if err != nil {
						return
					}
					if _, err := io.WriteString(c, line); err != nil {
						return
					}
				}
			}()
		}
	}()
	return a
}

func (a *tcpEchoApp) port() string {
	_, port, _ := net.SplitHostPort(a.ln.Addr().String())
	return port
}

// saw is the first line of every connection the app accepted.
func (a *tcpEchoApp) saw() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.seen...)
}

// echoOnce sends line on a new connection to addr and reads what comes
// back until the connection ends: the echo, or nothing when the mesh
// closed it.
func echoOnce(t *testing.T, addr, line string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, line); err != nil {
		return "" // (closed already)
	}
	c.(*net.TCPConn).CloseWrite()
	back, _ := io.ReadAll(c) // (a reset is a close too)
	return string(back)
}

// TestTCPAuthorizationByPeer: a TCP app behind a sidecar that takes
// mutual TLS, called by web and ratings through their sidecars'
// upstream listeners. AuthorizationPolicies allow both, and deny
// ratings by a DENY rule with an HTTP-only field (a path), which on TCP
// matches by its from alone: web's bytes come back; ratings' connection
// is closed and the app never sees it; a plain client is "unknown",
// which no rule admits. The inbound counts web's connection and bytes
// under source_service web, counts the denials, logs the decision with
// the peer, and its access log names the source and the policy.
func TestTCPAuthorizationByPeer(t *testing.T) {
	t.Parallel()
	m := meshtest.New(t)
	cp := m.Control()
	app := startTCPEchoApp(t)
	accessLog := filepath.Join(t.TempDir(), "echo.log")
	provider := m.Sidecar(cp, "--service", "echo", "--id", "echo-1", "--app-port", app.port(), "--app-protocol", "tcp",
		"--access-log", accessLog, "--join-token", createToken(t, m, cp, "--service", "echo", "--ttl", "1h"))
	caller := func(service string) string {
		sc := m.Sidecar(cp, "--service", service, "--upstream", "echo=0/tcp",
			"--join-token", createToken(t, m, cp, "--service", service, "--ttl", "1h"))
		waitEndpoints(t, sc, "echo", 1)
		return sc.Upstream(t, "echo")
	}
	web, ratings := caller("web"), caller("ratings")

	f := writeFile(t, "echo-authz.yaml", `apiVersion: weftmesh.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: echo}
spec:
  service: echo
  rules:
  - from: [{service: web}, {service: ratings}]
---
apiVersion: weftmesh.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: echo-deny}
spec:
  service: echo
  action: DENY
  rules:
  - from: [{service: ratings}]
    to: [{paths: ["/admin/*"]}]
`)
	if out, errOut, code := m.Weft("apply", "-f", f, "--control", cp.Addr); code != 0 {
		t.Fatalf("weft apply (exit %d): %s %s", code, out, errOut)
	}
	// In force once a plain client (no sidecar, so "unknown") is closed
	// without its echo; until then its probes reach the app.
	m.Eventually(10*time.Second, func() (bool, string) {
		back := echoOnce(t, provider.Inbound, "probe\n")
		return back == "", fmt.Sprintf("a plain client got %q back, want its connection closed", back)
	})

	if back := echoOnce(t, web, "hello from web\n"); back != "hello from web\n" {
		t.Fatalf("web: got %q, want its bytes echoed", back)
	}
	if back := echoOnce(t, ratings, "hello from ratings\n"); back != "" {
		t.Fatalf("ratings: got %q, want the connection closed without a byte", back)
	}
	// web again, after ratings: the app has accepted every connection the
	// inbound let through before this echo came back.
	if back := echoOnce(t, web, "web again\n"); back != "web again\n" {
		t.Fatalf("web's second connection: got %q, want its bytes echoed", back)
	}
	for _, line := range app.saw() {
		if strings.Contains(line, "ratings") {
			t.Errorf("the app saw %q: a denied connection reached it (it saw %q)", line, app.saw())
		}
	}
	if saw := strings.Join(app.saw(), ""); !strings.Contains(saw, "hello from web\n") || !strings.Contains(saw, "web again\n") {
		t.Errorf("the app saw %q, want web's two connections", app.saw())
	}

	// The inbound's counters, by the caller its mutual TLS proved.
	webBytes := float64(len("hello from web\n") + len("web again\n"))
	want := map[string]float64{
		`weft_tcp_connections_total{destination_service="echo",direction="inbound",source_service="web"}`:    2,
		`weft_tcp_received_bytes_total{destination_service="echo",direction="inbound",source_service="web"}`: webBytes,
		`weft_tcp_sent_bytes_total{destination_service="echo",direction="inbound",source_service="web"}`:     webBytes,
	}
	m.Eventually(5*time.Second, func() (bool, string) {
		for series, v := range want {
			if got := provider.Metric(series); got != v {
				return false, fmt.Sprintf("provider %s = %g, want %g", series, got, v)
			}
		}
		return true, ""
	})
	if n := metricSum(provider.Admin, "weft_tcp_connections_total", `source_service="ratings"`); n != 0 {
		t.Errorf("weft_tcp_connections_total from ratings: got %v, want none (denied, never forwarded)", n)
	}
	if n := provider.Metric(`weft_authz_decisions_total{decision="allow",service="echo"}`); n < 2 {
		t.Errorf("weft_authz_decisions_total allow: got %v, want at least web's 2", n)
	}
	if n := provider.Metric(`weft_authz_decisions_total{decision="deny",service="echo"}`); n < 2 {
		t.Errorf("weft_authz_decisions_total deny: got %v, want at least 2 (ratings and the plain client)", n)
	}
	if n := provider.Metric(`weft_mesh_errors_total{direction="inbound",reason="denied",service="echo"}`); n < 2 {
		t.Errorf("weft_mesh_errors_total denied: got %v, want at least 2", n)
	}
	if n := metricSum(provider.Admin, "weft_protocol_detections_total", `listener="inbound+mtls"`, `protocol="tcp"`); n < 3 {
		t.Errorf("the inbound took %v TCP connections over mutual TLS, want the callers' 3", n)
	}

	// The log names the decision and the peer.
	provider.WaitLog(t, regexpMust(`msg="TCP connection denied, closed: a TCP connection from service \\"ratings\\" to \\"echo\\" is denied by AuthorizationPolicy/echo-deny rule 0 .*`+
		`reason=denied peer=ratings authorization="denied by AuthorizationPolicy/echo-deny rule 0`), 5*time.Second)
	provider.WaitLog(t, regexpMust(`msg="TCP connection denied, closed: a TCP connection that names no calling service .* peer=unknown`), 5*time.Second)

	// The access log: the source of each connection, and for the denied
	// one the mesh error and the policy (no request id leads to it).
	bySource := map[string][]map[string]any{}
	m.Eventually(10*time.Second, func() (bool, string) {
		b, _ := os.ReadFile(accessLog)
		bySource = map[string][]map[string]any{}
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var line map[string]any
			if json.Unmarshal([]byte(l), &line) == nil && line["method"] == "TCP" {
				src, _ := line["source_service"].(string)
				bySource[src] = append(bySource[src], line)
			}
		}
		return len(bySource["web"]) == 2 && len(bySource["ratings"]) == 1 && len(bySource["unknown"]) >= 1,
			fmt.Sprintf("%s, want 2 TCP lines from web, 1 from ratings and the plain client's:\n%s", accessLog, b)
	})
	check := func(line map[string]any, want map[string]any) {
		t.Helper()
		for k, v := range want {
			if line[k] != v {
				t.Errorf("access log: %s is %v, want %v (%v)", k, line[k], v, line)
			}
		}
	}
	for _, line := range bySource["web"] {
		check(line, map[string]any{"direction": "inbound", "destination_service": "echo", "instance": "echo-1", "mesh_error": nil, "authorization": nil})
	}
	check(bySource["ratings"][0], map[string]any{"direction": "inbound", "destination_service": "echo", "instance": nil, "mesh_error": "denied",
		"authorization": "denied by AuthorizationPolicy/echo-deny rule 0 (a TCP connection: the rule's to and when are left out, it matches by from alone)"})
	denials := 0
	for _, line := range bySource["unknown"] {
		if line["mesh_error"] == "denied" {
			denials++
			check(line, map[string]any{"authorization": "denied: no rule of AuthorizationPolicy/echo (ALLOW) matches"})
		}
	}
	if denials != 1 {
		t.Errorf("access log: %d denied lines of the plain client, want 1 (its probes until the policy was in force)", denials)
	}
}
