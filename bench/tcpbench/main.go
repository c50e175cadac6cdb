// Command tcpbench measures TCP services through the mesh: a TCP echo app
// reached directly, through a consumer sidecar's upstream listener
// (declared /tcp) and the provider's sidecar (--app-protocol tcp), and
// through an nginx pair (stream module) and a HAProxy pair (mode tcp),
// each also with mutual TLS 1.3 between its hops (nginx-tls,
// haproxy-tls: certificates made at run time, sessions resumed). It
// reports bulk throughput on one connection, small round trips on
// concurrent connections, and new connections per second, with the CPU
// time and system calls of each proxy hop per unit. -mtls (on by default)
// adds a second Weft pair that speaks mutual TLS (path weft-mtls: both
// sidecars with join tokens, the provider --mtls strict) and reports its
// figures against the plain pair's and the TLS pairs', measured in the
// same run.
//
//	go build -o bin/weft ./cmd/weft && go build -o bin/testapp ./internal/meshtest/testapp
//	go run ./bench/tcpbench -weft bin/weft -app bin/testapp -out bench/results/tcp-latest.md
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/weftmesh/weft/bench/benchkit"
)

func main() {
	weft := flag.String("weft", "", "weft binary (required)")
	app := flag.String("app", "", "testapp binary (required)")
	dur := flag.Duration("duration", 5*time.Second, "length of each timed measurement")
	conc := flag.Int("concurrency", 32, "concurrent connections for round trips")
	bulk := flag.Int64("bulk", 1<<30, "bytes streamed each way for the bulk measurement")
	outFile := flag.String("out", "", "also write the report as markdown here")
	flag.Func("sidecar-env", "set `K=V` in the sidecars' environment (repeatable), e.g. GOMAXPROCS=1", func(v string) error {
		sidecarEnv = append(sidecarEnv, v)
		return nil
	})
	flag.BoolVar(&withMTLS, "mtls", true, "also measure a Weft pair with mutual TLS (weft-mtls) and compare it with the plain pair")
	compare := flag.String("compare", "nginx,haproxy,nginx-tls,haproxy-tls", "also measure these TCP proxy pairs, comma-separated (nginx: stream module; haproxy: mode tcp; -tls: mutual TLS 1.3 between the hops); empty for none")
	flag.Parse()
	if *weft == "" || *app == "" {
		fmt.Fprintln(os.Stderr, "tcpbench: -weft and -app are required")
		os.Exit(2)
	}
	sidecarEnv = benchkit.OneThread(sidecarEnv)
	var report strings.Builder
	w := io.MultiWriter(os.Stdout, &report)
	var pairs []string
	if *compare != "" {
		pairs = strings.Split(*compare, ",")
	}
	if err := run(w, *weft, *app, *dur, *conc, *bulk, pairs); err != nil {
		fmt.Fprintln(os.Stderr, "tcpbench:", err)
		os.Exit(1)
	}
	if *outFile != "" {
		md := fmt.Sprintf("# TCP through the mesh\n\nRun on %s, %d CPUs, %s; everything on loopback, unpinned.\n\nCommand:\n\n```\ngo run ./bench/tcpbench %s\n```\n\n```\n%s```\n",
			time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), runtime.Version(), strings.Join(os.Args[1:], " "), report.String())
		if err := os.WriteFile(*outFile, []byte(md), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "tcpbench:", err)
			os.Exit(1)
		}
	}
}

// sidecarEnv is added to the sidecars' environment (-sidecar-env).
var sidecarEnv []string

// withMTLS adds the weft-mtls path (-mtls).
var withMTLS bool

// minMTLSvsPlain is the target: the mutual TLS pair keeps at
// least this share of the plain pair's figures.
const minMTLSvsPlain = 0.85

// minMTLSvsNginxTLS is the target against the nginx pair with TLS
// between its hops: at least as fast.
const minMTLSvsNginxTLS = 1.0

// path is one way to reach the echo app, with the proxy processes on it.
type path struct {
	name, addr string
	hops       []benchkit.Process
}

