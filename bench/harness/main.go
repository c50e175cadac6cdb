// Command harness runs the Weft benchmark: it starts the backend, the proxy
// pairs (Weft, nginx, HAProxy) on loopback, drives the same load through each
// path with wrk (max throughput) and bench/loadgen (fixed rate latency),
// samples CPU time and memory of every proxy process from /proc, and writes a
// markdown report, a JSON file with every run and a PNG chart.
//
// It is started by bench/run.sh, which installs the tools and builds the
// binaries; run that instead of this program directly.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"

	"github.com/weftmesh/weft/bench/benchkit"
)

// ---------------------------------------------------------------- config

type config struct {
	benchDir    string
	repoDir     string
	binDir      string
	workDir     string
	resultsDir  string
	runs        int
	latRuns     int // fixed-rate runs per path (default: runs)
	dur         time.Duration
	latDur      time.Duration
	warm        time.Duration
	rate        float64
	latConns    int
	conns       []int
	paths       []string
	lgCPU       string
	srvCPU      string
	command     string
	weftSkip    string
	weftSidecar string // "slim" (weft-sidecar, built with -tags sidecaronly) or "full"
	weftWait    time.Duration
	weftApply   string // a file of resources weft apply takes before the sidecars start ("": none)
	weftArgs    string // more flags for both sidecars, %w the work dir and %n the sidecar's name (e.g. --access-log %w/%n.log)
	foreignMax  float64
	quietWait   time.Duration
	retries     int

	// The Weft control plane, shared by the weft and weft-mtls pairs
	// (started by the first of them).
	ctl     *proc
	ctlAddr string
}

// ---------------------------------------------------------------- processes

type proc struct {
	name string
	cpu  string // the CPU it is pinned to
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

var (
	procsMu sync.Mutex
	procs   []*proc
)

func (c *config) pinned(cpu string, bin string, args ...string) *exec.Cmd {
	if cpu == "" {
		return exec.Command(bin, args...)
	}
	return exec.Command("taskset", append([]string{"-c", cpu, bin}, args...)...)
}

// start launches a long-running server process in its own process group,
// pinned to the server CPU, with output going to a log file.
func (c *config) start(name, bin string, args ...string) (*proc, error) {
	return c.startOn(c.srvCPU, name, bin, args...)
}

// startOn is start pinned to the given CPU.
func (c *config) startOn(cpu, name, bin string, args ...string) (*proc, error) {
	return c.startOnEnv(cpu, nil, name, bin, args...)
}

// startOnEnv is startOn with variables added to the environment (kept out
// of the log line: a join token is a secret).
func (c *config) startOnEnv(cpu string, env []string, name, bin string, args ...string) (*proc, error) {
	logPath := filepath.Join(c.workDir, "logs", name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := c.pinned(cpu, bin, args...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cpu: cpu, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	procsMu.Lock()
	procs = append(procs, p)
	procsMu.Unlock()
	logf("started %-16s pid %d on CPU %s: %s %s", name, cmd.Process.Pid, dash(cpu), filepath.Base(bin), strings.Join(args, " "))
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) logTail(n int) string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// stop terminates the process group of p (p and its children only).
func (p *proc) stop() {
	if !p.alive() {
		return
	}
	pgid := p.pid()
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(2 * time.Second):
		}
	}
}

func stopAll() {
	procsMu.Lock()
	ps := append([]*proc(nil), procs...)
	procs = nil
	procsMu.Unlock()
	for i := len(ps) - 1; i >= 0; i-- {
		ps[i].stop()
	}
}

// ---------------------------------------------------------------- /proc

var clkTck = 100.0

// treePIDs returns root and all its descendants.
func treePIDs(root int) []int {
	parent := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f := statFields(pid)
		if len(f) < 2 {
			continue
		}
		pp, _ := strconv.Atoi(f[1])
		parent[pid] = pp
	}
	out := []int{root}
	for changed := true; changed; {
		changed = false
		for pid, pp := range parent {
			if contains(out, pp) && !contains(out, pid) {
				out = append(out, pid)
				changed = true
			}
		}
	}
	return out
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// statFields returns the fields of /proc/pid/stat after the command name,
// so index 0 is field 3 (state), index 11 is utime (14), index 12 stime (15).
func statFields(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

// cpuTicks is utime+stime (clock ticks) summed over p's process tree.
func cpuTicks(p *proc) float64 {
	var t float64
	for _, pid := range treePIDs(p.pid()) {
		f := statFields(pid)
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseFloat(f[11], 64)
		s, _ := strconv.ParseFloat(f[12], 64)
		t += u + s
	}
	return t
}

// memKB returns VmRSS and VmHWM (kB) summed over p's process tree.
func memKB(p *proc) (rss, hwm int64) {
	for _, pid := range treePIDs(p.pid()) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			v, _ := strconv.ParseInt(f[1], 10, 64)
			switch f[0] {
			case "VmRSS:":
				rss += v
			case "VmHWM:":
				hwm += v
			}
		}
	}
	return
}

// cpuStat returns the task (user+nice+system), irq+softirq and steal ticks
// of one CPU from /proc/stat.
func cpuStat(cpu string) (task, irq, steal float64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil || cpu == "" {
		return 0, 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || f[0] != "cpu"+cpu {
			continue
		}
		var v [8]float64
		for i := range v {
			v[i], _ = strconv.ParseFloat(f[i+1], 64)
		}
		// user nice system idle iowait irq softirq steal
		return v[0] + v[1] + v[2], v[5] + v[6], v[7]
	}
	return 0, 0, 0
}

// hexPort extracts the port of a /proc/net/tcp "ADDR:PORT" field.
func hexPort(f string) int {
	i := strings.LastIndexByte(f, ':')
	if i < 0 {
		return 0
	}
	p, _ := strconv.ParseInt(f[i+1:], 16, 32)
	return int(p)
}

// timeWait counts loopback TCP sockets in TIME_WAIT on this run's ports: a proxy that does not
// reuse upstream connections leaves one behind per request.
func timeWait() int {
	n := 0
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) < 4 || fs[3] != "06" {
				continue
			}
			// Count only connections to or from a port of this run.
			if usedPorts[hexPort(fs[1])] || usedPorts[hexPort(fs[2])] {
				n++
			}
		}
	}
	return n
}

