package endpoint

import (
	"testing"
	"time"
)

func TestEjectionBackoff(t *testing.T) {
	e := New("svc", "i1", "10.0.0.1:80", nil)
	want := []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second}
	for i, w := range want {
		before := time.Now()
		e.ConnectFailed()
		got := time.Duration(e.ejectedUntil.Load() - before.UnixNano())
		if got < w || got > w+time.Second {
			t.Errorf("failure %d: got ejected for %v, want %v", i+1, got, w)
		}
	}
}

func TestAttemptOutcomes(t *testing.T) {
	tests := []struct {
		name        string
		class       Class
		wantEjected bool
		wantFailed  uint64
		wantLatency bool
	}{
		{"success feeds the latency estimate", Success, false, 0, true},
		{"connect failure ejects", ConnectFailed, true, 1, false},
		{"reset counts as a failure, not an ejection", Reset, false, 1, false},
		{"timeout counts as a failure, not an ejection", Timeout, false, 1, false},
		{"refused is neither", Refused, false, 0, false},
		{"cancelled says nothing of the instance", Cancelled, false, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := New("svc", "i1", "10.0.0.1:80", nil)
			a := e.Begin()
			if got := e.InFlight(); got != 1 {
				t.Fatalf("in flight after Begin: got %d, want 1", got)
			}
			a.Done(Outcome{Class: tt.class, Latency: 3 * time.Millisecond})
			a.Done(Outcome{Class: ConnectFailed}) // a second Done is a no-op
			st := e.Stats()
			if st.InFlight != 0 {
				t.Errorf("in flight after Done: got %d, want 0", st.InFlight)
			}
			if got := e.Ejected(time.Now().UnixNano()); got != tt.wantEjected {
				t.Errorf("ejected: got %v, want %v", got, tt.wantEjected)
			}
			if st.Failures != tt.wantFailed || st.Attempts != 1 {
				t.Errorf("attempts, failures: got %d, %d, want 1, %d", st.Attempts, st.Failures, tt.wantFailed)
			}
			if got := st.Latency == 3*time.Millisecond; got != tt.wantLatency {
				t.Errorf("latency estimate: got %v, want 3ms: %v", st.Latency, tt.wantLatency)
			}
		})
	}
}

func TestSuccessEndsEjection(t *testing.T) {
	e := New("svc", "i1", "10.0.0.1:80", nil)
	heard := 0
	e.OnConnectFailed = func() { heard++ }
	for range 3 {
		a := e.Begin()
		a.Done(Outcome{Class: ConnectFailed})
	}
	if heard != 3 || e.Stats().ConsecutiveFailures != 3 {
		t.Fatalf("after 3 connect failures: hook heard %d, consecutive %d, want 3, 3", heard, e.Stats().ConsecutiveFailures)
	}
	a := e.Begin()
	a.Done(Outcome{Class: Success, Latency: time.Millisecond})
	if e.Ejected(time.Now().UnixNano()) || e.Stats().ConsecutiveFailures != 0 {
		t.Errorf("after a success: ejected %v, consecutive %d, want false, 0", e.Ejected(time.Now().UnixNano()), e.Stats().ConsecutiveFailures)
	}
}

func TestLatencyEstimateMovesAnEighth(t *testing.T) {
	e := New("svc", "i1", "10.0.0.1:80", nil)
	for _, d := range []time.Duration{8 * time.Millisecond, 16 * time.Millisecond} {
		a := e.Begin()
		a.Done(Outcome{Class: Success, Latency: d})
	}
	if got, want := e.Latency(), 9*time.Millisecond; got != want {
		t.Errorf("estimate after 8ms then 16ms: got %v, want %v", got, want)
	}
}

type closer struct{ n *int }

func (c closer) CloseIdle() { *c.n++ }

func TestLocalSlots(t *testing.T) {
	saved := makers
	t.Cleanup(func() { makers = saved })
	var closed int
	s := NewSlot(func(*Endpoint) Local { return closer{&closed} })
	e := New("svc", "i1", "10.0.0.1:80", nil)
	if _, ok := e.Local(s).(closer); !ok {
		t.Fatalf("Local: got %T, want the slot's value", e.Local(s))
	}
	e.CloseIdle()
	if closed != 1 {
		t.Errorf("CloseIdle reached the slot %d times, want 1", closed)
	}
}

// A timeout does not end an ejection: it says nothing of whether the
// instance can be reached (a dial may still be hanging).
func TestTimeoutKeepsEjection(t *testing.T) {
	e := New("svc", "i1", "10.0.0.1:80", nil)
	a := e.Begin()
	a.Done(Outcome{Class: ConnectFailed})
	a = e.Begin()
	a.Done(Outcome{Class: Timeout})
	if !e.Ejected(time.Now().UnixNano()) || e.Stats().ConsecutiveFailures != 1 {
		t.Errorf("after connect failure then timeout: ejected %v, consecutive %d, want true, 1",
			e.Ejected(time.Now().UnixNano()), e.Stats().ConsecutiveFailures)
	}
}
