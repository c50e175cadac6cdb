// Command cpscale measures the control plane at scale: it starts a real
// `weft control`, opens N simulated sidecar push streams, registers and
// deregisters instances, and measures the time from each change being
// written to its arrival on every stream (p50, p99, max), and the control
// plane's memory. It also measures one real sidecar: start-up time to a
// ready /readyz, and its memory at rest.
//
//	go run ./bench/cpscale -weft /path/to/weft -streams 1000 -changes 50 -out bench/results/cpscale-latest.md
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	weft := flag.String("weft", "", "path to the weft binary (required)")
	streams := flag.Int("streams", 1000, "simulated sidecar streams")
	changes := flag.Int("changes", 50, "endpoint changes to time")
	sidecarBin := flag.String("sidecar", "", "binary for the sidecar measured at the end (default: -weft), e.g. a -tags sidecaronly build")
	outFile := flag.String("out", "", "also write the report as markdown to this file")
	flag.Parse()
	if *weft == "" {
		fmt.Fprintln(os.Stderr, "cpscale: -weft is required")
		os.Exit(2)
	}
	var report strings.Builder
	out = io.MultiWriter(os.Stdout, &report)
	if *sidecarBin == "" {
		*sidecarBin = *weft
	}
	if err := run(*weft, *sidecarBin, *streams, *changes); err != nil {
		fmt.Fprintln(os.Stderr, "cpscale:", err)
		os.Exit(1)
	}
	if *outFile != "" {
		md := fmt.Sprintf("# Control plane scale\n\nRun on %s.\n\nCommand (from the repository root):\n\n```\ngo run ./bench/cpscale %s\n```\n\n%s\n```\n%s```\n",
			time.Now().UTC().Format("2006-01-02 15:04 MST"), strings.Join(os.Args[1:], " "), machine(), report.String())
		if err := os.WriteFile(*outFile, []byte(md), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "cpscale:", err)
			os.Exit(1)
		}
	}
}

// out receives the report lines.
var out io.Writer = os.Stdout

// machine describes where the run happened.
func machine() string {
	cpu := "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				cpu = strings.TrimSpace(l[strings.Index(l, ":")+1:])
				break
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return fmt.Sprintf("Machine: %d CPUs (%s), kernel %s, %s; control plane and streams on the same machine, unpinned.\n",
		runtime.NumCPU(), cpu, strings.TrimSpace(string(kernel)), runtime.Version())
}

var client = &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4}}

func run(weft, sidecarBin string, nStreams, nChanges int) error {
	dir, err := os.MkdirTemp("", "cpscale-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cp, addr, err := startLogged(weft, regexp.MustCompile(`msg="control plane serving".* addr=(\S+)`),
		"control", "--listen", "127.0.0.1:0", "--data-dir", dir)
	if err != nil {
		return err
	}
	defer func() { cp.Process.Kill(); cp.Wait() }()
	if err := poll(30*time.Second, func() bool { return get("http://"+addr+"/readyz") == 200 }); err != nil {
		return fmt.Errorf("control plane not ready: %w", err)
	}
	rssIdle := rss(cp.Process.Pid)

	// Open the streams; each records when it sees each key.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seen := make([]map[string]time.Time, nStreams)
	var mu sync.Mutex
	var wg sync.WaitGroup
	ready := make(chan struct{}, nStreams)
	for i := 0; i < nStreams; i++ {
		seen[i] = map[string]time.Time{}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			follow(ctx, addr, func(key string, put bool) {
				mu.Lock()
				seen[i][fmt.Sprintf("%s/%v", key, put)] = time.Now()
				mu.Unlock()
			}, ready)
		}(i)
	}
	for i := 0; i < nStreams; i++ {
		select {
		case <-ready:
		case <-time.After(60 * time.Second):
			return fmt.Errorf("only %d of %d streams opened", i, nStreams)
		}
	}
	rssStreams := rss(cp.Process.Pid)

	// Changes: register an instance, wait for all streams, deregister, wait.
	var perChangeMax, all []time.Duration
	for c := 0; c < nChanges; c++ {
		id := fmt.Sprintf("bench-%d", c)
		for _, put := range []bool{true, false} {
			key := fmt.Sprintf("/weft/instances/bench/%s/%v", id, put)
			t0 := time.Now()
			if err := change(addr, id, put); err != nil {
				return err
			}
			var lat []time.Duration
			err := poll(30*time.Second, func() bool {
				mu.Lock()
				defer mu.Unlock()
				lat = lat[:0]
				for i := range seen {
					at, ok := seen[i][key]
					if !ok {
						return false
					}
					lat = append(lat, max(at.Sub(t0), 0))
				}
				return true
			})
			if err != nil {
				return fmt.Errorf("change %s did not reach every stream: %w", key, err)
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			perChangeMax = append(perChangeMax, lat[len(lat)-1])
			all = append(all, lat...)
		}
	}
	rssPeak := hwm(cp.Process.Pid)
	cancel()
	wg.Wait()

	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	sort.Slice(perChangeMax, func(i, j int) bool { return perChangeMax[i] < perChangeMax[j] })
	fmt.Fprintf(out, "streams: %d, changes: %d (each a register and a deregister)\n", nStreams, 2*nChanges)
	fmt.Fprintf(out, "delivery to one stream: p50 %s, p99 %s, max %s\n", pct(all, 50), pct(all, 99), all[len(all)-1])
	fmt.Fprintf(out, "delivery to all streams (per change): p50 %s, p99 %s, max %s\n", pct(perChangeMax, 50), pct(perChangeMax, 99), perChangeMax[len(perChangeMax)-1])
	fmt.Fprintf(out, "control plane RSS: idle %d MB, with streams %d MB, peak %d MB\n", rssIdle>>20, rssStreams>>20, rssPeak>>20)
	return sidecarFigures(sidecarBin, addr)
}