// ---------------------------------------------------------------- paths

type bpath struct {
	Name  string  `json:"name"`
	Title string  `json:"title"`
	Addr  string  `json:"addr"`
	Host  string  `json:"host"` // the Host header of every request (the service the Weft consumer routes to)
	Hops  []*proc `json:"-"`
	// HopNames are the hops in request order (front first).
	HopNames []string          `json:"hops"`
	Skip     string            `json:"skipped,omitempty"`
	Lat      []latRun          `json:"latency_runs"`
	Tput     map[int][]tputRun `json:"throughput_runs"`
	PeakRSS  []int64           `json:"peak_rss_kb"`
}

type loadgenResult struct {
	TargetRPS   float64 `json:"target_rps"`
	Released    int     `json:"released"`
	OK          int     `json:"ok"`
	Errors      int     `json:"errors"`
	Non200      int     `json:"non_200"`
	Dropped     int     `json:"dropped"`
	AchievedRPS float64 `json:"achieved_rps"`
	P50US       float64 `json:"p50_us"`
	P90US       float64 `json:"p90_us"`
	P99US       float64 `json:"p99_us"`
	P999US      float64 `json:"p999_us"`
	MaxUS       float64 `json:"max_us"`
	LagP99US    float64 `json:"lag_p99_us"`
	FirstError  string  `json:"first_error,omitempty"`
}

type latRun struct {
	Round        int           `json:"round"` // runs of the same round are adjacent in time
	Loadgen      loadgenResult `json:"loadgen"`
	Samples      []float64     `json:"-"` // every measured latency, µs, sorted
	HopCPUUS     []float64     `json:"hop_cpu_us_per_req"`
	BackendCPUUS float64       `json:"backend_cpu_us_per_req"`
	HopRSSKB     []int64       `json:"hop_rss_kb_max_sample"`
	ForeignPct   float64       `json:"foreign_cpu_pct_on_server_cpu"`
	ForeignLGPct float64       `json:"foreign_cpu_pct_on_loadgen_cpu"`
	SoftirqPct   float64       `json:"irq_softirq_pct_on_server_cpu"`
}

type tputRun struct {
	Conns        int       `json:"conns"`
	RPS          float64   `json:"rps"`
	Requests     int64     `json:"requests"`
	Errors       int64     `json:"errors"`
	P50US        float64   `json:"wrk_p50_us"`
	P99US        float64   `json:"wrk_p99_us"`
	HopCPUUS     []float64 `json:"hop_cpu_us_per_req"`
	BackendCPUUS float64   `json:"backend_cpu_us_per_req"`
	ForeignPct   float64   `json:"foreign_cpu_pct_on_server_cpu"`
	ForeignLGPct float64   `json:"foreign_cpu_pct_on_loadgen_cpu"`
	SoftirqPct   float64   `json:"irq_softirq_pct_on_server_cpu"`
	StealPct     float64   `json:"steal_pct_on_server_cpu"`
	NewTimeWait  int       `json:"new_time_wait_sockets"`
}

// ---------------------------------------------------------------- helpers

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "[bench %s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
}

var usedPorts = map[int]bool{}

// freePort asks the kernel for a free loopback port (and never hands out the
// same one twice in a run).
func freePort() (int, error) {
	for i := 0; i < 50; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !usedPorts[p] {
			usedPorts[p] = true
			return p, nil
		}
	}
	return 0, errors.New("no free port")
}

func addr(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }

var httpc = &http.Client{
	Timeout:   2 * time.Second,
	Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
}

// probe does GET http://addr/path with the given Host header.
func probe(a, host, path string) (int, int, error) {
	return probeWith(httpc, "http", a, host, path)
}