func run(w io.Writer, weft, app string, dur time.Duration, conc int, bulk int64, compare []string) error {
	var procs benchkit.Procs
	defer procs.Stop()
	dir, err := os.MkdirTemp("", "tcpbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	appAddr, err := procs.Start(app, `testapp listening on (\S+)`, "--tcp-echo", "--listen", "127.0.0.1:0")
	if err != nil {
		return err
	}
	cp, err := procs.Start(weft, `msg="control plane serving".* addr=(\S+)`, "control", "--listen", "127.0.0.1:0", "--data-dir", dir)
	if err != nil {
		return err
	}
	_, port, _ := net.SplitHostPort(appAddr)
	if _, err := procs.StartEnv(sidecarEnv, weft, `msg="sidecar started"`, "sidecar", "--service", "echo", "--app-port", port,
		"--app-protocol", "tcp", "--control", cp, "--outbound", "127.0.0.1:0", "--inbound", "127.0.0.1:0", "--admin", "127.0.0.1:0"); err != nil {
		return err
	}
	up, err := procs.StartEnv(sidecarEnv, weft, `msg="upstream listener".* address=(\S+)`, "sidecar", "--service", "client",
		"--upstream", "echo=0/tcp", "--control", cp, "--outbound", "127.0.0.1:0", "--admin", "127.0.0.1:0")
	if err != nil {
		return err
	}
	// procs: app, control plane, provider sidecar, consumer sidecar.
	paths := []path{
		{"direct", appAddr, nil},
		{"weft", up, []benchkit.Process{{Name: "consumer", Pid: procs.Pid(3)}, {Name: "provider", Pid: procs.Pid(2)}}},
	}
	if withMTLS {
		p, err := startMTLSPair(&procs, weft, cp, port)
		if err != nil {
			return fmt.Errorf("weft-mtls: %w", err)
		}
		paths = append(paths, p)
	}
	for _, name := range compare {
		p, err := startPair(&procs, dir, name, appAddr)
		if err != nil {
			fmt.Fprintf(w, "(%s pair skipped: %v)\n", name, err)
			continue
		}
		paths = append(paths, p)
	}
	for _, p := range paths {
		if err := ready(p.addr); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
	}
	fmt.Fprintf(w, "bulk: %d MiB each way on one connection; round trips: 64 B on %d connections for %s; connects: one at a time for %s\n",
		bulk>>20, conc, dur, dur)
	fmt.Fprintf(w, "one thread per hop: sidecars with %s, nginx and HAProxy with one worker; each path's connects start with at most 500 sockets in TIME_WAIT\n",
		strings.Join(sidecarEnv, " "))
	fmt.Fprintf(w, "cost: CPU time and read+write system calls per MiB, round trip or connection, of each proxy hop (front, back);\n")
	fmt.Fprintf(w, "system calls as /proc/PID/io counts them: read and write only, so nginx's and HAProxy's recv/send show as 0\n\n")
	fmt.Fprintf(w, "%-11s %-22s %14s %10s %10s %10s  %s\n", "path", "measure", "value", "p50", "p99", "max", "cost per unit")
	// figures[path] = bulk MiB/s, round trips/s, connects/s, for the
	// mutual TLS comparison.
	figures := map[string][3]float64{}
	for _, p := range paths {
		before := benchkit.Measure(p.hops)
		mibs, err := bulkEcho(p.addr, bulk)
		if err != nil {
			return fmt.Errorf("%s bulk: %w", p.name, err)
		}
		fig := figures[p.name]
		fig[0] = mibs
		fmt.Fprintf(w, "%-11s %-22s %9.0f MiB/s %32s  %s\n", p.name, "bulk echo", mibs, "",
			benchkit.Cost(before, benchkit.Measure(p.hops), float64(bulk>>20)))

		conns := make([]net.Conn, conc)
		for i := range conns {
			if conns[i], err = net.Dial("tcp", p.addr); err != nil {
				return err
			}
		}
		msg, back := make([]byte, 64), make([]byte, conc*64)
		before = benchkit.Measure(p.hops)
		rate, lat := benchkit.Load(conc, dur, func(_ context.Context, i int) error {
			return roundTrip(conns[i], msg, back[i*64:(i+1)*64])
		})
		after := benchkit.Measure(p.hops)
		for _, c := range conns {
			c.Close()
		}
		fig[1] = rate
		fmt.Fprintf(w, "%-11s %-22s %11.0f /s %10s %10s %10s  %s\n", p.name, "round trips 64 B", rate,
			benchkit.Pct(lat, 50), benchkit.Pct(lat, 99), benchkit.Pct(lat, 100), benchkit.Cost(before, after, float64(len(lat))))

		waitTimeWait()
		before = benchkit.Measure(p.hops)
		crate, clat := benchkit.Load(1, dur, func(context.Context, int) error {
			c, err := net.Dial("tcp", p.addr)
			if err != nil {
				return err
			}
			defer c.Close()
			return roundTrip(c, msg, back[:64])
		})
		after = benchkit.Measure(p.hops)
		fmt.Fprintf(w, "%-11s %-22s %11.0f /s %10s %10s %10s  %s\n", p.name, "connect + round trip", crate,
			benchkit.Pct(clat, 50), benchkit.Pct(clat, 99), benchkit.Pct(clat, 100), benchkit.Cost(before, after, float64(len(clat))))
		fig[2] = crate
		figures[p.name] = fig
	}
	if withMTLS {
		m, plain := figures["weft-mtls"], figures["weft"]
		fmt.Fprintf(w, "\nmutual TLS (same run): weft-mtls / weft, target >= %.2f\n", minMTLSvsPlain)
		for i, what := range []string{"bulk echo MiB/s", "round trips 64 B /s", "connect + round trip /s"} {
			x := m[i] / plain[i]
			met := "met"
			if !(x >= minMTLSvsPlain) {
				met = "NOT met"
			}
			fmt.Fprintf(w, "  %-24s %10.0f / %-10.0f = %.2f  %s\n", what, m[i], plain[i], x, met)
		}
		for _, other := range []string{"nginx-tls", "haproxy-tls"} {
			o, ok := figures[other]
			if !ok {
				continue
			}
			target := ""
			if other == "nginx-tls" {
				target = fmt.Sprintf(", target >= %.2f", minMTLSvsNginxTLS)
			}
			fmt.Fprintf(w, "\nmutual TLS against TLS proxies (same run): weft-mtls / %s%s\n", other, target)
			for i, what := range []string{"bulk echo MiB/s", "round trips 64 B /s", "connect + round trip /s"} {
				x := m[i] / o[i]
				met := ""
				if target != "" {
					met = "met"
					if !(x >= minMTLSvsNginxTLS) {
						met = "NOT met"
					}
				}
				fmt.Fprintf(w, "  %-24s %10.0f / %-10.0f = %.2f  %s\n", what, m[i], o[i], x, met)
			}
		}
	}
	return nil
}

// startMTLSPair starts the weft-mtls pair: a provider (service echo-mtls,
// --app-protocol tcp, --mtls strict) and a consumer with an upstream
// listener for it, both with join tokens, and waits until the provider
// takes the consumer's connections as mutual TLS. The token is created
// with weft, so weft must be the full binary.
func startMTLSPair(procs *benchkit.Procs, weft, cp, appPort string) (path, error) {
	pt, err := benchkit.JoinToken(weft, cp, "echo-mtls")
	if err != nil {
		return path{}, err
	}
	ct, err := benchkit.JoinToken(weft, cp, "client-mtls")
	if err != nil {
		return path{}, err
	}
	provAdmin, err := procs.StartEnv(slices.Concat(sidecarEnv, []string{"WEFT_JOIN_TOKEN=" + pt}), weft, `msg="sidecar started".* admin=(\S+)`,
		"sidecar", "--service", "echo-mtls", "--app-port", appPort, "--app-protocol", "tcp", "--mtls", "strict",
		"--control", cp, "--outbound", "127.0.0.1:0", "--inbound", "127.0.0.1:0", "--admin", "127.0.0.1:0")
	if err != nil {
		return path{}, err
	}
	prov := procs.Pid(procs.Len() - 1)
	up, err := procs.StartEnv(slices.Concat(sidecarEnv, []string{"WEFT_JOIN_TOKEN=" + ct}), weft, `msg="upstream listener".* address=(\S+)`,
		"sidecar", "--service", "client-mtls", "--upstream", "echo-mtls=0/tcp", "--control", cp, "--outbound", "127.0.0.1:0", "--admin", "127.0.0.1:0")
	if err != nil {
		return path{}, err
	}
	cons := procs.Pid(procs.Len() - 1)
	err = benchkit.WaitMTLS(provAdmin, 15*time.Second, func() error {
		c, err := net.DialTimeout("tcp", up, time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Second))
		return roundTrip(c, []byte("x"), make([]byte, 1))
	})
	if err != nil {
		return path{}, err
	}
	return path{"weft-mtls", up, []benchkit.Process{{Name: "consumer", Pid: cons}, {Name: "provider", Pid: prov}}}, nil
}

