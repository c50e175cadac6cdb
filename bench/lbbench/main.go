// Command lbbench reproduces Linkerd's "beyond round robin" experiment
// on Weft: one service of -instances test-app instances, each behind its
// own sidecar, called through a consumer sidecar at a steady open-loop
// rate. After -warm, one instance turns slow (every answer -delay late)
// for -slow, then is fast again for -after. The run is repeated per
// balancer (a TrafficPolicy applied before each run, and a fresh consumer
// sidecar so no latency estimate carries over), plus a baseline run with
// the default balancer and no slow instance. It reports, per run, p50,
// p99 and p99.9 latency and the success rate over the whole run and over
// the slow window.
//
//	go build -o bin/weft ./cmd/weft && go build -o bin/testapp ./internal/meshtest/testapp
//	go run ./bench/lbbench -weft bin/weft -app bin/testapp -out bench/results/lb-latest.md
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/weftmesh/weft/bench/benchkit"
)

var (
	weftBin   = flag.String("weft", "weft", "weft binary")
	appBin    = flag.String("app", "testapp", "test app binary (internal/meshtest/testapp)")
	instances = flag.Int("instances", 10, "instances of the service")
	rate      = flag.Int("rate", 200, "requests per second, open loop")
	warm      = flag.Duration("warm", 5*time.Second, "load before the slow spell")
	slow      = flag.Duration("slow", 30*time.Second, "how long one instance stays slow")
	after     = flag.Duration("after", 5*time.Second, "load after the slow spell")
	delay     = flag.Duration("delay", 2*time.Second, "how late the slow instance answers")
	policies  = flag.String("policies", "baseline,round-robin,least-request,peak-ewma", "runs, in order (baseline: the default balancer, nothing slow)")
	outFile   = flag.String("out", "", "also write the report to this file")
)

var procs benchkit.Procs

func main() {
	flag.Parse()
	var w io.Writer = os.Stdout
	var report strings.Builder
	w = io.MultiWriter(os.Stdout, &report)
	err := run(w)
	procs.Stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "lbbench:", err)
		os.Exit(1)
	}
	if *outFile != "" {
		host, _ := os.Hostname()
		head := fmt.Sprintf("# lbbench %s\n\ncommand: `go run ./bench/lbbench %s`\nmachine: %s, %d CPUs, %s/%s, %s\n\n```\n",
			time.Now().UTC().Format("2006-01-02 15:04"), strings.Join(os.Args[1:], " "), host, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())
		if err := os.WriteFile(*outFile, []byte(head+report.String()+"```\n"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "lbbench:", err)
			os.Exit(1)
		}
	}
}