// probeWith is probe with a client and a scheme (https for a TLS hop).
func probeWith(hc *http.Client, scheme, a, host, path string) (int, int, error) {
	req, _ := http.NewRequest("GET", scheme+"://"+a+path, nil)
	if host != "" {
		req.Host = host
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	n, _ := io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, int(n), nil
}

// waitOK polls until GET returns 200 (and, if wantLen >= 0, that many body
// bytes) or the deadline passes. It gives up early if one of ps died.
func waitOK(a, host, path string, wantLen int, limit time.Duration, ps ...*proc) error {
	return waitOKWith(httpc, "http", a, host, path, wantLen, limit, ps...)
}

// waitOKWith is waitOK with a client and a scheme.
func waitOKWith(hc *http.Client, scheme, a, host, path string, wantLen int, limit time.Duration, ps ...*proc) error {
	deadline := time.Now().Add(limit)
	var last string
	for {
		code, n, err := probeWith(hc, scheme, a, host, path)
		switch {
		case err != nil:
			last = err.Error()
		case code == 200 && (wantLen < 0 || n == wantLen):
			return nil
		default:
			last = fmt.Sprintf("HTTP %d, %d body bytes", code, n)
		}
		for _, p := range ps {
			if !p.alive() {
				return fmt.Errorf("%s exited (%v); log tail:\n%s", p.name, p.err, p.logTail(15))
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("GET %s://%s%s (Host: %s) not OK after %s: %s", scheme, a, path, host, limit, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func runCmd(ctx context.Context, name string, args ...string) (string, error) {
	out, _, err := runCmdU(ctx, name, args...)
	return out, err
}

// runCmdU also returns the CPU ticks the command used.
func runCmdU(ctx context.Context, name string, args ...string) (string, float64, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 2 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), childTicks(cmd.ProcessState), err
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// ---------------------------------------------------------------- setup

// hopConf is what a hop's config template gets. TLSListen: the hop takes
// TLS (the back hop of a TLS pair); TLSUpstream: it speaks TLS to the next
// hop (the front hop of a TLS pair).
type hopConf struct {
	Listen, Upstream, Dir  string
	TLSListen, TLSUpstream bool
	TLS                    *benchkit.TLSFiles
	TLSName                string // the back hop's name in its certificate
}

func (c *config) render(tmplName, dir string, hc hopConf) (string, error) {
	t, err := template.ParseFiles(filepath.Join(c.benchDir, "configs", tmplName))
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return "", err
	}
	// nginx workers run as nobody; let them use their temp dirs.
	_ = os.Chmod(dir, 0o777)
	out := filepath.Join(dir, strings.TrimSuffix(tmplName, ".tmpl"))
	var b bytes.Buffer
	if err := t.Execute(&b, hc); err != nil {
		return "", err
	}
	return out, os.WriteFile(out, b.Bytes(), 0o644)
}

// setupPair starts a two-hop proxy pair of nginx or haproxy in front of the
// backend and returns the front address. Kinds nginx-tls and haproxy-tls
// speak mutual TLS 1.3 between the two hops, with certificates made for the
// run.
func (c *config) setupPair(kind string, backendAddr string) (*bpath, error) {
	base, withTLS := strings.CutSuffix(kind, "-tls")
	var certs *benchkit.TLSFiles
	var tlsProbe *http.Client
	if withTLS {
		var err error
		if certs, err = benchkit.MakeCerts(filepath.Join(c.workDir, kind+"-certs")); err != nil {
			return nil, err
		}
		if tlsProbe, err = httpsClient(certs); err != nil {
			return nil, err
		}
	}
	front, err := freePort()
	if err != nil {
		return nil, err
	}
	back, err := freePort()
	if err != nil {
		return nil, err
	}
	bp := &bpath{Name: kind, Addr: addr(front)}
	hops := []struct{ name, listen, up string }{
		{kind + "-front", addr(front), addr(back)},
		{kind + "-back", addr(back), backendAddr},
	}
	// Start the back hop first so the front's upstream exists.
	for i := len(hops) - 1; i >= 0; i-- {
		h := hops[i]
		dir := filepath.Join(c.workDir, h.name)
		hc := hopConf{Listen: h.listen, Upstream: h.up, Dir: dir}
		suffix := ""
		if withTLS {
			suffix = "-tls"
			hc.TLS, hc.TLSName = certs, benchkit.TLSServerName
			hc.TLSListen, hc.TLSUpstream = i == 1, i == 0
		}
		var p *proc
		switch base {
		case "nginx":
			cfg, err := c.render("nginx"+suffix+".conf.tmpl", dir, hc)
			if err != nil {
				return nil, err
			}
			p, err = c.start(h.name, "nginx", "-p", dir+"/", "-c", cfg, "-e", filepath.Join(dir, "error.log"))
			if err != nil {
				return nil, err
			}
		case "haproxy":
			cfg, err := c.render("haproxy"+suffix+".cfg.tmpl", dir, hc)
			if err != nil {
				return nil, err
			}
			p, err = c.start(h.name, "haproxy", "-db", "-f", cfg)
			if err != nil {
				return nil, err
			}
		}
		bp.Hops = append([]*proc{p}, bp.Hops...)
		if hc.TLSListen {
			// The back hop takes only TLS with a client certificate: ask it
			// as the front hop will.
			if err := waitOKWith(tlsProbe, "https", h.listen, "backend", "/", 1024, 15*time.Second, p); err != nil {
				return bp, err
			}
			continue
		}
		if err := waitOK(h.listen, "backend", "/", 1024, 15*time.Second, p); err != nil {
			return bp, err
		}
	}
	for _, p := range bp.Hops {
		bp.HopNames = append(bp.HopNames, p.name)
	}
	return bp, nil
}

// control starts the Weft control plane once (both Weft pairs share it)
// and applies -weft-apply.
func (c *config) control() (*proc, error) {
	if c.ctl != nil {
		return c.ctl, nil
	}
	weft := filepath.Join(c.binDir, "weft")
	cport, err := freePort()
	if err != nil {
		return nil, err
	}
	dataDir := filepath.Join(c.workDir, "weft-data")
	// The control plane is not on the request path: keep it off the server
	// CPU (it does background work that would slow every path down).
	ctl, err := c.startOn(c.lgCPU, "weft-control", weft, "control", "--listen", addr(cport), "--data-dir", dataDir)
	if err != nil {
		return nil, err
	}
	if err := waitOK(addr(cport), "", "/readyz", -1, 30*time.Second, ctl); err != nil {
		return nil, fmt.Errorf("control plane not ready: %w", err)
	}
	if c.weftApply != "" {
		// Resources in force from the sidecars' first push (routes,
		// policies): the path measured with the feature on.
		out, err := exec.Command(weft, "apply", "-f", c.weftApply, "--control", addr(cport)).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("weft apply -f %s: %v: %s", c.weftApply, err, out)
		}
	}
	c.ctl, c.ctlAddr = ctl, addr(cport)
	return ctl, nil
}

// setupWeft starts a provider and a consumer sidecar (and the control
// plane, if not yet). With mtls (path weft-mtls) both sidecars get a join
// token, so a workload certificate, and the provider's inbound takes only
// mutual TLS (--mtls strict); its service is backend-mtls, so the plain
// pair's consumer never reaches it.
func (c *config) setupWeft(backendPort int, mtls bool) (*bpath, error) {
	name, service, client := "weft", "backend", "bench-client"
	if mtls {
		name, service, client = "weft-mtls", "backend-mtls", "bench-client-mtls"
	}
	bp := &bpath{Name: name, Host: service}
	weft := filepath.Join(c.binDir, "weft")
	// The sidecars run from weft-sidecar: the slim build by default, a copy
	// of the full binary with WEFT_SIDECAR=full.
	sidecar := filepath.Join(c.binDir, "weft-sidecar")
	ports := make([]int, 5)
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return bp, err
		}
		ports[i] = p
	}
	pOut, pIn, pAdm, cOut, cAdm := ports[0], ports[1], ports[2], ports[3], ports[4]
	ctl, err := c.control()
	if err != nil {
		return bp, err
	}
	var provEnv, consEnv, provMTLS []string
	if mtls {
		// weft token create is in the full binary; the sidecars take the
		// token from the environment (kept out of ps).
		pt, err := benchkit.JoinToken(weft, c.ctlAddr, service)
		if err != nil {
			return bp, err
		}
		ct, err := benchkit.JoinToken(weft, c.ctlAddr, client)
		if err != nil {
			return bp, err
		}
		provEnv, consEnv = []string{"WEFT_JOIN_TOKEN=" + pt}, []string{"WEFT_JOIN_TOKEN=" + ct}
		provMTLS = []string{"--mtls", "strict"}
	}
	provName, consName := name+"-provider", name+"-consumer"
	prov, err := c.startOnEnv(c.srvCPU, provEnv, provName, sidecar, append(append([]string{"sidecar", "--service", service,
		"--app-port", strconv.Itoa(backendPort), "--control", c.ctlAddr,
		"--outbound", addr(pOut), "--inbound", addr(pIn), "--admin", addr(pAdm)}, provMTLS...), c.sidecarArgs(provName)...)...)
	if err != nil {
		return bp, err
	}
	cons, err := c.startOnEnv(c.srvCPU, consEnv, consName, sidecar, append([]string{"sidecar", "--service", client,
		"--control", c.ctlAddr, "--outbound", addr(cOut), "--admin", addr(cAdm)}, c.sidecarArgs(consName)...)...)
	if err != nil {
		return bp, err
	}
	bp.Hops = []*proc{cons, prov}
	bp.HopNames = []string{consName, provName}
	bp.Addr = addr(cOut)
	if err := waitOK(addr(pAdm), "", "/readyz", -1, 20*time.Second, prov, ctl); err != nil {
		return bp, fmt.Errorf("provider sidecar not ready: %w", err)
	}
	if err := waitOK(addr(cAdm), "", "/readyz", -1, 20*time.Second, cons, ctl); err != nil {
		return bp, fmt.Errorf("consumer sidecar not ready: %w", err)
	}
	if mtls {
		// Measure only once the consumer's connections really are mutual
		// TLS: the provider has taken one as such.
		err := benchkit.WaitMTLS(addr(pAdm), c.weftWait, func() error {
			for _, p := range []*proc{cons, prov, ctl} {
				if !p.alive() {
					return fmt.Errorf("%s exited (%v); log tail:\n%s", p.name, p.err, p.logTail(15))
				}
			}
			code, n, err := probe(bp.Addr, service, "/")
			if err == nil && (code != 200 || n != 1024) {
				err = fmt.Errorf("HTTP %d, %d body bytes", code, n)
			}
			return err
		})
		if err != nil {
			return bp, fmt.Errorf("consumer sidecar does not route to %s over mutual TLS: %w", service, err)
		}
		logf("%s: the provider takes the consumer's connections as mutual TLS", name)
	} else if err := waitOK(bp.Addr, service, "/", 1024, c.weftWait, cons, prov, ctl); err != nil {
		return bp, fmt.Errorf("consumer sidecar does not route to %s: %w", service, err)
	}
	if c.weftApply != "" && !mtls {
		// Measure only with the resources in force: routes show in the
		// consumer's /config. (Resources name the service backend, not
		// the weft-mtls pair's backend-mtls.)
		want, _ := os.ReadFile(c.weftApply)
		if bytes.Contains(want, []byte("kind: HTTPRoute")) {
			resp, err := http.Get("http://" + addr(cAdm) + "/config")
			if err != nil {
				return bp, fmt.Errorf("consumer /config: %w", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !bytes.Contains(body, []byte(`"routes"`)) {
				return bp, fmt.Errorf("%s applied, but the consumer's /config shows no routes", c.weftApply)
			}
		}
	}
	return bp, nil
}

// ---------------------------------------------------------------- measuring

var (
	reReqs    = regexp.MustCompile(`(\d+) requests in ([\d.]+)(\w+),`)
	reRPS     = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	reNon2xx  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	reSockErr = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	reLatPct  = regexp.MustCompile(`(?m)^\s+(50|99)\.000%\s+([\d.]+)(us|ms|s)\s*$|^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$`)
)

func toUS(v float64, unit string) float64 {
	switch unit {
	case "ms":
		return v * 1e3
	case "s":
		return v * 1e6
	}
	return v
}

type cpuSnap struct {
	hops    []float64
	backend float64
	all     float64 // every process this harness started on the server CPU
	lgOurs  float64 // every process this harness started on the load generator CPU
	task    float64
	irq     float64
	steal   float64
	lgTask  float64 // user+nice+system ticks of the load generator CPU
	self    float64 // this harness's own CPU ticks
}

func selfTicks() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return rusageTicks(&ru)
}

func rusageTicks(ru *syscall.Rusage) float64 {
	us := ru.Utime.Sec*1e6 + int64(ru.Utime.Usec) + ru.Stime.Sec*1e6 + int64(ru.Stime.Usec)
	return float64(us) / 1e6 * clkTck
}

func childTicks(ps *os.ProcessState) float64 {
	if ps == nil {
		return 0
	}
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return rusageTicks(ru)
	}
	return 0
}

// foreignLG is the share of the load generator CPU used by processes other
// than the generator and this harness, in percent of the wall time.
func foreignLG(a, b cpuSnap, child float64, wall time.Duration) float64 {
	f := (b.lgTask - a.lgTask) - child - (b.self - a.self) - (b.lgOurs - a.lgOurs)
	return pctOf(max(f, 0), wall)
}

// waitQuiet waits (at most quietWait) until, over one second, processes this
// harness did not start use less than foreignMax % of a CPU on the two CPUs
// the benchmark uses.
func (c *config) waitQuiet(bp *bpath, backend *proc) {
	if c.quietWait <= 0 || c.srvCPU == "" {
		return
	}
	deadline := time.Now().Add(c.quietWait)
	said := false
	for {
		a := c.snap(bp, backend)
		time.Sleep(time.Second)
		b := c.snap(bp, backend)
		f := foreign(a, b, time.Second) + foreignLG(a, b, 0, time.Second)
		if f < c.foreignMax {
			if said {
				logf("  quiet again (%.0f%%)", f)
			}
			return
		}
		if time.Now().After(deadline) {
			logf("  still %.0f%% busy with other processes after %s: measuring anyway", f, c.quietWait)
			return
		}
		if !said {
			logf("  other processes are using %.0f%% of CPUs %s,%s: waiting up to %s for them to finish", f, c.lgCPU, c.srvCPU, c.quietWait)
			said = true
		}
	}
}

func (c *config) snap(bp *bpath, backend *proc) cpuSnap {
	s := cpuSnap{backend: cpuTicks(backend)}
	for _, p := range bp.Hops {
		s.hops = append(s.hops, cpuTicks(p))
	}
	procsMu.Lock()
	for _, p := range procs {
		if p.cpu == c.lgCPU && c.lgCPU != c.srvCPU {
			s.lgOurs += cpuTicks(p)
		} else {
			s.all += cpuTicks(p)
		}
	}
	procsMu.Unlock()
	s.task, s.irq, s.steal = cpuStat(c.srvCPU)
	s.lgTask, _, _ = cpuStat(c.lgCPU)
	s.self = selfTicks()
	return s
}

// perReq converts tick deltas to µs of CPU per request.
func perReq(a, b cpuSnap, n float64) (hops []float64, backend float64) {
	if n <= 0 {
		n = 1
	}
	for i := range a.hops {
		hops = append(hops, (b.hops[i]-a.hops[i])/clkTck*1e6/n)
	}
	return hops, (b.backend - a.backend) / clkTck * 1e6 / n
}

// foreign is the share of the server CPU used by processes this harness did
// not start, in percent of the wall time (interrupt time is not included).
func foreign(a, b cpuSnap, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	f := (b.task - a.task) - (b.all - a.all)
	if f < 0 {
		f = 0
	}
	return f / clkTck / wall.Seconds() * 100
}

func pctOf(ticks float64, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return ticks / clkTck / wall.Seconds() * 100
}

func (c *config) wrk(bp *bpath, backend *proc, conns int, d time.Duration, record bool) (tputRun, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	args := []string{"-t1", fmt.Sprintf("-c%d", conns), fmt.Sprintf("-d%ds", int(d.Seconds())),
		"--timeout", "2s", "--latency", "-H", "Host: " + bp.Host, "http://" + bp.Addr + "/"}
	bin := "wrk"
	if c.lgCPU != "" {
		args = append([]string{"-c", c.lgCPU, "wrk"}, args...)
		bin = "taskset"
	}
	tw0 := timeWait()
	before := c.snap(bp, backend)
	t0 := time.Now()
	out, child, err := runCmdU(ctx, bin, args...)
	wall := time.Since(t0)
	after := c.snap(bp, backend)
	tw1 := timeWait()
	r := tputRun{Conns: conns}
	if err != nil {
		return r, fmt.Errorf("wrk: %v: %s", err, out)
	}
	m := reReqs.FindStringSubmatch(out)
	mr := reRPS.FindStringSubmatch(out)
	if m == nil || mr == nil {
		return r, fmt.Errorf("cannot parse wrk output: %s", out)
	}
	r.Requests, _ = strconv.ParseInt(m[1], 10, 64)
	r.RPS, _ = strconv.ParseFloat(mr[1], 64)
	if m := reNon2xx.FindStringSubmatch(out); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		r.Errors += n
	}
	if m := reSockErr.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			r.Errors += n
		}
	}
	for _, m := range reLatPct.FindAllStringSubmatch(out, -1) {
		p, v, u := m[1]+m[4], m[2]+m[5], m[3]+m[6]
		f, _ := strconv.ParseFloat(v, 64)
		if p == "50" {
			r.P50US = toUS(f, u)
		} else {
			r.P99US = toUS(f, u)
		}
	}
	r.HopCPUUS, r.BackendCPUUS = perReq(before, after, float64(r.Requests))
	r.ForeignPct = foreign(before, after, wall)
	r.ForeignLGPct = foreignLG(before, after, child, wall)
	r.SoftirqPct = pctOf(after.irq-before.irq, wall)
	r.StealPct = pctOf(after.steal-before.steal, wall)
	r.NewTimeWait = max(0, tw1-tw0)
	if record {
		logf("  %-8s wrk c=%-3d %9.0f req/s  errors=%d  cpu/req hops=%s backend=%.1fus  foreign=%.0f%%/%.0f%% new-TIME_WAIT=%d",
			bp.Name, conns, r.RPS, r.Errors, fmtUS(r.HopCPUUS), r.BackendCPUUS, r.ForeignLGPct, r.ForeignPct, r.NewTimeWait)
	}
	for i, v := range r.HopCPUUS {
		if v == 0 && r.Requests > 1000 {
			logf("  warning: %s used no CPU during the run: is traffic really going through it?", bp.HopNames[i])
		}
	}
	return r, nil
}

