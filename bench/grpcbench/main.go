// Command grpcbench measures gRPC through the mesh: a grpc-go client calls
// the interop TestService directly and through a consumer and a provider
// sidecar (--app-protocol h2c), closed loop with a fixed number of
// concurrent callers, and reports calls/s and latency percentiles for
// unary calls and messages/s for a server stream.
//
// -cost adds, under each line, the CPU time and the read and write system
// calls per call (or per message) of every process on the path: client
// (this process), consumer and provider sidecars, app (Linux /proc).
// -profile DIR saves CPU, mutex and block profiles of both sidecars taken
// through their admin listeners during the mesh measurements (mutex and
// block profiles need a binary built with -tags weftprofile).
// -sidecar-env K=V runs the sidecars with an environment variable (e.g.
// GOMAXPROCS=1); -deadline gives every call a deadline (grpc-timeout);
// -only direct|mesh|mesh-mtls|mesh-xnet|nginx|nginx-tls runs one path. -xnet adds a second
// Weft pair (service interopx) run with --http2-engine x/net, the HTTP/2
// engine before ADR 5, so both engines are compared in one run. -mtls (on
// by default) adds a Weft pair that speaks mutual TLS (path mesh-mtls,
// service interop-mtls: both sidecars with join tokens, the provider
// --mtls strict) and reports its figures against the plain pair's and,
// with -compare nginx-tls (on by default), against an nginx pair that
// speaks mutual TLS 1.3 between its hops (grpc_pass grpcs://, client
// certificates, sessions reused; certificates made at run time).
// -profile also profiles the mesh-mtls pair's sidecars.
//
//	go build -o bin/weft ./cmd/weft && go build -o bin/testapp ./internal/meshtest/testapp
//	go run ./bench/grpcbench -weft bin/weft -app bin/testapp -duration 5s -out bench/results/grpc-latest.md
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/weftmesh/weft/bench/benchkit"
)

func main() {
	weft := flag.String("weft", "", "weft binary (required)")
	app := flag.String("app", "", "testapp binary (required)")
	dur := flag.Duration("duration", 5*time.Second, "length of each measurement")
	conc := flag.Int("concurrency", 32, "concurrent callers")
	outFile := flag.String("out", "", "also write the report as markdown here")
	flag.StringVar(&profileDir, "profile", "", "write CPU, mutex and block profiles of both sidecars under mesh and mesh-mtls load to this directory")
	flag.StringVar(&only, "only", "", "run only this path (direct, mesh, mesh-mtls, mesh-xnet, nginx or nginx-tls)")
	flag.BoolVar(&withMTLS, "mtls", true, "also measure a Weft pair with mutual TLS (mesh-mtls) and compare it with the plain pair")
	flag.BoolVar(&xnet, "xnet", false, "also measure a Weft pair with --http2-engine x/net")
	flag.IntVar(&providers, "providers", 1, "provider sidecars in front of the app on the mesh path (instances of the service; with 2 or more the consumer balances, and keeps request bodies for retries)")
	flag.Func("sidecar-env", "set `K=V` in the sidecars' environment (repeatable), e.g. GOMAXPROCS=1", func(v string) error {
		if !strings.Contains(v, "=") {
			return fmt.Errorf("want K=V")
		}
		sidecarEnv = append(sidecarEnv, v)
		return nil
	})
	flag.StringVar(&compare, "compare", "nginx,nginx-tls", "also measure these nginx pairs, comma-separated (nginx: grpc_pass over h2c between the hops; nginx-tls: grpcs with mutual TLS 1.3 between them; one worker each); empty for none")
	flag.DurationVar(&deadline, "deadline", 0, "give each call this deadline (sent as grpc-timeout); 0: none")
	flag.BoolVar(&showCost, "cost", false, "after each measurement, print the CPU time and system calls per call of each process (Linux /proc)")
	flag.Parse()
	if *weft == "" || *app == "" {
		fmt.Fprintln(os.Stderr, "grpcbench: -weft and -app are required")
		os.Exit(2)
	}
	sidecarEnv = benchkit.OneThread(sidecarEnv)
	var report strings.Builder
	w := io.MultiWriter(os.Stdout, &report)
	if err := run(w, *weft, *app, *dur, *conc); err != nil {
		fmt.Fprintln(os.Stderr, "grpcbench:", err)
		os.Exit(1)
	}
	if *outFile != "" {
		md := fmt.Sprintf("# gRPC through the mesh\n\nRun on %s, %d CPUs, %s; everything on loopback, unpinned.\n\nCommand:\n\n```\ngo run ./bench/grpcbench %s\n```\n\n```\n%s```\n",
			time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), runtime.Version(), strings.Join(os.Args[1:], " "), report.String())
		if err := os.WriteFile(*outFile, []byte(md), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "grpcbench:", err)
			os.Exit(1)
		}
	}
}

