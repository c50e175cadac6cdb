package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/endpoint"
)

// peer is a sidecar inbound answering probes with *code (checking that
// the request is a probe: 400 if not).
func peer(t *testing.T, code *atomic.Int32) string {
	t.Helper()
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != Path || r.Header.Get(Header) != "1" || !r.Close || r.Host != srv.Listener.Addr().String() {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(int(code.Load()))
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func answering(t *testing.T, code int) string {
	var c atomic.Int32
	c.Store(int32(code))
	return peer(t, &c)
}

// refused is an address nothing listens on.
func refused(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// silent is a listener that never accepts: connects succeed through the
// backlog, and nothing answers.
func silent(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// raw answers every connection with line, then closes it.
func raw(t *testing.T, line string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(line))
			c.Close()
		}
	})
	return ln.Addr().String()
}

// use has e carry one attempt.
func use(e *endpoint.Endpoint) {
	a := e.Begin()
	a.Done(endpoint.Outcome{Class: endpoint.Success, Latency: time.Millisecond})
}

// waitFor polls cond until it holds or d passes, then fails with what
// it last saw.
func waitFor(t *testing.T, d time.Duration, cond func() bool, what func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what())
		}
		time.Sleep(2 * time.Millisecond) // polling, not synchronisation
	}
}

// noProberGoroutines fails if a goroutine of this package is left.
func noProberGoroutines(t *testing.T) {
	t.Helper()
	var stacks string
	waitFor(t, 5*time.Second, func() bool {
		buf := make([]byte, 1<<20)
		stacks = string(buf[:runtime.Stack(buf, true)])
		return !strings.Contains(stacks, "health.(*Prober)") && !strings.Contains(stacks, "health.HTTPProbe")
	}, func() string { return "goroutines left:\n" + stacks })
}

func TestOptionsValidate(t *testing.T) {
	if err := DefaultOptions().Validate(); err != nil {
		t.Fatalf("defaults: got %v, want valid", err)
	}
	if d := DefaultOptions(); d.Jitter != d.Interval/10 {
		t.Errorf("default jitter: got %v, want 10%% of %v", d.Jitter, d.Interval)
	}
	tests := []struct {
		set  func(*Options)
		want string
	}{
		{func(o *Options) { o.Interval = 0 }, "healthCheck.interval: 0s must be positive"},
		{func(o *Options) { o.Timeout = -time.Second }, "healthCheck.timeout: -1s must be positive"},
		{func(o *Options) { o.HealthyThreshold = 0 }, "healthCheck.healthyThreshold: 0 must be at least 1"},
		{func(o *Options) { o.UnhealthyThreshold = -1 }, "healthCheck.unhealthyThreshold: -1 must be at least 1"},
		{func(o *Options) { o.Jitter = 5 * time.Second }, "healthCheck.jitter: 5s must be from 0 to less than interval (5s)"},
		{func(o *Options) { o.Jitter = -1 }, "healthCheck.jitter:"},
	}
	for _, tt := range tests {
		o := DefaultOptions()
		tt.set(&o)
		if err := o.Validate(); err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("Validate: got %v, want %q", err, tt.want)
		}
		if err := New(Config{}).Set("svc", o, nil); err == nil {
			t.Errorf("Set with %+v: got no error, want %q", o, tt.want)
		}
	}
}

