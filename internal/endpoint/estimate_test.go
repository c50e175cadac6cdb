package endpoint

import (
	"math"
	"sync"
	"testing"
	"time"
)

// clocked is an endpoint whose clock starts at unix 0, so that tests
// give attempt times as offsets.
func clocked() *Endpoint {
	e := New("svc", "i1", "10.0.0.1:80", nil)
	e.peak.Store(pack(false, tick(0), float64(DefaultLatency)))
	return e
}

// step is one attempt that ends at end.
type step struct {
	end time.Duration
	o   Outcome
}

func run(e *Endpoint, steps []step) {
	for _, s := range steps {
		a := e.BeginAt(time.Unix(0, int64(s.end-s.o.Latency)))
		a.Done(s.o)
	}
}

func ok(end, lat time.Duration) step { return step{end, Outcome{Class: Success, Latency: lat}} }

func status(end, lat time.Duration, st Status) step {
	return step{end, Outcome{Class: Success, Latency: lat, Status: st}}
}

func class(end, lat time.Duration, c Class) step { return step{end, Outcome{Class: c, Latency: lat}} }

// near reports whether got is within 0.5% of want (ticks round times to
// about 2 ms; float32 keeps 7 digits).
func near(got, want float64) bool { return math.Abs(got-want) <= 0.005*math.Abs(want)+1e-9 }

const ms = time.Millisecond

func TestPeakEWMA(t *testing.T) {
	e1 := math.Exp(-1)
	tests := []struct {
		name  string
		steps []step
		read  time.Duration // when the estimate is read
		want  time.Duration
	}{
		{name: "a new endpoint starts at the default", want: DefaultLatency},
		{name: "the default decays on read like any estimate", read: 10 * time.Second,
			want: time.Duration(float64(DefaultLatency) * e1)},
		{name: "the first sample replaces the default, even a lower one",
			steps: []step{ok(time.Second, 5*ms)}, read: time.Second, want: 5 * ms},
		{name: "a higher sample replaces the estimate at once",
			steps: []step{ok(time.Second, 10*ms), ok(time.Second+ms, 50*ms)}, read: time.Second + ms, want: 50 * ms},
		{name: "a lower sample at the same time moves it nothing",
			steps: []step{ok(time.Second, 50*ms), ok(time.Second, 10*ms), ok(time.Second, 10*ms)}, read: time.Second, want: 50 * ms},
		{name: "a lower sample half a decay time later moves it 1-1/√e of the way",
			steps: []step{ok(time.Second, 50*ms), ok(6*time.Second, 10*ms)}, read: 6 * time.Second,
			want: time.Duration(50*math.Exp(-0.5)*float64(ms) + 10*(1-math.Exp(-0.5))*float64(ms))},
		{name: "a success one decay time later replaces the stale estimate",
			steps: []step{ok(time.Second, 50*ms), ok(11*time.Second, 10*ms)}, read: 11 * time.Second, want: 10 * ms},
		{name: "decay counts wall time, not samples: ten samples over 10 s move it as one sample 10 s later",
			steps: func() []step {
				s := []step{ok(time.Second, 50*ms)}
				for i := 1; i <= 10; i++ {
					s = append(s, ok(time.Second+time.Duration(i)*time.Second, 10*ms))
				}
				return s
			}(), read: 11 * time.Second,
			want: time.Duration(50*e1*float64(ms) + 10*(1-e1)*float64(ms))},
		{name: "read decays toward zero since the last sample",
			steps: []step{ok(time.Second, 10*ms)}, read: 11 * time.Second, want: time.Duration(10 * e1 * float64(ms))},
		{name: "a fast 503 does not lower it",
			steps: []step{ok(time.Second, 10*ms), status(time.Second, ms, HTTPStatus(503))}, read: time.Second, want: 10 * ms},
		{name: "a failure renews the stamp: a failing endpoint does not decay toward zero",
			steps: []step{ok(time.Second, 10*ms), status(11*time.Second, ms, GRPCStatus(14))}, read: 11 * time.Second, want: 10 * ms},
		{name: "a fast reset does not lower it",
			steps: []step{ok(time.Second, 10*ms), class(time.Second, ms, Reset)}, read: time.Second, want: 10 * ms},
		{name: "a timeout raises it",
			steps: []step{ok(time.Second, 10*ms), class(3*time.Second, 2*time.Second, Timeout)}, read: 3 * time.Second, want: 2 * time.Second},
		{name: "a slow 503 raises it",
			steps: []step{ok(time.Second, 10*ms), status(time.Second, 300*ms, HTTPStatus(503))}, read: time.Second, want: 300 * ms},
		{name: "a fast failure before any sample keeps the default",
			steps: []step{status(0, ms, HTTPStatus(503))}, want: DefaultLatency},
		{name: "then the first success still replaces the default",
			steps: []step{status(0, ms, HTTPStatus(503)), ok(0, 4*ms)}, want: 4 * ms},
		{name: "a 500 is an answer: it feeds the estimate",
			steps: []step{ok(time.Second, 10*ms), status(time.Second, 90*ms, HTTPStatus(500))}, read: time.Second, want: 90 * ms},
		{name: "connect failures, refusals and cancellations leave it",
			steps: []step{ok(time.Second, 10*ms), class(time.Second, ms, ConnectFailed), class(time.Second, ms, Refused),
				class(time.Second, ms, Cancelled)}, read: time.Second, want: 10 * ms},
		{name: "a sample that ends before the last update does not move the stamp back",
			steps: []step{ok(10*time.Second, 10*ms), ok(5*time.Second, 100*ms)}, read: 10 * time.Second, want: 100 * ms},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := clocked()
			run(e, tt.steps)
			if got := e.PeakLatency(int64(tt.read)); !near(float64(got), float64(tt.want)) {
				t.Errorf("estimate at %v: got %v, want %v", tt.read, got, tt.want)
			}
		})
	}
}

