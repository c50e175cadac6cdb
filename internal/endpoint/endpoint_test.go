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