var (
	procs      benchkit.Procs
	profileDir string
	only       string
	showCost   bool
	compare    string
	sidecarEnv []string
	deadline   time.Duration
	xnet       bool
	providers  int
	withMTLS   bool
)

// minMTLSvsPlain is the target: the mutual TLS pair keeps at
// least this share of the plain pair's figures.
const minMTLSvsPlain = 0.85

// minMTLSvsNginxTLS is the target against the nginx pair with TLS
// between its hops: at least as fast.
const minMTLSvsNginxTLS = 1.0

func run(w io.Writer, weft, app string, dur time.Duration, conc int) error {
	defer procs.Stop()
	dir, err := os.MkdirTemp("", "grpcbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	appAddr, err := start(app, `testapp listening on (\S+)`, "--grpc", "--listen", "127.0.0.1:0")
	if err != nil {
		return err
	}
	cp, err := start(weft, `msg="control plane serving".* addr=(\S+)`, "control", "--listen", "127.0.0.1:0", "--data-dir", dir)
	if err != nil {
		return err
	}
	_, port, _ := net.SplitHostPort(appAddr)
	provAdmin, err := start(weft, `msg="sidecar started".* admin=(\S+)`, "sidecar", "--service", "interop", "--app-port", port,
		"--app-protocol", "h2c", "--control", cp, "--outbound", "127.0.0.1:0", "--inbound", "127.0.0.1:0", "--admin", "127.0.0.1:0")
	if err != nil {
		return err
	}
	cons, err := start(weft, `msg="sidecar started".* outbound=(\S+ inbound=\S* admin=\S+)`, "sidecar", "--service", "client",
		"--control", cp, "--outbound", "127.0.0.1:0", "--admin", "127.0.0.1:0")
	if err != nil {
		return err
	}
	out, consAdmin := strings.Fields(cons)[0], strings.TrimPrefix(strings.Fields(cons)[2], "admin=")
	admins := map[string]string{"consumer": consAdmin, "provider": provAdmin}
	// procs: app, control plane, provider sidecar, consumer sidecar.
	costOf := map[string][]benchkit.Process{
		"direct": {{Name: "client", Pid: os.Getpid()}, {Name: "app", Pid: procs.Pid(0)}},
		"mesh": {{Name: "client", Pid: os.Getpid()}, {Name: "consumer", Pid: procs.Pid(3)}, {Name: "provider", Pid: procs.Pid(2)},
			{Name: "app", Pid: procs.Pid(0)}},
	}
	targets := []struct{ name, target, authority string }{{"direct", appAddr, ""}, {"mesh", out, "interop"}}
	if xnet {
		// procs 4 and 5: the x/net pair's provider and consumer.
		if _, err := start(weft, `msg="sidecar started"`, "sidecar", "--service", "interopx", "--app-port", port, "--app-protocol", "h2c",
			"--http2-engine", "x/net", "--control", cp, "--outbound", "127.0.0.1:0", "--inbound", "127.0.0.1:0", "--admin", "127.0.0.1:0"); err != nil {
			return err
		}
		consX, err := start(weft, `msg="sidecar started".* outbound=(\S+)`, "sidecar", "--service", "clientx", "--http2-engine", "x/net",
			"--control", cp, "--outbound", "127.0.0.1:0", "--admin", "127.0.0.1:0")
		if err != nil {
			return err
		}
		targets = append(targets, struct{ name, target, authority string }{"mesh-xnet", consX, "interopx"})
		costOf["mesh-xnet"] = []benchkit.Process{{Name: "client", Pid: os.Getpid()}, {Name: "consumer", Pid: procs.Pid(5)},
			{Name: "provider", Pid: procs.Pid(4)}, {Name: "app", Pid: procs.Pid(0)}}
	}
	profileAdmins := map[string]map[string]string{"mesh": admins}
	if withMTLS {
		target, pids, mtlsAdmins, err := startMTLSPair(weft, cp, port)
		if err != nil {
			return fmt.Errorf("mesh-mtls: %w", err)
		}
		profileAdmins["mesh-mtls"] = mtlsAdmins
		targets = append(targets, struct{ name, target, authority string }{"mesh-mtls", target, "interop-mtls"})
		costOf["mesh-mtls"] = []benchkit.Process{{Name: "client", Pid: os.Getpid()}, {Name: "consumer", Pid: pids[1]},
			{Name: "provider", Pid: pids[0]}, {Name: "app", Pid: procs.Pid(0)}}
	}
	for i := 2; i <= providers; i++ {
		// More instances of interop, all before the one app; the cost
		// lines count the first provider only.
		if _, err := start(weft, `msg="sidecar started"`, "sidecar", "--service", "interop", "--id", fmt.Sprintf("interop-%d", i),
			"--app-port", port, "--app-protocol", "h2c", "--control", cp, "--outbound", "127.0.0.1:0", "--inbound", "127.0.0.1:0",
			"--admin", "127.0.0.1:0"); err != nil {
			return err
		}
	}
	if providers > 1 {
		if err := waitEndpoints(consAdmin, "interop", providers); err != nil {
			return err
		}
	}
	var pairs []string
	if compare != "" {
		pairs = strings.Split(compare, ",")
	}
	for _, name := range pairs {
		if name != "nginx" && name != "nginx-tls" {
			return fmt.Errorf("-compare %q: only nginx and nginx-tls are known", name)
		}
		front, pids, err := startNginx(dir, appAddr, name == "nginx-tls")
		if err != nil {
			fmt.Fprintf(w, "(%s pair skipped: %v)\n", name, err)
			continue
		}
		targets = append(targets, struct{ name, target, authority string }{name, front, ""})
		costOf[name] = []benchkit.Process{{Name: "client", Pid: os.Getpid()}, {Name: name + "-front", Pid: pids[1]},
			{Name: name + "-back", Pid: pids[0]}, {Name: "app", Pid: procs.Pid(0)}}
	}
	fmt.Fprintf(w, "%d concurrent callers, %s per measurement, 1 connection per client", conc, dur)
	if deadline > 0 {
		fmt.Fprintf(w, ", deadline %s per call", deadline)
	}
	fmt.Fprintf(w, ", sidecars with %s, nginx with one worker", strings.Join(sidecarEnv, " "))
	if providers > 1 {
		fmt.Fprintf(w, ", %d provider sidecars (instances) on the mesh path", providers)
	}
	fmt.Fprint(w, "\n")
	if showCost {
		fmt.Fprint(w, "per call/message: CPU time, then read+write system calls, of each process (client: this one)\n")
	}
	fmt.Fprint(w, "\n")
	fmt.Fprintf(w, "%-9s %-16s %12s %10s %10s %10s\n", "path", "call", "per second", "p50", "p99", "max")
	// figures[path] = unary calls/s, stream messages/s.
	figures := map[string][2]float64{}
	for _, p := range targets {
		if only != "" && p.name != only {
			continue
		}
		var stopProfiles func(string)
		pa := profileAdmins[p.name]
		if pa != nil && profileDir != "" {
			stopProfiles = profiles(pa, dur)
		}
		opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
		if p.authority != "" {
			opts = append(opts, grpc.WithAuthority(p.authority))
		}
		conn, err := grpc.NewClient("passthrough:///"+p.target, opts...)
		if err != nil {
			return err
		}
		tc := testgrpc.NewTestServiceClient(conn)
		if err := ready(tc); err != nil {
			conn.Close()
			return fmt.Errorf("%s: %w", p.name, err)
		}
		payload := &testgrpc.SimpleRequest{ResponseSize: 1024, Payload: &testgrpc.Payload{Body: make([]byte, 1024)}}
		before := benchkit.Measure(costOf[p.name])
		rate, lat := load(conc, dur, func(ctx context.Context) error { _, err := tc.UnaryCall(ctx, payload); return err })
		fmt.Fprintf(w, "%-9s %-16s %12.0f %10s %10s %10s\n", p.name, "unary 1 KiB", rate, benchkit.Pct(lat, 50), benchkit.Pct(lat, 99), benchkit.Pct(lat, 100))
		if showCost {
			fmt.Fprintf(w, "  per call: %s\n", benchkit.Cost(before, benchkit.Measure(costOf[p.name]), float64(len(lat))))
		}
		if stopProfiles != nil {
			stopProfiles(p.name + "-unary")
			stopProfiles = profiles(pa, dur)
		}
		streamReq := &testgrpc.StreamingOutputCallRequest{ResponseParameters: repeat(100, 1024)}
		before = benchkit.Measure(costOf[p.name])
		srate, streams := load(conc, dur, func(ctx context.Context) error {
			st, err := tc.StreamingOutputCall(ctx, streamReq)
			if err != nil {
				return err
			}
			for {
				if _, err := st.Recv(); err == io.EOF {
					return nil
				} else if err != nil {
					return err
				}
			}
		})
		fmt.Fprintf(w, "%-9s %-16s %12.0f %10s %10s %10s\n", p.name, "stream msgs 1 KiB", srate*100, "", "", "")
		figures[p.name] = [2]float64{rate, srate * 100}
		if showCost {
			fmt.Fprintf(w, "  per message: %s\n", benchkit.Cost(before, benchkit.Measure(costOf[p.name]), float64(len(streams)*100)))
		}
		if stopProfiles != nil {
			stopProfiles(p.name + "-stream")
		}
		conn.Close()
	}
	if m, plain := figures["mesh-mtls"], figures["mesh"]; withMTLS && m[0] > 0 && plain[0] > 0 {
		fmt.Fprintf(w, "\nmutual TLS (same run): mesh-mtls / mesh, target >= %.2f\n", minMTLSvsPlain)
		for i, what := range []string{"unary 1 KiB /s", "stream msgs 1 KiB /s"} {
			x := m[i] / plain[i]
			met := "met"
			if !(x >= minMTLSvsPlain) {
				met = "NOT met"
			}
			fmt.Fprintf(w, "  %-22s %10.0f / %-10.0f = %.2f  %s\n", what, m[i], plain[i], x, met)
		}
	}
	if m, o := figures["mesh-mtls"], figures["nginx-tls"]; m[0] > 0 && o[0] > 0 {
		fmt.Fprintf(w, "\nmutual TLS against nginx with TLS between its hops (same run): mesh-mtls / nginx-tls, target >= %.2f\n", minMTLSvsNginxTLS)
		for i, what := range []string{"unary 1 KiB /s", "stream msgs 1 KiB /s"} {
			x := m[i] / o[i]
			met := "met"
			if !(x >= minMTLSvsNginxTLS) {
				met = "NOT met"
			}
			fmt.Fprintf(w, "  %-22s %10.0f / %-10.0f = %.2f  %s\n", what, m[i], o[i], x, met)
		}
	}
	return nil
}

// startMTLSPair starts the mesh-mtls pair: a provider (service
// interop-mtls, h2c, --mtls strict) and a consumer, both with join tokens,
// and waits until the provider takes the consumer's connections as mutual
// TLS. It returns the consumer's outbound address, the pids of the
// provider and the consumer, and their admin addresses (for -profile).
// The tokens are created with weft, so weft must be the full binary.
func startMTLSPair(weft, cp, appPort string) (string, [2]int, map[string]string, error) {
	var pids [2]int
	pt, err := benchkit.JoinToken(weft, cp, "interop-mtls")
	if err != nil {
		return "", pids, nil, err
	}
	ct, err := benchkit.JoinToken(weft, cp, "client-mtls")
	if err != nil {
		return "", pids, nil, err
	}
	provAdmin, err := procs.StartEnv(slices.Concat(sidecarEnv, []string{"WEFT_JOIN_TOKEN=" + pt}), weft, `msg="sidecar started".* admin=(\S+)`,
		"sidecar", "--service", "interop-mtls", "--app-port", appPort, "--app-protocol", "h2c", "--mtls", "strict",
		"--control", cp, "--outbound", "127.0.0.1:0", "--inbound", "127.0.0.1:0", "--admin", "127.0.0.1:0")
	if err != nil {
		return "", pids, nil, err
	}
	pids[0] = procs.Pid(procs.Len() - 1)
	cons, err := procs.StartEnv(slices.Concat(sidecarEnv, []string{"WEFT_JOIN_TOKEN=" + ct}), weft, `msg="sidecar started".* outbound=(\S+ inbound=\S* admin=\S+)`,
		"sidecar", "--service", "client-mtls", "--control", cp, "--outbound", "127.0.0.1:0", "--admin", "127.0.0.1:0")
	if err != nil {
		return "", pids, nil, err
	}
	out, consAdmin := strings.Fields(cons)[0], strings.TrimPrefix(strings.Fields(cons)[2], "admin=")
	admins := map[string]string{"mtls-consumer": consAdmin, "mtls-provider": provAdmin}
	pids[1] = procs.Pid(procs.Len() - 1)
	conn, err := grpc.NewClient("passthrough:///"+out, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("interop-mtls"))
	if err != nil {
		return "", pids, nil, err
	}
	defer conn.Close()
	tc := testgrpc.NewTestServiceClient(conn)
	err = benchkit.WaitMTLS(provAdmin, 15*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := tc.EmptyCall(ctx, &testgrpc.Empty{})
		return err
	})
	return out, pids, admins, err
}

