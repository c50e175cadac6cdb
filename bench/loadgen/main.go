// Command loadgen is the benchmark's open-loop, fixed-rate HTTP/1.1 load
// generator (standard library only).
//
// A dispatcher on its own OS thread releases one request every 1/rate
// seconds, whether or not earlier requests have completed (open loop: a slow
// server cannot slow the generator down). Released requests are taken by a
// pool of workers, each owning one keep-alive connection. Latency is
// measured from the moment a request is released until its response body has
// been read completely, so time spent waiting for a free connection (queueing
// caused by a slow server) is included; the dispatcher's own wake-up lateness
// is reported separately (lag_*) and is not charged to the server.
//
// It prints one JSON object with percentiles (microseconds) on stdout.
// Every run is bounded: -warmup + -duration, then at most -timeout to drain.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"net"
	"os"
	"runtime"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/weftmesh/weft/bench/benchkit"
)

type result struct {
	Addr        string  `json:"addr"`
	TargetRate  float64 `json:"target_rps"`
	DurationS   float64 `json:"duration_s"`
	Released    int     `json:"released"`
	OK          int     `json:"ok"`
	Errors      int     `json:"errors"`
	Non200      int     `json:"non_200"`
	Dropped     int     `json:"dropped"`
	AchievedRPS float64 `json:"achieved_rps"`
	MeanUS      float64 `json:"mean_us"`
	P50US       float64 `json:"p50_us"`
	P90US       float64 `json:"p90_us"`
	P99US       float64 `json:"p99_us"`
	P999US      float64 `json:"p999_us"`
	MaxUS       float64 `json:"max_us"`
	LagP50US    float64 `json:"lag_p50_us"`
	LagP99US    float64 `json:"lag_p99_us"`
	LagMaxUS    float64 `json:"lag_max_us"`
	FirstError  string  `json:"first_error,omitempty"`
}

type job struct {
	released time.Time
	measured bool
}

type workerStats struct {
	lat      []time.Duration
	ok       int
	errors   int
	non200   int
	dropped  int
	firstErr string
}

