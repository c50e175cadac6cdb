// Package benchkit is what the Go benchmark commands under bench/ share:
// starting weft and test app processes and reading the address each logs,
// closed-loop load from concurrent callers, latency percentiles, and the
// CPU time and system calls of processes (Linux /proc).
package benchkit

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
)

// Procs are the processes a benchmark started; Stop kills them all.
type Procs struct{ cmds []*exec.Cmd }

// Start runs bin and waits for a line of its output matching pattern,
// returning the first submatch (an address, typically), or the whole
// line when the pattern has no group.
func (p *Procs) Start(bin, pattern string, args ...string) (string, error) {
	return p.StartEnv(nil, bin, pattern, args...)
}

// StartEnv is Start with variables added to the process's environment.
func (p *Procs) StartEnv(env []string, bin, pattern string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return "", err
	}
	p.cmds = append(p.cmds, cmd)
	re := regexp.MustCompile(pattern)
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[len(m)-1]:
				default:
				}
			}
		}
	}()
	select {
	case a := <-found:
		return a, nil
	case <-time.After(30 * time.Second):
		return "", fmt.Errorf("%s %v: no line matching %q within 30s", bin, args, pattern)
	}
}

// StartQuiet starts a process that logs nothing worth waiting for (the
// caller checks it is ready) and returns its pid.
func (p *Procs) StartQuiet(bin string, args ...string) (int, error) {
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	p.cmds = append(p.cmds, cmd)
	return cmd.Process.Pid, nil
}

// Len is the number of processes started.
func (p *Procs) Len() int { return len(p.cmds) }

// Pid is the process id of the i-th process started (from 0).
func (p *Procs) Pid(i int) int { return p.cmds[i].Process.Pid }

// Cmd is the i-th process started (from 0).
func (p *Procs) Cmd(i int) *exec.Cmd { return p.cmds[i] }

// Stop kills every process started and waits for them.
func (p *Procs) Stop() {
	for _, c := range p.cmds {
		c.Process.Kill()
		c.Wait()
	}
	p.cmds = nil
}

// Load runs call from conc goroutines for d and returns calls per second
// and the sorted latencies of the calls that succeeded. Each goroutine
// gets its index, for per-caller state such as a connection.
func Load(conc int, d time.Duration, call func(ctx context.Context, caller int) error) (float64, []time.Duration) {
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
				if err := call(context.Background(), i); err != nil {
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

// Percentile is the p-th percentile (nearest rank) of sorted samples; 0
// for none. Nearest rank: the smallest sample with at least p% of the
// samples at or below it.
func Percentile[T ~int64 | ~float64](sorted []T, p float64) T {
	if len(sorted) == 0 {
		return 0
	}
	// 99.9/100*100000 is 99900.00000000001 in floating point.
	rank := int(math.Ceil(p/100*float64(len(sorted)) - 1e-9))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// Pct is Percentile of sorted latencies as text, rounded to the
// microsecond.
func Pct(s []time.Duration, p int) string {
	if len(s) == 0 {
		return "-"
	}
	return Percentile(s, float64(p)).Round(time.Microsecond).String()
}

// Process is a process whose cost is measured, by name.
type Process struct {
	Name string
	Pid  int
}

// Usage is what a process has used so far.
type Usage struct {
	Name          string
	CPU           time.Duration
	Reads, Writes int64 // system calls
}

// Measure reads each process's CPU time and read/write system calls.
func Measure(ps []Process) []Usage {
	var out []Usage
	for _, p := range ps {
		u := Usage{Name: p.Name}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Pid)); err == nil {
			// Fields after the command name (which may hold spaces): utime
			// and stime are the 12th and 13th, in clock ticks (100 Hz on Linux).
			if i := strings.LastIndexByte(string(b), ')'); i > 0 {
				f := strings.Fields(string(b)[i+1:])
				if len(f) > 13 {
					var ut, st int64
					fmt.Sscan(f[11], &ut)
					fmt.Sscan(f[12], &st)
					u.CPU = time.Duration(ut+st) * 10 * time.Millisecond
				}
			}
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", p.Pid)); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(line, "syscr: "); ok {
					fmt.Sscan(v, &u.Reads)
				} else if v, ok := strings.CutPrefix(line, "syscw: "); ok {
					fmt.Sscan(v, &u.Writes)
				}
			}
		}
		out = append(out, u)
	}
	return out
}

// Cost formats CPU µs and system calls (reads+writes) per unit of work
// between two measurements of the same processes.
func Cost(before, after []Usage, units float64) string {
	if units == 0 || len(before) != len(after) {
		return "-"
	}
	var parts []string
	for i := range after {
		cpu := float64((after[i].CPU - before[i].CPU).Microseconds()) / units
		r := float64(after[i].Reads-before[i].Reads) / units
		wr := float64(after[i].Writes-before[i].Writes) / units
		parts = append(parts, fmt.Sprintf("%s %.1fµs %.1fr+%.1fw", after[i].Name, cpu, r, wr))
	}
	return strings.Join(parts, ", ")
}

// FreeAddrs returns n loopback addresses with ports free right now.
func FreeAddrs(n int) ([]string, error) {
	var out []string
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		out = append(out, ln.Addr().String())
		defer ln.Close()
	}
	return out, nil
}

// OneThread adds GOMAXPROCS=1 to a sidecar environment that does not set
// GOMAXPROCS: the nginx and HAProxy hops the benchmarks compare with run
// one worker (one thread) each, so each Weft hop gets one thread too.
func OneThread(env []string) []string {
	for _, v := range env {
		if strings.HasPrefix(v, "GOMAXPROCS=") {
			return env
		}
	}
	return append(env, "GOMAXPROCS=1")
}