// startNginx starts two nginx hops in front of the app, configured as
// plainly as Weft's pair: one worker each, HTTP/2 without TLS on the
// listener, grpc_pass to the next hop with idle upstream connections kept.
// With withTLS (path nginx-tls) the hops speak mutual TLS 1.3 to each
// other, as Weft's sidecars do: the back hop takes only TLS with a client
// certificate of the run's CA, the front verifies the back's by name and
// reuses its sessions. It returns the front's address and the pids of the
// back and front hops.
func startNginx(dir, appAddr string, withTLS bool) (string, [2]int, error) {
	var pids [2]int
	if _, err := exec.LookPath("nginx"); err != nil {
		return "", pids, err
	}
	addrs, err := benchkit.FreeAddrs(2)
	if err != nil {
		return "", pids, err
	}
	name := "nginx"
	var certs *benchkit.TLSFiles
	if withTLS {
		name = "nginx-tls"
		if certs, err = benchkit.MakeCerts(dir + "/nginx-tls-certs"); err != nil {
			return "", pids, err
		}
	}
	front, back := addrs[0], addrs[1]
	for i, hop := range []struct{ listen, next string }{{back, appAddr}, {front, back}} {
		hopDir := fmt.Sprintf("%s/%s-%d", dir, name, i)
		if err := os.MkdirAll(hopDir, 0o755); err != nil {
			return "", pids, err
		}
		listen, listenTLS, pass := hop.listen+" http2", "", "grpc://next;"
		if withTLS && i == 0 {
			listen = hop.listen + " ssl http2"
			listenTLS = fmt.Sprintf(nginxTLSListen, certs.ServerCert, certs.ServerKey, certs.CA)
		}
		if withTLS && i == 1 {
			pass = "grpcs://next;" + fmt.Sprintf(nginxTLSUpstream, certs.ClientCert, certs.ClientKey, certs.CA, benchkit.TLSServerName)
		}
		conf := fmt.Sprintf(nginxConf, hopDir, hopDir, hop.next, listen, listenTLS, pass)
		if err := os.WriteFile(hopDir+"/nginx.conf", []byte(conf), 0o644); err != nil {
			return "", pids, err
		}
		if pids[i], err = procs.StartQuiet("nginx", "-p", hopDir, "-c", hopDir+"/nginx.conf"); err != nil {
			return "", pids, err
		}
	}
	return front, pids, nil
}