// timeWait is the number of TCP sockets in TIME_WAIT (/proc/net/sockstat),
// -1 when unknown.
func timeWait() int {
	b, err := os.ReadFile("/proc/net/sockstat")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "tw" {
			if n, err := strconv.Atoi(f[i+1]); err == nil {
				return n
			}
		}
	}
	return -1
}

// waitTimeWait waits, up to 70 s (TIME_WAIT lasts 60 s on Linux), until
// at most 500 TCP sockets are in TIME_WAIT. Each connect measurement leaves
// thousands, and they make every later connect search longer for a free
// port: without this, every path would pay for the ones measured before it.
func waitTimeWait() {
	for end := time.Now().Add(70 * time.Second); time.Now().Before(end); time.Sleep(time.Second) {
		if n := timeWait(); n < 0 || n <= 500 {
			return
		}
	}
}

// startPair starts two hops of nginx (stream module) or HAProxy (mode tcp)
// in front of the app, configured as plainly as Weft's pair: one worker,
// no limits that Weft does not have. With the suffix -tls (nginx-tls,
// haproxy-tls) the hops speak mutual TLS 1.3 to each other, as Weft's
// sidecars do: the back hop takes only TLS with a client certificate of
// the run's CA, the front verifies the back's by name and resumes its
// sessions.
func startPair(procs *benchkit.Procs, dir, name, appAddr string) (path, error) {
	addrs, err := benchkit.FreeAddrs(2)
	if err != nil {
		return path{}, err
	}
	base, withTLS := strings.CutSuffix(name, "-tls")
	var certs *benchkit.TLSFiles
	if withTLS {
		if certs, err = benchkit.MakeCerts(dir + "/" + name + "-certs"); err != nil {
			return path{}, err
		}
	}
	front, back := addrs[0], addrs[1]
	p := path{name: name, addr: front}
	for i, hop := range []struct{ listen, next, role string }{{back, appAddr, "back"}, {front, back, "front"}} {
		tlsListen, tlsUpstream := withTLS && i == 0, withTLS && i == 1
		hopDir := fmt.Sprintf("%s/%s-%d", dir, name, i)
		if err := os.MkdirAll(hopDir, 0o755); err != nil {
			return path{}, err
		}
		var bin string
		var args []string
		switch base {
		case "nginx":
			if _, err := os.Stat(nginxStreamModule); err != nil {
				return path{}, fmt.Errorf("no stream module at %s (apt-get install libnginx-mod-stream)", nginxStreamModule)
			}
			listen, extra := hop.listen, ""
			if tlsListen {
				listen += " ssl"
				extra = fmt.Sprintf(nginxTLSListen, certs.ServerCert, certs.ServerKey, certs.CA)
			}
			if tlsUpstream {
				extra = fmt.Sprintf(nginxTLSUpstream, certs.ClientCert, certs.ClientKey, certs.CA, benchkit.TLSServerName)
			}
			conf := fmt.Sprintf(nginxConf, nginxStreamModule, hopDir, hopDir, listen, extra, hop.next)
			if err := os.WriteFile(hopDir+"/nginx.conf", []byte(conf), 0o644); err != nil {
				return path{}, err
			}
			bin, args = "nginx", []string{"-p", hopDir, "-c", hopDir + "/nginx.conf"}
		case "haproxy":
			bind, server := hop.listen, hop.next
			if tlsListen {
				bind += fmt.Sprintf(" ssl crt %s ca-file %s verify required", certs.ServerPEM, certs.CA)
			}
			if tlsUpstream {
				// (TLS sessions are reused by default: no no-ssl-reuse.)
				server += fmt.Sprintf(" ssl verify required ca-file %s crt %s sni str(%s) verifyhost %s", certs.CA, certs.ClientPEM, benchkit.TLSServerName, benchkit.TLSServerName)
			}
			conf := fmt.Sprintf(haproxyConf, bind, server)
			if err := os.WriteFile(hopDir+"/haproxy.cfg", []byte(conf), 0o644); err != nil {
				return path{}, err
			}
			bin, args = "haproxy", []string{"-db", "-f", hopDir + "/haproxy.cfg"}
		default:
			return path{}, fmt.Errorf("unknown proxy %q (want nginx, haproxy, nginx-tls or haproxy-tls)", name)
		}
		if _, err := exec.LookPath(bin); err != nil {
			return path{}, err
		}
		pid, err := procs.StartQuiet(bin, args...)
		if err != nil {
			return path{}, err
		}
		p.hops = append([]benchkit.Process{{Name: name + "-" + hop.role, Pid: pid}}, p.hops...)
	}
	return p, nil
}