func run(w io.Writer) error {
	dir, err := os.MkdirTemp("", "lbbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cp, err := procs.Start(*weftBin, `msg="control plane serving".* addr=(\S+)`, "control", "--listen", "127.0.0.1:0", "--data-dir", dir)
	if err != nil {
		return err
	}
	var apps []string
	for i := range *instances {
		id := fmt.Sprintf("lb-%d", i)
		addr, err := procs.Start(*appBin, `testapp listening on (\S+)`, "--name", id, "--listen", "127.0.0.1:0")
		if err != nil {
			return err
		}
		_, port, _ := net.SplitHostPort(addr)
		if _, err := procs.Start(*weftBin, `msg="sidecar started"`, "sidecar", "--service", "lb", "--id", id, "--app-port", port,
			"--control", cp, "--outbound", "127.0.0.1:0", "--inbound", "127.0.0.1:0", "--admin", "127.0.0.1:0"); err != nil {
			return err
		}
		apps = append(apps, addr)
	}
	fmt.Fprintf(w, "%d instances, %d requests/s open loop; one instance %s slow for %s after %s of load, then %s more\n\n",
		*instances, *rate, *delay, *slow, *warm, *after)
	fmt.Fprintf(w, "%-14s %-7s %9s %9s %9s %9s %10s %9s\n", "balancer", "window", "requests", "p50", "p99", "p99.9", "success", "to slow")
	for _, name := range strings.Split(*policies, ",") {
		balancer, slowOne := name, true
		if name == "baseline" {
			balancer, slowOne = "peak-ewma", false
		}
		if err := apply(cp, balancer, dir); err != nil {
			return err
		}
		out, err := consumer(cp)
		if err != nil {
			return err
		}
		if err := waitPolicy(out, balancer); err != nil {
			return err
		}
		res := measure(out.outbound, apps[0], slowOne)
		for _, win := range []struct {
			name string
			all  []sample
		}{{"all", res}, {"slow", window(res, *warm, *warm+*slow)}} {
			fmt.Fprintf(w, "%-14s %-7s %s\n", name, win.name, summary(win.all))
		}
		out.stop()
	}
	return nil
}

// apply makes balancer the service's load-balancing policy.
func apply(cp, balancer, dir string) error {
	doc := fmt.Sprintf("apiVersion: weftmesh.io/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: lb}\nspec:\n  loadBalancer: {policy: %s}\n", balancer)
	f := dir + "/policy.yaml"
	if err := os.WriteFile(f, []byte(doc), 0o644); err != nil {
		return err
	}
	if out, err := exec.Command(*weftBin, "apply", "-f", f, "--control", cp).CombinedOutput(); err != nil {
		return fmt.Errorf("apply %s: %v: %s", balancer, err, out)
	}
	return nil
}

type sidecar struct {
	outbound, admin string
	cmd             *exec.Cmd
}

func (s *sidecar) stop() { s.cmd.Process.Kill(); s.cmd.Wait() }

// consumer starts a fresh consumer sidecar.
func consumer(cp string) (*sidecar, error) {
	var p benchkit.Procs
	got, err := p.Start(*weftBin, `msg="sidecar started".* outbound=(\S+ inbound=\S* admin=\S+)`, "sidecar", "--service", "client",
		"--control", cp, "--outbound", "127.0.0.1:0", "--admin", "127.0.0.1:0")
	if err != nil {
		p.Stop()
		return nil, err
	}
	f := strings.Fields(got)
	return &sidecar{outbound: f[0], admin: strings.TrimPrefix(f[2], "admin="), cmd: p.Cmd(0)}, nil
}

// waitPolicy waits until the consumer routes to every instance with
// balancer.
func waitPolicy(s *sidecar, balancer string) error {
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + s.admin + "/config")
		if err == nil {
			var v struct {
				Services map[string]struct {
					Policy struct {
						Balancer string `json:"balancer"`
					} `json:"policy"`
					Endpoints []struct {
						Ready bool `json:"ready"`
					} `json:"endpoints"`
				} `json:"services"`
			}
			err = json.NewDecoder(resp.Body).Decode(&v)
			resp.Body.Close()
			svc := v.Services["lb"]
			ready := 0
			for _, e := range svc.Endpoints {
				if e.Ready {
					ready++
				}
			}
			if err == nil && svc.Policy.Balancer == balancer && ready == *instances {
				return nil
			}
			last = fmt.Sprintf("balancer %q, %d ready", svc.Policy.Balancer, ready)
		}
		time.Sleep(100 * time.Millisecond) // polling a process we do not control, not synchronising goroutines
	}
	return fmt.Errorf("consumer not routing with %s to %d instances after 30s (%s)", balancer, *instances, last)
}

type sample struct {
	at      time.Duration // since the run began
	latency time.Duration
	ok      bool
	slow    bool // answered by the slow instance
}

// measure runs the load and the slow spell and returns every request.
func measure(outbound, slowApp string, slowOne bool) []sample {
	proxy := &url.URL{Scheme: "http", Host: outbound}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(proxy), MaxIdleConnsPerHost: 512}}
	defer c.CloseIdleConnections()
	total := *warm + *slow + *after
	var mu sync.Mutex
	var all []sample
	var wg sync.WaitGroup
	start := time.Now()
	spell := func(q string) {
		if slowOne {
			if resp, err := http.Get("http://" + slowApp + "/fault?" + q); err == nil {
				resp.Body.Close()
			}
		}
	}
	defer spell("")
	tick := time.NewTicker(time.Second / time.Duration(*rate))
	defer tick.Stop()
	slowed, healed := false, false
	for now := range tick.C {
		at := now.Sub(start)
		if at >= total {
			break
		}
		if !slowed && at >= *warm {
			slowed = true
			spell("delay=" + delay.String())
		}
		if !healed && at >= *warm+*slow {
			healed = true
			spell("")
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			resp, err := c.Get("http://lb/")
			s := sample{at: t0.Sub(start)}
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				s.ok = resp.StatusCode == 200
				s.slow = strings.HasSuffix(string(b), "=lb-0")
			}
			s.latency = time.Since(t0)
			mu.Lock()
			all = append(all, s)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return all
}

func window(all []sample, from, to time.Duration) []sample {
	var out []sample
	for _, s := range all {
		if s.at >= from && s.at < to {
			out = append(out, s)
		}
	}
	return out
}

func summary(all []sample) string {
	lat := make([]time.Duration, 0, len(all))
	ok, slowN := 0, 0
	for _, s := range all {
		lat = append(lat, s.latency)
		if s.ok {
			ok++
		}
		if s.slow {
			slowN++
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) string {
		return benchkit.Percentile(lat, p).Round(100 * time.Microsecond).String()
	}
	if len(all) == 0 {
		return "no requests"
	}
	return fmt.Sprintf("%9d %9s %9s %9s %9.2f%% %8.2f%%", len(all), pct(50), pct(99), pct(99.9),
		100*float64(ok)/float64(len(all)), 100*float64(slowN)/float64(len(all)))
}