const nginxConf = `daemon off;
master_process off;
worker_processes 1;
pid %s/nginx.pid;
error_log %s/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    upstream next {
        server %s;
        keepalive 128;
    }
    server {
        listen %s;%s
        http2_max_concurrent_streams 1024;
        location / {
            grpc_pass %s
            grpc_read_timeout 1h;
            grpc_send_timeout 1h;
        }
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
            grpc_ssl_protocols TLSv1.3;
            grpc_ssl_session_reuse on;
            grpc_ssl_certificate %s;
            grpc_ssl_certificate_key %s;
            grpc_ssl_trusted_certificate %s;
            grpc_ssl_verify on;
            grpc_ssl_name %s;
            grpc_ssl_server_name on;`

func repeat(n, size int) []*testgrpc.ResponseParameters {
	out := make([]*testgrpc.ResponseParameters, n)
	for i := range out {
		out[i] = &testgrpc.ResponseParameters{Size: int32(size)}
	}
	return out
}

func ready(tc testgrpc.TestServiceClient) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := tc.EmptyCall(ctx, &testgrpc.Empty{})
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// load runs call, with the -deadline, from conc goroutines for d and
// returns calls per second and the sorted latencies.
func load(conc int, d time.Duration, call func(context.Context) error) (float64, []time.Duration) {
	return benchkit.Load(conc, d, func(context.Context, int) error { return callOnce(call) })
}

