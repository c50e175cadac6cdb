package resilience

import (
	"sync/atomic"
	"testing"
	"time"
)

func newBreaker(t testing.TB) *Breaker {
	t.Helper()
	b, err := NewBreaker(DefaultBreakerOptions(), t0)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// outcome lets one request through b at now and ends it.
func outcome(t *testing.T, b *Breaker, success bool, now int64) {
	t.Helper()
	p, ok := b.Allow(now)
	if !ok {
		t.Fatalf("at t0+%v: refused, want allowed", time.Duration(now-t0))
	}
	p.Done(success, now)
}

func wantState(t *testing.T, b *Breaker, now int64, want State, wantSince int64) {
	t.Helper()
	if s, since := b.State(now); s != want || since != wantSince {
		t.Errorf("state at t0+%v: got %v since t0+%v, want %v since t0+%v", time.Duration(now-t0),
			s, time.Duration(since-t0), want, time.Duration(wantSince-t0))
	}
}

func TestBreakerOpensAtItsThreshold(t *testing.T) {
	tests := []struct {
		name      string
		successes int
		failures  int // before the last failure
		wantOpen  bool
	}{
		{"19 failures are under MinRequests", 0, 18, false},
		{"20 failures of 20", 0, 19, true},
		{"10 of 20 is the ratio", 10, 9, true},
		{"10 of 21 is under it", 11, 9, false},
		{"1 of 1 is under MinRequests", 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBreaker(t)
			now := t0
			for range tt.successes {
				now += ms
				outcome(t, b, true, now)
			}
			for range tt.failures {
				now += ms
				outcome(t, b, false, now)
			}
			wantState(t, b, now, Closed, t0)
			now += ms
			outcome(t, b, false, now)
			if tt.wantOpen {
				wantState(t, b, now, Open, now)
				if b.Opens() != 1 {
					t.Errorf("opens: got %d, want 1", b.Opens())
				}
			} else {
				wantState(t, b, now, Closed, t0)
			}
		})
	}
}

// Failures older than the window do not count.
func TestBreakerWindowForgets(t *testing.T) {
	b := newBreaker(t)
	for range 19 {
		outcome(t, b, false, t0)
	}
	outcome(t, b, false, t0+11*sec)
	wantState(t, b, t0+11*sec, Closed, t0)
	if f, n := b.Outcomes(t0 + 11*sec); f != 1 || n != 1 {
		t.Errorf("outcomes: got %d of %d, want 1 of 1", f, n)
	}
}

// open → fails fast for OpenFor → half-open admits HalfOpenRequests
// probes → their success closes it with a fresh window.
func TestBreakerRecovers(t *testing.T) {
	b := newBreaker(t)
	for range 20 {
		outcome(t, b, false, t0)
	}
	openFor := int64(30 * time.Second)
	if _, ok := b.Allow(t0 + openFor - 1); ok {
		t.Fatal("just before OpenFor: allowed, want refused")
	}
	if got := b.Rejected(); got != 1 {
		t.Errorf("rejected: got %d, want 1", got)
	}
	wantState(t, b, t0+openFor, HalfOpen, t0+openFor)
	now := t0 + openFor + 5*sec
	var probes [5]Permit
	for i := range probes {
		p, ok := b.Allow(now)
		if !ok {
			t.Fatalf("probe %d: refused, want allowed", i+1)
		}
		probes[i] = p
	}
	if _, ok := b.Allow(now); ok {
		t.Fatal("sixth request while half-open: allowed, want refused")
	}
	wantState(t, b, now, HalfOpen, t0+openFor)
	for i := range probes {
		wantState(t, b, now, HalfOpen, t0+openFor)
		probes[i].Done(true, now+int64(i))
	}
	closedAt := now + 4
	wantState(t, b, closedAt, Closed, closedAt)
	// A fresh window: one failure does not reopen it.
	outcome(t, b, false, closedAt+ms)
	wantState(t, b, closedAt+ms, Closed, closedAt)
	if f, n := b.Outcomes(closedAt + ms); f != 1 || n != 1 {
		t.Errorf("outcomes after closing: got %d of %d, want 1 of 1", f, n)
	}
}