func fmtUS(v []float64) string {
	var s []string
	for _, x := range v {
		s = append(s, fmt.Sprintf("%.1fus", x))
	}
	return "[" + strings.Join(s, " ") + "]"
}

func (c *config) loadgen(bp *bpath, backend *proc) (latRun, error) {
	var r latRun
	ctx, cancel := context.WithTimeout(context.Background(), c.latDur+time.Second+30*time.Second)
	defer cancel()
	samplesFile := filepath.Join(c.workDir, "latency-samples.txt")
	args := []string{"-addr", bp.Addr, "-host", bp.Host, "-rate", fmt.Sprint(c.rate),
		"-duration", c.latDur.String(), "-warmup", "1s", "-conns", strconv.Itoa(c.latConns),
		"-samples", samplesFile}
	bin := filepath.Join(c.binDir, "loadgen")
	if c.lgCPU != "" {
		args = append([]string{"-c", c.lgCPU, bin}, args...)
		bin = "taskset"
	}
	// Sample the RSS of every hop while the rate is applied.
	r.HopRSSKB = make([]int64, len(bp.Hops))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(200 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				for i, p := range bp.Hops {
					if rss, _ := memKB(p); rss > r.HopRSSKB[i] {
						r.HopRSSKB[i] = rss
					}
				}
			}
		}
	}()
	before := c.snap(bp, backend)
	t0 := time.Now()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.WaitDelay = 2 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	wall := time.Since(t0)
	after := c.snap(bp, backend)
	close(stop)
	wg.Wait()
	if jerr := json.Unmarshal(stdout.Bytes(), &r.Loadgen); jerr != nil || err != nil {
		return r, fmt.Errorf("loadgen: %v %v: %s", err, jerr, stderr.String())
	}
	samples, err := readSamples(samplesFile)
	if err != nil {
		return r, fmt.Errorf("loadgen samples: %w", err)
	}
	r.Samples = samples
	r.HopCPUUS, r.BackendCPUUS = perReq(before, after, float64(r.Loadgen.OK))
	r.ForeignPct = foreign(before, after, wall)
	r.ForeignLGPct = foreignLG(before, after, childTicks(cmd.ProcessState), wall)
	r.SoftirqPct = pctOf(after.irq-before.irq, wall)
	lg := r.Loadgen
	logf("  %-8s %4.0f rps  p50=%.0fus p90=%.0fus p99=%.0fus max=%.0fus  err=%d  cpu/req hops=%s  foreign=%.0f%%/%.0f%%",
		bp.Name, lg.AchievedRPS, lg.P50US, lg.P90US, lg.P99US, lg.MaxUS, lg.Errors+lg.Non200+lg.Dropped, fmtUS(r.HopCPUUS), r.ForeignLGPct, r.ForeignPct)
	return r, nil
}