// sidecarFigures starts one real sidecar (consumer only) and reports its
// start-up time to ready and its memory at rest.
func sidecarFigures(weft, controlAddr string) error {
	t0 := time.Now()
	sc, admin, err := startLogged(weft, regexp.MustCompile(`msg="sidecar started".* admin=(\S+)`),
		"sidecar", "--service", "probe", "--control", controlAddr, "--outbound", "127.0.0.1:0", "--admin", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer func() { sc.Process.Kill(); sc.Wait() }()
	if err := poll(30*time.Second, func() bool { return get("http://"+admin+"/readyz") == 200 }); err != nil {
		return err
	}
	startup := time.Since(t0)
	var samples []int64
	for i := 0; i < 5; i++ { // at rest: idle for a few seconds
		time.Sleep(time.Second)
		samples = append(samples, rss(sc.Process.Pid))
	}
	pid := sc.Process.Pid
	fmt.Fprintf(out, "sidecar (%s): start-up to ready %s (process start to /readyz 200), at rest RSS %d MB (anonymous %d MB, mapped from the binary %d MB)\n",
		filepath.Base(weft), startup.Round(time.Millisecond), samples[len(samples)-1]>>20, procField(pid, "RssAnon")>>20, procField(pid, "RssFile")>>20)
	return nil
}

func change(addr, id string, put bool) error {
	var req *http.Request
	if put {
		body, _ := json.Marshal(map[string]any{"instance": map[string]any{
			"service": "bench", "id": id, "address": "127.0.0.1:9", "ready": true}})
		req, _ = http.NewRequest(http.MethodPut, "http://"+addr+"/v1/instances/bench/"+id, bytes.NewReader(body))
	} else {
		req, _ = http.NewRequest(http.MethodDelete, "http://"+addr+"/v1/instances/bench/"+id, nil)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s", req.Method, req.URL, resp.Status)
	}
	return nil
}

// follow reads one push stream and reports each change.
func follow(ctx context.Context, addr string, saw func(key string, put bool), ready chan<- struct{}) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v1/stream?since=0", nil)
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	first := true
	for sc.Scan() {
		var m struct {
			Type    string
			Changes []struct {
				Key   string
				Value json.RawMessage
			}
		}
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			return
		}
		for _, c := range m.Changes {
			saw(c.Key, len(c.Value) > 0)
		}
		if first {
			first = false
			ready <- struct{}{}
		}
	}
}

func startLogged(bin string, re *regexp.Regexp, args ...string) (*exec.Cmd, string, error) {
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
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
		return cmd, a, nil
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		return nil, "", fmt.Errorf("%s %v: no start-up line", bin, args)
	}
}

func get(url string) int {
	resp, err := client.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func poll(d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", d)
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

func pct(s []time.Duration, p int) time.Duration {
	return s[(len(s)-1)*p/100].Round(10 * time.Microsecond)
}

func procField(pid int, field string) int64 {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field+":" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func rss(pid int) int64 { return procField(pid, "VmRSS") }
func hwm(pid int) int64 { return procField(pid, "VmHWM") }