func TestDecayTimeIsTheEndpoints(t *testing.T) {
	e := clocked()
	e.Decay = time.Second
	run(e, []step{ok(0, 10*ms)})
	if got, want := e.PeakLatency(int64(time.Second)), time.Duration(10*math.Exp(-1)*float64(ms)); !near(float64(got), float64(want)) {
		t.Errorf("estimate one (1 s) decay time later: got %v, want %v", got, want)
	}
}

func TestFailureRate(t *testing.T) {
	const w = failureWeight
	e1 := math.Exp(-1)
	tests := []struct {
		name  string
		steps []step
		read  time.Duration
		want  float64
	}{
		{name: "no attempt", want: 0},
		{name: "successes", steps: []step{ok(0, ms), ok(0, ms)}, want: 0},
		{name: "one connect failure", steps: []step{class(0, ms, ConnectFailed)}, want: w},
		{name: "one reset", steps: []step{class(0, ms, Reset)}, want: w},
		{name: "one timeout", steps: []step{class(0, ms, Timeout)}, want: w},
		{name: "two failures", steps: []step{class(0, ms, Reset), class(0, ms, Reset)}, want: w + (1-w)*w},
		{name: "a failure then a success", steps: []step{class(0, ms, Reset), ok(0, ms)}, want: w * (1 - w)},
		{name: "502", steps: []step{status(0, ms, HTTPStatus(502))}, want: w},
		{name: "503", steps: []step{status(0, ms, HTTPStatus(503))}, want: w},
		{name: "504", steps: []step{status(0, ms, HTTPStatus(504))}, want: w},
		{name: "429", steps: []step{status(0, ms, HTTPStatus(429))}, want: w},
		{name: "gRPC UNAVAILABLE", steps: []step{status(0, ms, GRPCStatus(14))}, want: w},
		{name: "gRPC RESOURCE_EXHAUSTED", steps: []step{status(0, ms, GRPCStatus(8))}, want: w},
		{name: "500 is an answer", steps: []step{status(0, ms, HTTPStatus(500))}, want: 0},
		{name: "404 is an answer", steps: []step{status(0, ms, HTTPStatus(404))}, want: 0},
		{name: "gRPC INTERNAL is an answer", steps: []step{status(0, ms, GRPCStatus(13))}, want: 0},
		{name: "cancelled is ignored", steps: []step{class(0, ms, Reset), class(0, ms, Cancelled)}, want: w},
		{name: "refused is ignored", steps: []step{class(0, ms, Reset), class(0, ms, Refused)}, want: w},
		{name: "decays toward zero on read", steps: []step{class(0, ms, Reset)}, read: 10 * time.Second, want: w * e1},
		{name: "decays between attempts", steps: []step{class(0, ms, Reset), ok(10*time.Second, ms)},
			read: 10 * time.Second, want: w * e1 * (1 - w)},
		{name: "always failing nears one", steps: func() []step {
			var s []step
			for range 100 {
				s = append(s, status(0, ms, HTTPStatus(503)))
			}
			return s
		}(), want: 1 - math.Pow(1-w, 100)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := clocked()
			run(e, tt.steps)
			if got := e.FailureRate(int64(tt.read)); !near(got, tt.want) {
				t.Errorf("failure rate at %v: got %.5f, want %.5f", tt.read, got, tt.want)
			}
		})
	}
	t.Run("failures count in Stats but 503 does not eject", func(t *testing.T) {
		e := New("svc", "i1", "10.0.0.1:80", nil)
		a := e.Begin()
		a.Done(Outcome{Class: Success, Latency: ms, Status: HTTPStatus(503)})
		st := e.Stats()
		if st.Failures != 1 || st.FailureRate < w*0.99 || !st.EjectedUntil.IsZero() || st.Latency != 0 {
			t.Errorf("after a 503: got failures %d, rate %.4f, ejected until %v, latency %v; want 1, %.4f, zero, 0",
				st.Failures, st.FailureRate, st.EjectedUntil, st.Latency, w)
		}
	})
}

