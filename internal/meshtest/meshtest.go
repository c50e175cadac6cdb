// Package meshtest is the one test environment for end-to-end tests: it
// builds the real weft binary and a small test app, starts control planes,
// sidecars and apps as separate processes on 127.0.0.1 with ports chosen at
// run time, and waits on conditions with deadlines, never on sleeps.
//
//	m := meshtest.New(t)
//	cp := m.Control()
//	app := m.App("catalog-1")
//	sc := m.Sidecar(cp, "--service", "catalog", "--app-port", app.Port)
//	m.Eventually(5*time.Second, func() (bool, string) { ... })
package meshtest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/api"
)

// Bins are the built binaries.
type Bins struct {
	Weft, TestApp string
}

var (
	buildOnce sync.Once
	bins      Bins
	buildErr  error
	buildDir  string
	buildTook time.Duration
)

// Build compiles weft and the test app once per test binary, in one go
// build (see GoBuild). Call Cleanup from TestMain after m.Run.
func Build() (Bins, error) {
	buildOnce.Do(func() {
		start := time.Now()
		defer func() { buildTook = time.Since(start) }()
		buildDir, buildErr = os.MkdirTemp("", "weft-e2e-bin-")
		if buildErr != nil {
			return
		}
		var out map[string]string
		out, buildErr = GoBuild(buildDir, nil, "./cmd/weft", "./internal/meshtest/testapp")
		bins = Bins{Weft: out["./cmd/weft"], TestApp: out["./internal/meshtest/testapp"]}
	})
	return bins, buildErr
}

// BuildTook is how long Build took (zero before it ran).
func BuildTook() time.Duration { return buildTook }

// GoBuild builds the main packages pkgs (import paths, or paths relative
// to the module root) into dir with one go build, and returns each
// binary's path by package. flags come before the packages (e.g. "-tags",
// "sidecaronly").
//
// It builds with -race exactly when the test binary has it: then every
// package the test binary itself needed is already in the build cache
// under the same flags, and only what is new is compiled. A build with
// other flags than the test's compiles the standard library and every
// dependency again, which on a cold cache costs minutes.
func GoBuild(dir string, flags []string, pkgs ...string) (map[string]string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return nil, err
	}
	args := []string{"build"}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(append(args, flags...), "-o", dir+string(filepath.Separator))
	cmd := exec.Command("go", append(args, pkgs...)...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go %s: %w\n%s", strings.Join(cmd.Args[1:], " "), err, b)
	}
	paths := make(map[string]string, len(pkgs))
	for _, p := range pkgs {
		paths[p] = filepath.Join(dir, p[strings.LastIndexByte(p, '/')+1:])
	}
	return paths, nil
}