// readSamples reads the latencies loadgen -samples wrote, one per line.
func readSamples(name string) ([]float64, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	var v []float64
	for _, f := range strings.Fields(string(b)) {
		x, err := strconv.ParseFloat(f, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		v = append(v, x)
	}
	return v, nil
}

// ---------------------------------------------------------------- main

func main() {
	var c config
	var conns, paths string
	flag.StringVar(&c.benchDir, "bench-dir", "", "the bench/ directory (configs, results)")
	flag.StringVar(&c.repoDir, "repo-dir", "", "repository root (for the report only)")
	flag.StringVar(&c.binDir, "bin-dir", "", "directory holding weft, backend and loadgen binaries")
	flag.StringVar(&c.workDir, "work-dir", "", "temporary directory for configs, logs and data")
	flag.StringVar(&c.resultsDir, "results-dir", "", "where to write results (default bench-dir/results)")
	flag.IntVar(&c.runs, "runs", 3, "repetitions of every measurement (medians are reported)")
	flag.IntVar(&c.latRuns, "lat-runs", 0, "fixed-rate runs per path (0: as many as -runs); their samples are also pooled")
	flag.DurationVar(&c.dur, "duration", 10*time.Second, "wrk run duration (whole seconds)")
	flag.DurationVar(&c.latDur, "lat-duration", 10*time.Second, "fixed-rate run duration")
	flag.DurationVar(&c.warm, "warmup", 2*time.Second, "wrk warm-up per path before the throughput runs")
	flag.Float64Var(&c.rate, "rate", 1000, "fixed rate for the latency runs (req/s)")
	flag.IntVar(&c.latConns, "lat-conns", 32, "connections of the fixed-rate generator")
	flag.StringVar(&conns, "conns", "32,128", "wrk connection counts")
	flag.StringVar(&paths, "paths", "direct,weft,nginx,haproxy", "paths to measure")
	flag.StringVar(&c.lgCPU, "lg-cpu", "0", "CPU for the load generators (empty: no pinning)")
	flag.StringVar(&c.srvCPU, "srv-cpu", "1", "CPU for backend and proxies (empty: no pinning)")
	flag.StringVar(&c.command, "command", "bench/run.sh", "command line shown in the report")
	flag.StringVar(&c.weftSidecar, "weft-sidecar", "full", "which build the sidecars run from: slim or full (recorded in the report)")
	flag.StringVar(&c.weftSkip, "weft-skip", "", "if set, skip the weft path with this reason")
	flag.DurationVar(&c.weftWait, "weft-wait", 15*time.Second, "how long to wait for the consumer sidecar to route")
	flag.StringVar(&c.weftApply, "weft-apply", "", "a file of resources (routes, policies) to apply before the sidecars start")
	flag.StringVar(&c.weftArgs, "weft-sidecar-args", "", "more flags for both sidecars, space-separated; %w is the work dir, %n the sidecar's name")
	flag.Float64Var(&c.foreignMax, "foreign-max", 10, "repeat a run once when other processes used more than this % of the server CPU")
	flag.DurationVar(&c.quietWait, "quiet-wait", 2*time.Minute, "before each run, wait at most this long for other processes to stop using the benchmark CPUs")
	flag.IntVar(&c.retries, "retries", 2, "how many times a run disturbed by other processes is repeated (the least disturbed is kept)")
	flag.Parse()
	if c.benchDir == "" || c.binDir == "" || c.workDir == "" {
		fmt.Fprintln(os.Stderr, "harness: -bench-dir, -bin-dir and -work-dir are required (use bench/run.sh)")
		os.Exit(2)
	}
	if c.resultsDir == "" {
		c.resultsDir = filepath.Join(c.benchDir, "results")
	}
	if c.dur < time.Second {
		c.dur = time.Second
	}
	if c.latRuns <= 0 {
		c.latRuns = c.runs
	}
	for _, s := range strings.FieldsFunc(conns, func(r rune) bool { return r == ',' || r == ' ' }) {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "harness: bad connection count %q\n", s)
			os.Exit(2)
		}
		c.conns = append(c.conns, n)
	}
	c.paths = strings.FieldsFunc(paths, func(r rune) bool { return r == ',' || r == ' ' })
	var added bool
	if c.paths, added = withDirect(c.paths); added {
		logf("added the direct path: the TLS comparisons need the added latency over direct")
	}
	if out, err := exec.Command("getconf", "CLK_TCK").Output(); err == nil {
		if v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err == nil && v > 0 {
			clkTck = v
		}
	}
	_ = os.MkdirAll(filepath.Join(c.workDir, "logs"), 0o755)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sig
		logf("got %v: stopping every process this run started", s)
		stopAll()
		os.Exit(130)
	}()

	code := run(&c)
	stopAll()
	os.Exit(code)
}