func TestRetryAfter(t *testing.T) {
	tests := []struct {
		name      string
		steps     []step
		wantUntil time.Duration // 0: not deferred
	}{
		{name: "none", steps: []step{ok(time.Second, ms)}},
		{name: "a 503 with Retry-After defers from the attempt's end",
			steps:     []step{{time.Second, Outcome{Class: Success, Latency: ms, Status: HTTPStatus(503), RetryAfter: 5 * time.Second}}},
			wantUntil: 6 * time.Second},
		{name: "a later, shorter Retry-After keeps the longer",
			steps: []step{{time.Second, Outcome{Class: Success, RetryAfter: 10 * time.Second}},
				{2 * time.Second, Outcome{Class: Success, RetryAfter: time.Second}}},
			wantUntil: 11 * time.Second},
		{name: "a later, longer one extends it",
			steps: []step{{time.Second, Outcome{Class: Success, RetryAfter: time.Second}},
				{2 * time.Second, Outcome{Class: Success, RetryAfter: 3 * time.Second}}},
			wantUntil: 5 * time.Second},
		{name: "capped at RetryAfterMax",
			steps:     []step{{time.Second, Outcome{Class: Success, RetryAfter: 24 * time.Hour}}},
			wantUntil: time.Second + RetryAfterMax},
		{name: "a cancelled attempt says nothing",
			steps: []step{{time.Second, Outcome{Class: Cancelled, RetryAfter: time.Minute}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := clocked()
			run(e, tt.steps)
			got := time.Duration(e.deferredUntil.Load())
			if got != tt.wantUntil {
				t.Fatalf("deferred until: got %v, want %v", got, tt.wantUntil)
			}
			if tt.wantUntil == 0 {
				return
			}
			if !e.Deferred(int64(tt.wantUntil-1)) || e.Deferred(int64(tt.wantUntil)) {
				t.Errorf("Deferred just before and at %v: got %v, %v, want true, false",
					tt.wantUntil, e.Deferred(int64(tt.wantUntil-1)), e.Deferred(int64(tt.wantUntil)))
			}
			if e.Ejected(int64(tt.wantUntil - 1)) {
				t.Errorf("ejected: got true, want false (a Retry-After defers, it does not eject)")
			}
		})
	}
	t.Run("Stats shows it", func(t *testing.T) {
		e := New("svc", "i1", "10.0.0.1:80", nil)
		a := e.Begin()
		a.Done(Outcome{Class: Success, RetryAfter: time.Minute})
		if st := e.Stats(); st.DeferredUntil.Before(time.Now().Add(50 * time.Second)) {
			t.Errorf("DeferredUntil: got %v, want about a minute from now", st.DeferredUntil)
		}
	})
}

func TestStatus(t *testing.T) {
	tests := []struct {
		s          Status
		wantString string
		wantFailed bool
	}{
		{0, "none", false},
		{HTTPStatus(200), "http 200", false},
		{HTTPStatus(500), "http 500", false},
		{HTTPStatus(502), "http 502", true},
		{HTTPStatus(503), "http 503", true},
		{HTTPStatus(504), "http 504", true},
		{HTTPStatus(429), "http 429", true},
		{HTTPStatus(99), "none", false},
		{HTTPStatus(1000), "none", false},
		{GRPCStatus(0), "grpc 0", false},
		{GRPCStatus(14), "grpc 14", true},
		{GRPCStatus(8), "grpc 8", true},
		{GRPCStatus(4), "grpc 4", false},
		{GRPCStatus(-1), "none", false},
	}
	for _, tt := range tests {
		if got := tt.s.String(); got != tt.wantString {
			t.Errorf("String of %d: got %q, want %q", tt.s, got, tt.wantString)
		}
		if got := tt.s.Failed(); got != tt.wantFailed {
			t.Errorf("Failed of %v: got %v, want %v", tt.s, got, tt.wantFailed)
		}
	}
	if c, ok := HTTPStatus(503).GRPC(); ok {
		t.Errorf("GRPC of http 503: got %d, true, want false", c)
	}
	if c, ok := GRPCStatus(14).HTTP(); ok {
		t.Errorf("HTTP of grpc 14: got %d, true, want false", c)
	}
}

// Concurrent samples are all kept: with every attempt ending in the same
// tick, the estimate is the largest sample whatever the order. Each
// worker's samples rise, so every sample is a new peak for a moment, and
// a lost update would leave a smaller one.
func TestConcurrentSamplesKeepThePeak(t *testing.T) {
	const workers, per = 4, 2000
	end := int64(100*time.Millisecond) &^ (1<<tickShift - 1)
	for round := range 5 {
		e := clocked()
		start := make(chan struct{})
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				<-start
				for i := range per {
					lat := time.Duration(1+i*workers+w) * time.Microsecond
					a := e.BeginAt(time.Unix(0, end-int64(lat)))
					a.Done(Outcome{Class: Success, Latency: lat})
				}
			})
		}
		close(start)
		wg.Wait()
		st := e.Stats()
		if got, want := e.PeakLatency(end), time.Duration(workers*per)*time.Microsecond; got != want {
			t.Errorf("round %d: estimate after concurrent samples: got %v, want the largest, %v", round, got, want)
		}
		if st.InFlight != 0 || st.Attempts != workers*per {
			t.Errorf("round %d: in flight, attempts: got %d, %d, want 0, %d", round, st.InFlight, st.Attempts, workers*per)
		}
	}
}