func TestBreakerProbeFailureReopens(t *testing.T) {
	b := newBreaker(t)
	for range 20 {
		outcome(t, b, false, t0)
	}
	now := t0 + int64(31*time.Second)
	ok1, _ := b.Allow(now)
	p2, _ := b.Allow(now)
	ok1.Done(true, now)
	p2.Done(false, now+ms)
	wantState(t, b, now+ms, Open, now+ms)
	if b.Opens() != 2 {
		t.Errorf("opens: got %d, want 2", b.Opens())
	}
	if _, ok := b.Allow(now + 2*ms); ok {
		t.Error("after the probe failed: allowed, want refused")
	}
}

// A cancelled probe gives its place back.
func TestBreakerCancelledProbe(t *testing.T) {
	o := DefaultBreakerOptions()
	o.HalfOpenRequests = 1
	b, err := NewBreaker(o, t0)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		outcome(t, b, false, t0)
	}
	now := t0 + int64(30*time.Second)
	p, ok := b.Allow(now)
	if !ok {
		t.Fatal("probe: refused")
	}
	if _, ok := b.Allow(now); ok {
		t.Fatal("second probe: allowed, want refused")
	}
	p.Cancel()
	p.Done(false, now) // after Cancel: nothing
	wantState(t, b, now, HalfOpen, now)
	outcome(t, b, true, now)
	wantState(t, b, now, Closed, now)
}

// An outcome of a request let through before a change of state changes
// nothing after it.
func TestBreakerStalePermit(t *testing.T) {
	b := newBreaker(t)
	stale, _ := b.Allow(t0)
	for range 20 {
		outcome(t, b, false, t0)
	}
	now := t0 + int64(30*time.Second)
	for range 5 {
		outcome(t, b, true, now)
	}
	wantState(t, b, now, Closed, now)
	stale.Done(false, now)
	if f, n := b.Outcomes(now); f != 0 || n != 0 {
		t.Errorf("outcomes after a stale failure: got %d of %d, want 0 of 0", f, n)
	}
	var zero Permit
	zero.Done(false, now)
	zero.Cancel()
}

// Many goroutines, every request failing: the breaker opens, refuses,
// and never lets more than HalfOpenRequests probes out at once.
func TestBreakerConcurrent(t *testing.T) {
	b := newBreaker(t)
	var clock atomic.Int64
	clock.Store(t0)
	var probesOut, maxOut atomic.Int32
	hammer(4, func(int) {
		for range 20000 {
			now := clock.Add(int64(time.Millisecond))
			p, ok := b.Allow(now)
			if !ok {
				continue
			}
			if p.probe {
				n := probesOut.Add(1)
				for m := maxOut.Load(); n > m && !maxOut.CompareAndSwap(m, n); m = maxOut.Load() {
				}
				probesOut.Add(-1)
			}
			p.Done(false, now)
		}
	})
	if b.Opens() < 2 {
		t.Errorf("opens: got %d, want at least 2 in 80 s of failures", b.Opens())
	}
	if b.Rejected() == 0 {
		t.Error("rejected: got 0, want some")
	}
	if got := maxOut.Load(); got > 5 {
		t.Errorf("probes out at once: got %d, want at most 5", got)
	}
}

func TestBreakerNoAllocs(t *testing.T) {
	b := newBreaker(t)
	now := t0
	noAllocs(t, "Allow+Done while closed", func() {
		now += ms
		p, _ := b.Allow(now)
		p.Done(true, now)
	})
	for range 20 {
		p, _ := b.Allow(now)
		p.Done(false, now)
	}
	noAllocs(t, "Allow while open", func() { b.Allow(now) })
}

func BenchmarkBreaker(b *testing.B) {
	br := newBreaker(b)
	b.Run("closed", func(b *testing.B) {
		now := t0
		for b.Loop() {
			now += 1000
			p, _ := br.Allow(now)
			p.Done(true, now)
		}
	})
	b.Run("closed-parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			now := t0
			for pb.Next() {
				now += 1000
				p, _ := br.Allow(now)
				p.Done(true, now)
			}
		})
	})
}