// Env is the environment for a process a test runs: the test's own, extra
// (KEY=value), and, when the binaries have -race, GORACE with
// atexit_sleep_ms=0 added. A race-enabled binary otherwise sleeps a second
// on every exit with status 0 (to let late race reports print), and tests
// run the CLI and stop processes many times.
func Env(extra ...string) []string {
	env := os.Environ()
	if raceEnabled {
		env = append(env, "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	}
	return append(env, extra...)
}

// Cleanup removes the built binaries.
func Cleanup() {
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
}

// ModuleRoot is the directory holding go.mod.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}

// Mesh is one test's set of processes; all are stopped when the test ends.
type Mesh struct {
	T    testing.TB
	Bins Bins
}

// New builds (once) and returns a Mesh for t.
func New(t testing.TB) *Mesh {
	t.Helper()
	b, err := Build()
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	return &Mesh{T: t, Bins: b}
}

// Proc is a running process with its output captured.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

// Start runs a process; it is killed when the test ends if still running.
func (m *Mesh) Start(name, bin string, env []string, args ...string) *Proc {
	m.T.Helper()
	p := &Proc{Name: name, out: &syncBuffer{}, done: make(chan struct{})}
	p.Cmd = exec.Command(bin, args...)
	p.Cmd.Stdout, p.Cmd.Stderr = p.out, p.out
	p.Cmd.Env = Env(env...)
	if err := p.Cmd.Start(); err != nil {
		m.T.Fatalf("start %s: %v", name, err)
	}
	go func() { p.err = p.Cmd.Wait(); close(p.done) }()
	m.T.Cleanup(func() {
		p.Cmd.Process.Kill()
		<-p.done
		// A process built with -race reports a data race on its output
		// and carries on: the test must not.
		if strings.Contains(p.Output(), "WARNING: DATA RACE") {
			m.T.Errorf("%s reported a data race", name)
		}
		if m.T.Failed() {
			m.T.Logf("--- output of %s ---\n%s", name, p.Output())
		}
	})
	return p
}

// Output is everything the process wrote so far.
func (p *Proc) Output() string { return p.out.String() }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// ExitCode waits up to d for the process to exit and returns its code.
func (p *Proc) ExitCode(t testing.TB, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("%s did not exit within %s; output:\n%s", p.Name, d, p.Output())
	}
	return p.Cmd.ProcessState.ExitCode()
}

// Signal sends sig.
func (p *Proc) Signal(sig syscall.Signal) { _ = p.Cmd.Process.Signal(sig) }

// WaitLog waits for a line matching re and returns its submatches.
func (p *Proc) WaitLog(t testing.TB, re *regexp.Regexp, d time.Duration) []string {
	t.Helper()
	var m []string
	Eventually(t, d, func() (bool, string) {
		m = re.FindStringSubmatch(p.Output())
		select {
		case <-p.done:
			if m == nil {
				t.Fatalf("%s exited before logging %q:\n%s", p.Name, re, p.Output())
			}
		default:
		}
		return m != nil, "output of " + p.Name + ":\n" + p.Output()
	})
	return m
}

// Eventually polls cond every 20 ms until it holds or d passes, then fails
// the test with the last thing cond reported.
func Eventually(t testing.TB, d time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s; last seen: %s", d, last)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

// Eventually is the Mesh's shorthand.
func (m *Mesh) Eventually(d time.Duration, cond func() (bool, string)) {
	m.T.Helper()
	Eventually(m.T, d, cond)
}

// Control is a running `weft control`.
type Control struct {
	*Proc
	Addr    string
	URL     string // http://Addr, or https://Addr when its API serves TLS
	DataDir string
	client  *http.Client
}

var controlRE = regexp.MustCompile(`msg="control plane serving".* addr=(\S+) api=(\S+)`)

// Control starts a control plane on an ephemeral port with a fresh data
// dir, plus any extra flags, and waits until it is ready.
func (m *Mesh) Control(extra ...string) *Control {
	m.T.Helper()
	return m.ControlAt("127.0.0.1:0", m.T.TempDir(), extra...)
}

// ControlAt starts a control plane on addr with dataDir.
func (m *Mesh) ControlAt(addr, dataDir string, extra ...string) *Control {
	m.T.Helper()
	args := append([]string{"control", "--listen", addr, "--data-dir", dataDir}, extra...)
	p := m.Start("control", m.Bins.Weft, nil, args...)
	got := p.WaitLog(m.T, controlRE, 30*time.Second)
	c := &Control{Proc: p, Addr: got[1], URL: got[2], DataDir: dataDir, client: Client}
	if strings.HasPrefix(c.URL, "https://") {
		// checked against the CA the control plane left for this user
		cfg, _, err := api.ClientTLS(c.Addr, api.TLSOptions{})
		if err != nil {
			m.T.Fatalf("control plane at %s: %v", c.URL, err)
		}
		tr := &http.Transport{Proxy: nil, TLSClientConfig: cfg}
		m.T.Cleanup(tr.CloseIdleConnections)
		c.client = &http.Client{Timeout: 30 * time.Second, Transport: tr}
	}
	m.Eventually(30*time.Second, func() (bool, string) {
		code, body := c.Get("/readyz")
		return code == 200, fmt.Sprintf("readyz %d %s", code, body)
	})
	return c
}

// Get returns the status and body of GET path on the control plane,
// without the token.
func (c *Control) Get(path string) (int, string) {
	resp, err := c.client.Get(c.URL + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Target is what sidecars and the CLI are given as --control: the address, or the
// URL when the API serves TLS.
func (c *Control) Target() string {
	if strings.HasPrefix(c.URL, "https://") {
		return c.URL
	}
	return c.Addr
}

// Sidecar is a running `weft sidecar` (or `weft run`).
type Sidecar struct {
	*Proc
	Outbound, Inbound, Admin string
}

var sidecarRE = regexp.MustCompile(`msg="sidecar started".* outbound=(\S+) inbound=(\S*) admin=(\S+)`)

// Sidecar starts `weft sidecar` against cp with ephemeral ports and the
// given flags, and waits until its /readyz is 200.
func (m *Mesh) Sidecar(cp *Control, args ...string) *Sidecar {
	m.T.Helper()
	s := m.SidecarNoWait(cp.Target(), args...)
	s.WaitReady(m.T)
	return s
}

// SidecarNoWait starts a sidecar against controlAddr and returns once its
// listeners are bound.
func (m *Mesh) SidecarNoWait(controlAddr string, args ...string) *Sidecar {
	m.T.Helper()
	full := append([]string{"sidecar", "--control", controlAddr,
		"--outbound", "127.0.0.1:0", "--inbound", "127.0.0.1:0", "--admin", "127.0.0.1:0"}, args...)
	return m.startSidecar("sidecar", full)
}

// Run starts `weft run` with sidecar flags, then `--` and the command.
func (m *Mesh) Run(cp *Control, sidecarArgs []string, command ...string) *Sidecar {
	m.T.Helper()
	full := append([]string{"run", "--control", cp.Target(),
		"--outbound", "127.0.0.1:0", "--inbound", "127.0.0.1:0", "--admin", "127.0.0.1:0"}, sidecarArgs...)
	full = append(append(full, "--"), command...)
	return m.startSidecar("run", full)
}

func (m *Mesh) startSidecar(name string, args []string) *Sidecar {
	p := m.Start(name+" "+strings.Join(args[1:], " "), m.Bins.Weft, nil, args...)
	got := p.WaitLog(m.T, sidecarRE, 30*time.Second)
	return &Sidecar{Proc: p, Outbound: got[1], Inbound: got[2], Admin: got[3]}
}

// WaitReady waits for /readyz to answer 200.
func (s *Sidecar) WaitReady(t testing.TB) {
	t.Helper()
	Eventually(t, 30*time.Second, func() (bool, string) {
		code, body := Get("http://" + s.Admin + "/readyz")
		return code == 200, fmt.Sprintf("readyz %d %s", code, body)
	})
}

// App is a running test app.
type App struct {
	*Proc
	Addr, Port string
}

var appRE = regexp.MustCompile(`testapp listening on (\S+)`)

// App starts the test app answering as name.
func (m *Mesh) App(name string, extra ...string) *App {
	m.T.Helper()
	p := m.Start("app "+name, m.Bins.TestApp, nil, append([]string{"--name", name, "--listen", "127.0.0.1:0"}, extra...)...)
	got := p.WaitLog(m.T, appRE, 30*time.Second)
	_, port, _ := net.SplitHostPort(got[1])
	return &App{Proc: p, Addr: got[1], Port: port}
}

// Weft runs a weft CLI command to completion and returns its output and exit code.
func (m *Mesh) Weft(args ...string) (stdout, stderr string, code int) {
	m.T.Helper()
	return m.WeftEnv(nil, args...)
}

// WeftEnv is Weft with env (KEY=value) added to the command's environment
// only, so that a parallel test need not change its own (t.Setenv).
func (m *Mesh) WeftEnv(env []string, args ...string) (stdout, stderr string, code int) {
	m.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, m.Bins.Weft, args...)
	cmd.Env = Env(env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if err != nil && cmd.ProcessState == nil {
		m.T.Fatalf("weft %v: %v", args, err)
	}
	return o.String(), e.String(), cmd.ProcessState.ExitCode()
}

// Client is an HTTP client that never uses the environment's proxy and
// keeps connections alive.
var Client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 16}}

// Get returns the status and body of GET url (status 0 on a transport error, body then the error).
func Get(url string) (int, string) {
	resp, err := Client.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// API sends a request to the control plane's API with the token it left
// for this user (api.LoadToken), and returns the status and body.
func (c *Control) API(method, path, contentType string, body io.Reader) (int, string) {
	req, err := http.NewRequest(method, c.URL+path, body)
	if err != nil {
		return 0, err.Error()
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Authorization", "Bearer "+api.LoadToken(c.Addr))
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Via sends GET http://<host><path> in proxy form through the outbound
// listener and returns the response with its body read.
func Via(outbound, host, path string) (*http.Response, string, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+host+path, nil)
	return ViaRequest(outbound, req)
}

// ViaRequest sends req in proxy form through outbound.
func ViaRequest(outbound string, req *http.Request) (*http.Response, string, error) {
	conn, err := net.DialTimeout("tcp", outbound, 5*time.Second)
	if err != nil {
		return nil, "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if err := req.WriteProxy(conn); err != nil {
		return nil, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// ProxyClient is a keep-alive client that sends every request through
// outbound in proxy form, as an app with HTTP_PROXY does.
func ProxyClient(outbound string) *http.Client {
	u := &url.URL{Scheme: "http", Host: outbound}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(u), MaxIdleConnsPerHost: 16}}
}

// Upstream waits for the sidecar's upstream listener bound to service
// (--upstream SERVICE=...) and returns its address.
func (s *Sidecar) Upstream(t testing.TB, service string) string {
	t.Helper()
	re := regexp.MustCompile(`msg="upstream listener" .*upstream_service=` + regexp.QuoteMeta(service) + ` address=(\S+)`)
	return s.WaitLog(t, re, 10*time.Second)[1]
}

// Metric returns the value of one series of the sidecar's /metrics, named
// with its labels as Prometheus prints them (labels sorted), e.g.
// `weft_tcp_connections_total{direction="outbound",service="echo"}`; -1
// when the sidecar does not have it.
func (s *Sidecar) Metric(series string) float64 {
	_, body := Get("http://" + s.Admin + "/metrics")
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			var f float64
			fmt.Sscanf(v, "%g", &f)
			return f
		}
	}
	return -1
}