func TestHTTPProbe(t *testing.T) {
	tests := []struct {
		name      string
		addr      string
		wantErr   bool
		unhealthy bool // errors.Is ErrUnhealthy
	}{
		{"200 is healthy", answering(t, 200), false, false},
		{"503 is not", answering(t, 503), true, true},
		{"204 is not", answering(t, 204), true, true},
		{"connection refused", refused(t), true, false},
		{"a listener that never accepts", silent(t), true, false},
		{"not HTTP", raw(t, "SSH-2.0-OpenSSH\r\n"), true, true},
		{"HTTP/1.0 200", raw(t, "HTTP/1.0 200 OK\r\n\r\n"), false, false},
		{"closed before a status line", raw(t, ""), true, false},
	}
	probe := HTTPProbe(nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			start := time.Now()
			err := probe(ctx, tt.addr)
			if (err != nil) != tt.wantErr || errors.Is(err, ErrUnhealthy) != tt.unhealthy {
				t.Errorf("probe: got %v, want error %v, unhealthy %v", err, tt.wantErr, tt.unhealthy)
			}
			if err != nil && !strings.Contains(err.Error(), tt.addr) {
				t.Errorf("error %q does not name the address %s", err, tt.addr)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("probe took %v, want it bounded by its 200ms context", d)
			}
		})
	}
}

// recorder is a fake probe that fails the addresses in fail and records
// every call.
type recorder struct {
	mu    sync.Mutex
	fail  map[string]bool
	calls []string
}

func (r *recorder) probe(_ context.Context, addr string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, addr)
	if r.fail[addr] {
		return errors.New("down")
	}
	return nil
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls
	r.calls = nil
	return c
}

func (r *recorder) setFail(addr string, f bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail[addr] = f
}

// Rounds on a test clock: which endpoints are probed, and when their
// state changes.
func TestProberRounds(t *testing.T) {
	rec := &recorder{fail: map[string]bool{}}
	p := New(Config{Probe: rec.probe, IdleAfter: 20 * time.Second, Seed: 1})
	opts := Options{Interval: 5 * time.Second, Timeout: time.Second, HealthyThreshold: 2, UnhealthyThreshold: 3}
	a := endpoint.New("svc", "a", "10.0.0.1:80", nil)
	b := endpoint.New("svc", "b", "10.0.0.2:80", nil)
	use(a)
	if err := p.Set("svc", opts, []*endpoint.Endpoint{a, b}); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	round := func(want ...string) {
		t.Helper()
		var wg sync.WaitGroup
		p.dispatch(context.Background(), now, &wg)
		wg.Wait()
		if got := rec.take(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("at +%v: probed %v, want %v", now.Sub(time.Unix(1000, 0)), got, want)
		}
		now = now.Add(opts.Interval)
	}
	round("10.0.0.1:80") // a carried an attempt; b never did
	round("10.0.0.1:80")
	round("10.0.0.1:80")
	round("10.0.0.1:80")
	round()              // 20 s without an attempt: a is idle
	use(b)               // b is used now
	round("10.0.0.2:80") // and probed from the next look
	rec.setFail("10.0.0.2:80", true)
	round("10.0.0.2:80")
	round("10.0.0.2:80")
	if b.ProbeDown() {
		t.Fatalf("b down after 2 failures, want up until 3")
	}
	round("10.0.0.2:80")
	if !b.ProbeDown() {
		t.Fatalf("b up after 3 failures, want down")
	}
	for range 6 { // idle, but down: still probed
		round("10.0.0.2:80")
	}
	rec.setFail("10.0.0.2:80", false)
	round("10.0.0.2:80")
	if !b.ProbeDown() {
		t.Fatalf("b up after 1 success, want down until 2")
	}
	round("10.0.0.2:80")
	if b.ProbeDown() {
		t.Fatalf("b down after 2 successes, want up")
	}
	round() // up and idle: left alone
	if st := p.Stats(); st.Sent != 16 || st.Failed != 9 || st.StateChanges != 2 || st.InFlight != 0 {
		t.Errorf("stats: got %+v, want 16 sent, 9 failed, 2 changes, 0 in flight", st)
	}

	// Removing an endpoint stops its probes and clears its flag.
	rec.setFail("10.0.0.2:80", true)
	use(b)
	for range 4 {
		round("10.0.0.2:80")
	}
	if !b.ProbeDown() {
		t.Fatalf("b up after 4 failures, want down")
	}
	if err := p.Set("svc", opts, []*endpoint.Endpoint{a}); err != nil {
		t.Fatal(err)
	}
	if b.ProbeDown() {
		t.Errorf("b removed: still probe-down, want the flag cleared")
	}
	use(a)
	round("10.0.0.1:80")
	if err := p.Set("svc", opts, nil); err != nil {
		t.Fatal(err)
	}
	use(a)
	round()
	if got := p.Targets(now); len(got) != 0 {
		t.Errorf("targets after removing the service: got %d, want 0", len(got))
	}
}