func main() {
	addr := flag.String("addr", "127.0.0.1:18080", "host:port to connect to (loopback only)")
	host := flag.String("host", "backend", "Host header to send")
	path := flag.String("path", "/", "request path")
	rate := flag.Float64("rate", 1000, "requests per second")
	duration := flag.Duration("duration", 10*time.Second, "measured duration")
	warmup := flag.Duration("warmup", time.Second, "unmeasured warm-up at the same rate before the measurement")
	conns := flag.Int("conns", 32, "keep-alive connections (max requests in flight)")
	timeout := flag.Duration("timeout", 2*time.Second, "per-request timeout, also the drain limit")
	samplesFile := flag.String("samples", "", "also write every measured latency here, one per line in microseconds, sorted (to pool several runs)")
	flag.Parse()

	// The dispatcher holds a P while it sleeps in nanosleep; give the
	// workers a second one so releasing a request never waits for sysmon.
	if os.Getenv("GOMAXPROCS") == "" && runtime.GOMAXPROCS(0) < 2 {
		runtime.GOMAXPROCS(2)
	}

	if *rate <= 0 || *duration <= 0 || *conns <= 0 {
		fmt.Fprintln(os.Stderr, "loadgen: -rate, -duration and -conns must be positive")
		os.Exit(2)
	}
	host2, _, err := net.SplitHostPort(*addr)
	if err != nil || !net.ParseIP(host2).IsLoopback() {
		fmt.Fprintf(os.Stderr, "loadgen: -addr must be a loopback host:port, got %q\n", *addr)
		os.Exit(2)
	}

	req := []byte(fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: weft-bench-loadgen\r\n\r\n", *path, *host))
	interval := time.Duration(float64(time.Second) / *rate)
	total := int(math.Ceil((*warmup + *duration).Seconds() * *rate))
	jobs := make(chan job, total+1)

	// Dial every connection before the clock starts.
	cs := make([]net.Conn, *conns)
	for i := range cs {
		c, err := net.DialTimeout("tcp", *addr, *timeout)
		if err != nil {
			fmt.Fprintf(os.Stderr, "loadgen: dial %s: %v\n", *addr, err)
			os.Exit(1)
		}
		cs[i] = c
	}

	start := time.Now().Add(50 * time.Millisecond)
	measureFrom := start.Add(*warmup)
	end := measureFrom.Add(*duration)
	hardDeadline := end.Add(*timeout)

	stats := make([]workerStats, *conns)
	var wg sync.WaitGroup
	for i := range cs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			st := &stats[i]
			st.lat = make([]time.Duration, 0, total / *conns + 64)
			c := cs[i]
			br := bufio.NewReaderSize(c, 16<<10)
			fail := func(err error) {
				st.errors++
				if st.firstErr == "" {
					st.firstErr = err.Error()
				}
				if c != nil {
					c.Close()
				}
				c = nil
			}
			for j := range jobs {
				now := time.Now()
				if now.After(hardDeadline) {
					st.dropped++
					continue
				}
				if c == nil {
					nc, err := net.DialTimeout("tcp", *addr, *timeout)
					if err != nil {
						fail(err)
						continue
					}
					c = nc
					br.Reset(c)
				}
				_ = c.SetDeadline(now.Add(*timeout))
				if _, err := c.Write(req); err != nil {
					fail(err)
					continue
				}
				status, closeConn, err := readResponse(br)
				done := time.Now()
				if err != nil {
					fail(err)
					continue
				}
				if status != 200 {
					st.non200++
				} else {
					st.ok++
				}
				if j.measured {
					st.lat = append(st.lat, done.Sub(j.released))
				}
				if closeConn {
					c.Close()
					c = nil
				}
			}
			if c != nil {
				c.Close()
			}
		}(i)
	}

	// Dispatcher: a locked OS thread sleeping with nanosleep (Go timers are
	// rounded to ~1 ms by the netpoller), timer slack reduced to 1 ns.
	lags := make([]time.Duration, 0, total)
	released := 0
	dispDone := make(chan struct{})
	go func() {
		defer close(dispDone)
		runtime.LockOSThread()
		const prSetTimerslack = 29
		_, _, _ = syscall.Syscall(syscall.SYS_PRCTL, prSetTimerslack, 1, 0)
		for i := 0; ; i++ {
			t := start.Add(time.Duration(i) * interval)
			if !t.Before(end) {
				break
			}
			if d := time.Until(t); d > 0 {
				ts := syscall.NsecToTimespec(int64(d))
				for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
				}
			}
			now := time.Now()
			measured := !t.Before(measureFrom)
			if measured {
				lags = append(lags, now.Sub(t))
			}
			jobs <- job{released: now, measured: measured}
			released++
		}
		close(jobs)
	}()
	<-dispDone

	waitDone := make(chan struct{})
	go func() { wg.Wait(); close(waitDone) }()
	select {
	case <-waitDone:
	case <-time.After(time.Until(hardDeadline) + time.Second):
		fmt.Fprintln(os.Stderr, "loadgen: drain limit reached; reporting what completed")
		for _, c := range cs {
			c.Close()
		}
	}

	var all []time.Duration
	r := result{Addr: *addr, TargetRate: *rate, DurationS: duration.Seconds(), Released: released}
	for i := range stats {
		st := &stats[i]
		all = append(all, st.lat...)
		r.OK += st.ok
		r.Errors += st.errors
		r.Non200 += st.non200
		r.Dropped += st.dropped
		if r.FirstError == "" {
			r.FirstError = st.firstErr
		}
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	sort.Slice(lags, func(a, b int) bool { return lags[a] < lags[b] })
	r.AchievedRPS = float64(len(all)) / duration.Seconds()
	var sum time.Duration
	for _, d := range all {
		sum += d
	}
	if len(all) > 0 {
		r.MeanUS = us(sum / time.Duration(len(all)))
		r.P50US, r.P90US, r.P99US, r.P999US = us(benchkit.Percentile(all, 50)), us(benchkit.Percentile(all, 90)), us(benchkit.Percentile(all, 99)), us(benchkit.Percentile(all, 99.9))
		r.MaxUS = us(all[len(all)-1])
	}
	if len(lags) > 0 {
		r.LagP50US, r.LagP99US, r.LagMaxUS = us(benchkit.Percentile(lags, 50)), us(benchkit.Percentile(lags, 99)), us(lags[len(lags)-1])
	}
	fmt.Fprintf(os.Stderr, "loadgen: %s %.0f rps: ok=%d err=%d non200=%d dropped=%d p50=%.0fus p90=%.0fus p99=%.0fus max=%.0fus\n",
		*addr, r.AchievedRPS, r.OK, r.Errors, r.Non200, r.Dropped, r.P50US, r.P90US, r.P99US, r.MaxUS)
	if *samplesFile != "" {
		if err := writeSamples(*samplesFile, all); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
	}
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(r); err != nil {
		os.Exit(1)
	}
	if len(all) == 0 {
		os.Exit(1)
	}
}

// writeSamples writes one latency per line, in microseconds with a
// nanosecond fraction, so runs can be pooled.
func writeSamples(name string, lat []time.Duration) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, d := range lat {
		fmt.Fprintf(w, "%.3f\n", us(d))
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	return f.Close()
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
