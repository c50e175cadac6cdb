// Command grpcbench measures gRPC through the mesh: a grpc-go client calls
// the interop TestService directly and through a consumer and a provider
// sidecar (--app-protocol h2c), closed loop with a fixed number of
// concurrent callers, and reports calls/s and latency percentiles for
// unary calls and messages/s for a server stream.
//
//	go build -o /tmp/weft ./cmd/weft && go build -o /tmp/testapp ./internal/meshtest/testapp
//	go run ./bench/grpcbench -weft /tmp/weft -app /tmp/testapp -duration 5s -out bench/results/grpc-latest.md
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

func main() {
	weft := flag.String("weft", "", "weft binary (required)")
	app := flag.String("app", "", "testapp binary (required)")
	dur := flag.Duration("duration", 5*time.Second, "length of each measurement")
	conc := flag.Int("concurrency", 32, "concurrent callers")
	outFile := flag.String("out", "", "also write the report as markdown here")
	flag.Parse()
	if *weft == "" || *app == "" {
		fmt.Fprintln(os.Stderr, "grpcbench: -weft and -app are required")
		os.Exit(2)
	}
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

var procs []*exec.Cmd

func run(w io.Writer, weft, app string, dur time.Duration, conc int) error {
	defer func() {
		for _, p := range procs {
			p.Process.Kill()
			p.Wait()
		}
	}()
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
	if _, err := start(weft, `msg="sidecar started".* outbound=(\S+)`, "sidecar", "--service", "interop", "--app-port", port,
		"--app-protocol", "h2c", "--control", cp, "--outbound", "127.0.0.1:0", "--inbound", "127.0.0.1:0", "--admin", "127.0.0.1:0"); err != nil {
		return err
	}
	out, err := start(weft, `msg="sidecar started".* outbound=(\S+)`, "sidecar", "--service", "client",
		"--control", cp, "--outbound", "127.0.0.1:0", "--admin", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%d concurrent callers, %s per measurement, 1 connection per client\n\n", conc, dur)
	fmt.Fprintf(w, "%-8s %-16s %12s %10s %10s %10s\n", "path", "call", "per second", "p50", "p99", "max")
	for _, p := range []struct{ name, target, authority string }{{"direct", appAddr, ""}, {"mesh", out, "interop"}} {
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
		rate, lat := load(conc, dur, func(ctx context.Context) error { _, err := tc.UnaryCall(ctx, payload); return err })
		fmt.Fprintf(w, "%-8s %-16s %12.0f %10s %10s %10s\n", p.name, "unary 1 KiB", rate, pct(lat, 50), pct(lat, 99), pct(lat, 100))
		streamReq := &testgrpc.StreamingOutputCallRequest{ResponseParameters: repeat(100, 1024)}
		srate, _ := load(conc, dur, func(ctx context.Context) error {
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
		fmt.Fprintf(w, "%-8s %-16s %12.0f %10s %10s %10s\n", p.name, "stream msgs 1 KiB", srate*100, "", "", "")
		conn.Close()
	}
	return nil
}

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

// load runs call from conc goroutines for d and returns calls per second
// and the sorted latencies.
func load(conc int, d time.Duration, call func(context.Context) error) (float64, []time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var mu sync.Mutex
	var all []time.Duration
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for ctx.Err() == nil {
				t0 := time.Now()
				if err := call(context.Background()); err != nil {
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	return float64(len(all)) / time.Since(start).Seconds(), all
}

func pct(s []time.Duration, p int) string {
	if len(s) == 0 {
		return "-"
	}
	return s[(len(s)-1)*p/100].Round(time.Microsecond).String()
}

func start(bin, pattern string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return "", err
	}
	procs = append(procs, cmd)
	re := regexp.MustCompile(pattern)
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case a := <-found:
		return a, nil
	case <-time.After(30 * time.Second):
		return "", fmt.Errorf("%s %v: no start-up line", bin, args)
	}
}