// The real probe against real listeners, run by Run: the peers that
// answer 503, refuse or never answer are marked down within three
// intervals (on their third failed probe), the healthy one never; a peer
// that recovers is up again; Run ends with its context and leaves no
// goroutine.
func TestProberRealPeers(t *testing.T) {
	var flaky atomic.Int32
	flaky.Store(503)
	eps := []*endpoint.Endpoint{
		endpoint.New("svc", "ok", answering(t, 200), nil),
		endpoint.New("svc", "flaky", peer(t, &flaky), nil),
		endpoint.New("svc", "refused", refused(t), nil),
		endpoint.New("svc", "silent", silent(t), nil),
	}
	for _, e := range eps {
		use(e)
	}
	opts := Options{Interval: 50 * time.Millisecond, Timeout: 25 * time.Millisecond, HealthyThreshold: 2, UnhealthyThreshold: 3, Jitter: 5 * time.Millisecond}
	p := New(Config{})
	if err := p.Set("svc", opts, eps); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: got %v, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Run did not return within 5s of its context ending")
		}
		noProberGoroutines(t)
	}()

	targets := func() map[string]Target {
		m := map[string]Target{}
		for _, tg := range p.Targets(time.Now()) {
			m[tg.Endpoint.Instance] = tg
		}
		return m
	}
	show := func() string { return fmt.Sprintf("targets %+v", targets()) }
	waitFor(t, 5*time.Second, func() bool {
		return eps[1].ProbeDown() && eps[2].ProbeDown() && eps[3].ProbeDown()
	}, show)
	for name, tg := range targets() {
		if name == "ok" {
			if tg.Down || tg.Failures != 0 || tg.Probes == 0 {
				t.Errorf("ok: got %+v, want up, probed, no failures", tg)
			}
			continue
		}
		// Down on the third failed probe: probes start at once, then one
		// interval apart (less jitter), so the third ends within three.
		took := tg.Changed.Sub(start)
		t.Logf("%s down after %v (interval %v)", name, took, opts.Interval)
		if took > 3*opts.Interval+time.Second {
			t.Errorf("%s: down after %v, want within three intervals of %v (with slack for a loaded machine)", name, took, opts.Interval)
		}
	}
	flaky.Store(200)
	waitFor(t, 5*time.Second, func() bool { return !eps[1].ProbeDown() }, show)
	if eps[0].ProbeDown() {
		t.Errorf("ok marked down")
	}
	if st := p.Stats(); st.StateChanges < 4 || st.Failed < 9 || st.Sent <= st.Failed {
		t.Errorf("stats: got %+v, want at least 4 changes, 9 failures, more sent than failed", st)
	}
}

// Run stops with its context while a probe hangs, and leaves nothing.
func TestRunStopsWithProbeInFlight(t *testing.T) {
	e := endpoint.New("svc", "silent", silent(t), nil)
	use(e)
	p := New(Config{})
	opts := Options{Interval: time.Second, Timeout: time.Minute, HealthyThreshold: 1, UnhealthyThreshold: 1}
	if err := p.Set("svc", opts, []*endpoint.Endpoint{e}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	waitFor(t, 5*time.Second, func() bool { return p.Stats().InFlight == 1 }, func() string { return fmt.Sprintf("stats %+v", p.Stats()) })
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("Run did not return within 5s of its context ending, a probe in flight")
	}
	if st := p.Stats(); st.Failed != 0 || e.ProbeDown() {
		t.Errorf("a probe cut short by Run's end: got %+v, down %v, want no failure", st, e.ProbeDown())
	}
	noProberGoroutines(t)
}