func TestBeginDoneAllocatesNothing(t *testing.T) {
	e := New("svc", "i1", "10.0.0.1:80", nil)
	outcomes := []Outcome{
		{Class: Success, Latency: ms},
		{Class: Success, Latency: ms, Status: HTTPStatus(503), RetryAfter: time.Millisecond},
		{Class: Reset, Latency: ms},
		{Class: Timeout, Latency: 2 * ms},
		{Class: Refused},
		{Class: Cancelled},
	}
	for _, o := range outcomes {
		if got := testing.AllocsPerRun(100, func() {
			a := e.Begin()
			a.Done(o)
		}); got != 0 {
			t.Errorf("allocations per Begin and Done(%v): got %v, want 0", o.Class, got)
		}
	}
}

func TestEndpointNotMadeByNew(t *testing.T) {
	e := &Endpoint{Service: "svc", Instance: "i1"}
	if got := e.PeakLatency(time.Now().UnixNano()); got != DefaultLatency {
		t.Errorf("estimate of an endpoint not made by New: got %v, want %v", got, DefaultLatency)
	}
	a := e.Begin()
	a.Done(Outcome{Class: Success, Latency: 4 * ms})
	if got := e.PeakLatency(time.Now().UnixNano()); !near(float64(got), float64(4*ms)) {
		t.Errorf("after its first sample: got %v, want %v", got, 4*ms)
	}
}
