package endpoint

import (
	"errors"
	"testing"
	"time"
)

// The connection gate: TakeConn stops at the limit; a waiter wakes when
// a connection closes; waiters beyond Pending, and a waiter whose time
// runs out, get ErrConnLimit; no wait allowed means none.
func TestConnLimit(t *testing.T) {
	e := New("svc", "svc-1", "127.0.0.1:1", nil)
	if !e.TakeConn(1) || e.TakeConn(1) {
		t.Fatal("TakeConn(1) twice: want the first only")
	}
	if !e.TakeConn(0) || e.OpenConns() != 2 {
		t.Fatalf("TakeConn(0) counts without a limit: %d open, want 2", e.OpenConns())
	}
	e.ReleaseConn()
	lim := ConnLimit{Max: 1, Pending: 1, Wait: 5 * time.Second}

	got := make(chan error, 1)
	go func() { got <- e.AcquireConn(lim) }()
	deadline := time.Now().Add(5 * time.Second)
	for e.WaitingForConn() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the waiter never waited")
		}
		<-time.After(time.Millisecond)
	}
	if err := e.AcquireConn(lim); !errors.Is(err, ErrConnLimit) {
		t.Errorf("a second waiter with Pending 1: %v, want ErrConnLimit", err)
	}
	e.ReleaseConn()
	if err := <-got; err != nil {
		t.Fatalf("the waiter, after a release: %v", err)
	}
	if e.OpenConns() != 1 || e.WaitingForConn() != 0 {
		t.Fatalf("%d open, %d waiting; want 1 and 0", e.OpenConns(), e.WaitingForConn())
	}

	start := time.Now()
	if err := e.AcquireConn(ConnLimit{Max: 1, Wait: 30 * time.Millisecond}); !errors.Is(err, ErrConnLimit) {
		t.Errorf("a wait that runs out: %v, want ErrConnLimit", err)
	}
	if waited := time.Since(start); waited < 30*time.Millisecond {
		t.Errorf("gave up after %s, want the whole 30ms", waited)
	}
	if err := e.AcquireConn(ConnLimit{Max: 1}); !errors.Is(err, ErrConnLimit) {
		t.Errorf("no wait allowed: %v, want ErrConnLimit", err)
	}
	e.ReleaseConn()
	if e.OpenConns() != 0 || e.WaitingForConn() != 0 {
		t.Fatalf("%d open, %d waiting; want none", e.OpenConns(), e.WaitingForConn())
	}
}