func run(c *config) int {
	started := time.Now()
	env := collectEnv(c)

	// Backend.
	bport, err := freePort()
	if err != nil {
		logf("error: %v", err)
		return 1
	}
	backend, err := c.start("backend", filepath.Join(c.binDir, "backend"), "-listen", addr(bport))
	if err != nil {
		logf("error: %v", err)
		return 1
	}
	if err := waitOK(addr(bport), "backend", "/", 1024, 10*time.Second, backend); err != nil {
		logf("error: backend: %v", err)
		return 1
	}

	var all []*bpath
	failed := false
	for _, name := range c.paths {
		var bp *bpath
		var err error
		switch name {
		case "direct":
			bp = &bpath{Name: "direct", Addr: addr(bport)}
		case "nginx", "haproxy", "nginx-tls", "haproxy-tls":
			bp, err = c.setupPair(name, addr(bport))
		case "weft", "weft-mtls":
			if c.weftSkip != "" {
				bp, err = &bpath{Name: name}, errors.New(c.weftSkip)
			} else {
				bp, err = c.setupWeft(bport, name == "weft-mtls")
			}
		default:
			logf("unknown path %q (want %s)", name, strings.Join(knownPaths, ", "))
			return 2
		}
		if bp == nil {
			bp = &bpath{Name: name}
		}
		if bp.Host == "" {
			bp.Host = "backend"
		}
		bp.Title = pathTitle(name)
		bp.Tput = map[int][]tputRun{}
		if err != nil {
			bp.Skip = err.Error()
			logf("SKIPPING path %s: %v", name, err)
			for _, p := range bp.Hops {
				p.stop()
			}
			if !isWeft(name) {
				failed = true
			}
		} else {
			logf("path %s ready at %s (hops: %s)", name, bp.Addr, strings.Join(bp.HopNames, " -> "))
		}
		all = append(all, bp)
	}
	active := func() []*bpath {
		var out []*bpath
		for _, bp := range all {
			if bp.Skip == "" {
				out = append(out, bp)
			}
		}
		return out
	}
	check := func(bp *bpath, what string, err error) bool {
		if err == nil {
			for _, p := range append([]*proc{backend}, bp.Hops...) {
				if !p.alive() {
					err = fmt.Errorf("%s exited: %v; log tail:\n%s", p.name, p.err, p.logTail(15))
					break
				}
			}
		}
		if err != nil {
			bp.Skip = fmt.Sprintf("failed during %s: %v", what, err)
			logf("path %s FAILED during %s: %v", bp.Name, what, err)
			if !isWeft(bp.Name) {
				failed = true
			}
			return false
		}
		return true
	}

	// Idle CPU use of every process: background work (health checks,
	// control-plane traffic, timers) that a path costs without any load.
	{
		c.waitQuiet(&bpath{}, backend)
		procsMu.Lock()
		ps := append([]*proc(nil), procs...)
		procsMu.Unlock()
		before := make([]float64, len(ps))
		for i, p := range ps {
			before[i] = cpuTicks(p)
		}
		const idleFor = 5 * time.Second
		time.Sleep(idleFor)
		for i, p := range ps {
			pct := pctOf(cpuTicks(p)-before[i], idleFor)
			env.Idle = append(env.Idle, idleCPU{Name: p.name, CPU: p.cpu, Pct: pct})
		}
		var parts []string
		for _, x := range env.Idle {
			parts = append(parts, fmt.Sprintf("%s %.1f%%", x.Name, x.Pct))
		}
		logf("idle CPU use over %s: %s", idleFor, strings.Join(parts, ", "))
	}

	// Rotate the order of the paths in every repetition so that no path is
	// always measured first or last.
	order := func(rep int) []*bpath {
		a := active()
		if len(a) == 0 {
			return nil
		}
		k := rep % len(a)
		return append(append([]*bpath(nil), a[k:]...), a[:k]...)
	}

	// Phase 1: fixed rate (latency, CPU and RSS at that rate). Run first, on
	// freshly started proxies, so the RSS at the rate is not inflated by the
	// saturation runs.
	logf("phase 1: %.0f req/s for %s (+1s warm-up), %d runs per path", c.rate, c.latDur, c.latRuns)
	for rep := 0; rep < c.latRuns; rep++ {
		logf("latency run %d/%d", rep+1, c.latRuns)
		for _, bp := range order(rep) {
			c.waitQuiet(bp, backend)
			r, err := c.loadgen(bp, backend)
			for try := 0; try < c.retries && err == nil && max(r.ForeignPct, r.ForeignLGPct) > c.foreignMax; try++ {
				logf("  other processes used %.0f%%/%.0f%% of CPUs %s/%s during that run: repeating it", r.ForeignLGPct, r.ForeignPct, c.lgCPU, c.srvCPU)
				env.Retries++
				c.waitQuiet(bp, backend)
				r2, err2 := c.loadgen(bp, backend)
				// Keep the less disturbed of the two.
				if err2 != nil || max(r2.ForeignPct, r2.ForeignLGPct) < max(r.ForeignPct, r.ForeignLGPct) {
					r, err = r2, err2
				}
			}
			if check(bp, "the fixed-rate run", err) {
				r.Round = rep
				bp.Lat = append(bp.Lat, r)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}

	// Phase 2: maximum throughput with wrk.
	logf("phase 2: wrk, %s per run, connections %v, %d runs per path", c.dur, c.conns, c.runs)
	for _, bp := range active() {
		_, err := c.wrk(bp, backend, c.conns[len(c.conns)-1], c.warm, false)
		check(bp, "the wrk warm-up", err)
	}
	for rep := 0; rep < c.runs; rep++ {
		logf("throughput run %d/%d", rep+1, c.runs)
		for _, bp := range order(rep) {
			for _, n := range c.conns {
				if bp.Skip != "" {
					break
				}
				c.waitQuiet(bp, backend)
				r, err := c.wrk(bp, backend, n, c.dur, true)
				for try := 0; try < c.retries && err == nil && max(r.ForeignPct, r.ForeignLGPct) > c.foreignMax; try++ {
					logf("  other processes used %.0f%%/%.0f%% of CPUs %s/%s during that run: repeating it", r.ForeignLGPct, r.ForeignPct, c.lgCPU, c.srvCPU)
					env.Retries++
					c.waitQuiet(bp, backend)
					r2, err2 := c.wrk(bp, backend, n, c.dur, true)
					if err2 != nil || max(r2.ForeignPct, r2.ForeignLGPct) < max(r.ForeignPct, r.ForeignLGPct) {
						r, err = r2, err2
					}
				}
				if check(bp, "a wrk run", err) {
					bp.Tput[n] = append(bp.Tput[n], r)
				}
				time.Sleep(500 * time.Millisecond)
			}
		}
	}
	for _, bp := range active() {
		for _, p := range bp.Hops {
			_, hwm := memKB(p)
			bp.PeakRSS = append(bp.PeakRSS, hwm)
		}
	}
	// The control plane's CPU over the whole run, for the notes.
	procsMu.Lock()
	for _, p := range procs {
		if p.name == "weft-control" && p.alive() {
			env.ControlCPUs = cpuTicks(p) / clkTck
		}
	}
	procsMu.Unlock()
	bRSS, bHWM := memKB(backend)
	env.BackendRSSKB, env.BackendHWMKB = bRSS, bHWM
	env.Elapsed = time.Since(started).Round(time.Second).String()
	stopAll()

	if err := writeResults(c, env, all); err != nil {
		logf("error writing results: %v", err)
		return 1
	}
	if failed {
		logf("some paths failed; see the report")
		return 1
	}
	return 0
}

// knownPaths are the paths -paths takes.
var knownPaths = []string{"direct", "weft", "nginx", "haproxy", "weft-mtls", "nginx-tls", "haproxy-tls"}

// isWeft says whether a path is a Weft pair (which may be skipped, with
// the reason in the report, without failing the run).
func isWeft(name string) bool { return name == "weft" || name == "weft-mtls" }

// withDirect puts direct first in paths when an mTLS or TLS path is there
// without it: the report's added latencies (path − direct) need it.
func withDirect(paths []string) ([]string, bool) {
	if slices.Contains(paths, "direct") {
		return paths, false
	}
	for _, p := range paths {
		if strings.HasSuffix(p, "-tls") || p == "weft-mtls" {
			return append([]string{"direct"}, paths...), true
		}
	}
	return paths, false
}

func pathTitle(name string) string {
	switch name {
	case "weft-mtls":
		return "weft pair with mutual TLS (consumer sidecar → mTLS → provider sidecar, --mtls strict → backend)"
	case "nginx-tls":
		return "nginx pair with mutual TLS between the hops (nginx → TLS → nginx → backend)"
	case "haproxy-tls":
		return "haproxy pair with mutual TLS between the hops (haproxy → TLS → haproxy → backend)"
	case "direct":
		return "direct (load → backend)"
	case "weft":
		return "weft pair (consumer sidecar → provider sidecar → backend)"
	case "nginx":
		return "nginx pair (nginx → nginx → backend)"
	case "haproxy":
		return "haproxy pair (haproxy → haproxy → backend)"
	}
	return name
}

// ---------------------------------------------------------------- environment

type envInfo struct {
	Date         string    `json:"date"`
	Command      string    `json:"command"`
	NProc        int       `json:"nproc"`
	CPUModel     string    `json:"cpu_model"`
	Kernel       string    `json:"kernel"`
	GoVersion    string    `json:"go_version"`
	Nginx        string    `json:"nginx_version"`
	HAProxy      string    `json:"haproxy_version"`
	Wrk          string    `json:"wrk_version"`
	WeftCommit   string    `json:"weft_commit"`
	WeftSidecar  string    `json:"weft_sidecar_build"`
	LoadAvg      string    `json:"loadavg_at_start"`
	ClkTck       float64   `json:"clk_tck"`
	LgCPU        string    `json:"loadgen_cpu"`
	SrvCPU       string    `json:"server_cpu"`
	ControlCPUs  float64   `json:"weft_control_cpu_seconds,omitempty"`
	BackendRSSKB int64     `json:"backend_rss_kb"`
	BackendHWMKB int64     `json:"backend_peak_rss_kb"`
	Elapsed      string    `json:"elapsed"`
	Retries      int       `json:"runs_repeated_for_foreign_load"`
	Idle         []idleCPU `json:"idle_cpu"`
	Settings     string    `json:"settings"`
}

// idleCPU is one process's CPU use with no load, % of one CPU.
type idleCPU struct {
	Name string  `json:"name"`
	CPU  string  `json:"cpu"`
	Pct  float64 `json:"pct"`
}

func collectEnv(c *config) envInfo {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e := envInfo{Date: time.Now().Format("2006-01-02 15:04:05 MST"), Command: c.command, ClkTck: clkTck,
		LgCPU: c.lgCPU, SrvCPU: c.srvCPU}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if !ok {
				continue
			}
			switch strings.TrimSpace(k) {
			case "processor":
				e.NProc++
			case "model name":
				if e.CPUModel == "" {
					e.CPUModel = strings.TrimSpace(v)
				}
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		e.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		e.LoadAvg = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	out, _ := runCmd(ctx, "go", "version")
	e.GoVersion = strings.TrimPrefix(firstLine(out), "go version ")
	out, _ = runCmd(ctx, "nginx", "-v")
	e.Nginx = strings.TrimPrefix(firstLine(out), "nginx version: ")
	out, _ = runCmd(ctx, "haproxy", "-v")
	e.HAProxy = firstLine(out)
	if i := strings.Index(e.HAProxy, " - "); i > 0 {
		e.HAProxy = e.HAProxy[:i]
	}
	out, _ = runCmd(ctx, "wrk", "-v")
	e.Wrk = firstLine(out)
	if i := strings.Index(e.Wrk, " ["); i > 0 {
		e.Wrk = e.Wrk[:i]
	}
	if c.repoDir != "" {
		if out, err := runCmd(ctx, "git", "-C", c.repoDir, "rev-parse", "--short", "HEAD"); err == nil {
			e.WeftCommit = firstLine(out)
			if st, err := runCmd(ctx, "git", "-C", c.repoDir, "status", "--porcelain", "--untracked-files=no"); err == nil && strings.TrimSpace(st) != "" {
				e.WeftCommit += " (with uncommitted changes)"
			}
		} else {
			e.WeftCommit = "no commit yet (working tree)"
		}
	}
	e.WeftSidecar = "full weft binary"
	if c.weftSidecar == "slim" {
		e.WeftSidecar = "slim build (go build -tags sidecaronly ./cmd/weft)"
	}
	e.Settings = fmt.Sprintf("runs=%d, wrk %s per run at %v connections (1 thread, %s warm-up), %d fixed-rate runs of %.0f req/s for %s (+1 s warm-up) over %d connections",
		c.runs, c.dur, c.conns, c.warm, c.latRuns, c.rate, c.latDur, c.latConns)
	return e
}

// sidecarArgs are the extra flags of the sidecar name (-weft-sidecar-args).
func (c *config) sidecarArgs(name string) []string {
	var out []string
	for _, a := range strings.Fields(c.weftArgs) {
		out = append(out, strings.NewReplacer("%w", c.workDir, "%n", name).Replace(a))
	}
	return out
}