const nginxStreamModule = "/usr/lib/nginx/modules/ngx_stream_module.so"

const nginxConf = `load_module %s;
daemon off;
master_process off;
worker_processes 1;
pid %s/nginx.pid;
error_log %s/error.log warn;
events { worker_connections 8192; }
stream {
    server {
        listen %s;%s
        proxy_pass %s;
        proxy_timeout 1h;
        proxy_half_close on;
    }
}
`

// nginxTLSListen is the back hop's TLS of the nginx-tls pair: TLS 1.3, a
// client certificate of the CA required, sessions cached.
const nginxTLSListen = `
        ssl_protocols TLSv1.3;
        ssl_certificate %s;
        ssl_certificate_key %s;
        ssl_client_certificate %s;
        ssl_verify_client on;
        ssl_session_cache shared:SSL:10m;
        ssl_session_timeout 1h;`

// nginxTLSUpstream is the front hop's TLS to the back: its client
// certificate, the back's verified by name, sessions reused.
const nginxTLSUpstream = `
        proxy_ssl on;
        proxy_ssl_protocols TLSv1.3;
        proxy_ssl_session_reuse on;
        proxy_ssl_certificate %s;
        proxy_ssl_certificate_key %s;
        proxy_ssl_trusted_certificate %s;
        proxy_ssl_verify on;
        proxy_ssl_name %s;
        proxy_ssl_server_name on;`