// start starts a process, sidecars with the -sidecar-env variables.
func start(bin, pattern string, args ...string) (string, error) {
	var env []string
	if len(args) > 0 && args[0] == "sidecar" {
		env = sidecarEnv
	}
	return procs.StartEnv(env, bin, pattern, args...)
}

// callOnce makes one call, with the -deadline if one is set (gRPC sends it
// as grpc-timeout, which each sidecar enforces and shortens).
func callOnce(call func(context.Context) error) error {
	if deadline <= 0 {
		return call(context.Background())
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	return call(ctx)
}

// profiles starts a CPU profile of each sidecar (through its admin
// listener's /debug/pprof) for most of one measurement, and the mutex and
// block profiles over the same time (empty unless the binary records them,
// e.g. built with -tags weftprofile). The returned function waits for them
// and writes DIR/<sidecar>-<phase>-<kind>.pprof.
func profiles(admins map[string]string, d time.Duration) func(phase string) {
	secs := max(int(d.Seconds())-1, 1)
	type result struct {
		name string
		body []byte
	}
	results := make(chan result, 3*len(admins))
	var wg sync.WaitGroup
	get := func(name, url string) {
		defer wg.Done()
		resp, err := http.Get(url)
		if err != nil {
			fmt.Fprintln(os.Stderr, "grpcbench: profile:", err)
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			fmt.Fprintf(os.Stderr, "grpcbench: profile %s: %s %s\n", url, resp.Status, b)
			return
		}
		results <- result{name, b}
	}
	for who, admin := range admins {
		wg.Add(3)
		go get(who+"-%s-cpu", fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", admin, secs))
		go get(who+"-%s-mutex", fmt.Sprintf("http://%s/debug/pprof/mutex?seconds=%d", admin, secs))
		go get(who+"-%s-block", fmt.Sprintf("http://%s/debug/pprof/block?seconds=%d", admin, secs))
	}
	return func(phase string) {
		wg.Wait()
		close(results)
		os.MkdirAll(profileDir, 0o755)
		for r := range results {
			f := filepath.Join(profileDir, fmt.Sprintf(r.name, phase)+".pprof")
			if err := os.WriteFile(f, r.body, 0o644); err != nil {
				fmt.Fprintln(os.Stderr, "grpcbench:", err)
			}
		}
	}
}

// waitEndpoints waits until the consumer whose admin address is admin
// routes to n endpoints of service.
func waitEndpoints(admin, service string, n int) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		var v struct {
			Services map[string]struct{ Endpoints []json.RawMessage }
		}
		if resp, err := http.Get("http://" + admin + "/config"); err == nil {
			err = json.NewDecoder(resp.Body).Decode(&v)
			resp.Body.Close()
			if err == nil && len(v.Services[service].Endpoints) >= n {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the consumer does not route to %d instances of %s after 15 s", n, service)
		}
		time.Sleep(100 * time.Millisecond) // polling a process's state, not synchronising a test
	}
}