const haproxyConf = `global
    nbthread 1
    maxconn 8192
    ssl-default-bind-options ssl-min-ver TLSv1.3
    ssl-default-server-options ssl-min-ver TLSv1.3
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
frontend fe
    bind %s
    default_backend be
backend be
    server next %s
`

func roundTrip(c net.Conn, msg, back []byte) error {
	if _, err := c.Write(msg); err != nil {
		return err
	}
	_, err := io.ReadFull(c, back)
	return err
}

// bulkEcho streams n bytes to the echo app while reading them back, and
// returns MiB/s each way.
func bulkEcho(addr string, n int64) (float64, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	start := time.Now()
	errc := make(chan error, 1)
	go func() {
		buf := make([]byte, 256<<10)
		for left := n; left > 0; {
			k := min(left, int64(len(buf)))
			if _, err := c.Write(buf[:k]); err != nil {
				errc <- err
				return
			}
			left -= k
		}
		errc <- c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.Copy(io.Discard, c)
	if err != nil {
		return 0, err
	}
	if err := <-errc; err != nil {
		return 0, err
	}
	if got != n {
		return 0, fmt.Errorf("echoed %d bytes, want %d", got, n)
	}
	return float64(n) / (1 << 20) / time.Since(start).Seconds(), nil
}

// ready waits until a round trip through addr works.
func ready(addr string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := func() error {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(time.Second))
			return roundTrip(c, []byte("x"), make([]byte, 1))
		}()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("the echo service is not reachable through the mesh: " + err.Error())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
