package sidecar

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/testlog"
)

func newLog(level slog.Level) (*slog.Logger, *testlog.Buffer) { return testlog.New(level) }

// eventually polls cond every 5 ms until it holds or 10 s pass.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s; last seen: %s", what, last)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
}

// app is an HTTP app whose health the test sets.
func app(t *testing.T) (addr string, up *atomic.Bool) {
	up = new(atomic.Bool)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), up
}

// runHealth runs h until the test ends and counts its reports.
func runHealth(t *testing.T, h *health) (downs, ups *atomic.Int64) {
	downs, ups = new(atomic.Int64), new(atomic.Int64)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.run(ctx, func(ok bool) {
			if ok {
				ups.Add(1)
			} else {
				downs.Add(1)
			}
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return downs, ups
}

func TestHealthGivesTheAppAStartGrace(t *testing.T) {
	addr, up := app(t)
	log, out := newLog(slog.LevelInfo)
	h := newHealth(addr, "/healthz", 10*time.Millisecond, log)
	h.grace = time.Hour
	downs, ups := runHealth(t, h)

	// The app is not listening yet: not ready, and no warning.
	eventually(t, "three failed checks", func() (bool, string) { return downs.Load() >= 3, out.String() })
	if strings.Contains(out.String(), "app is down") {
		t.Fatalf("log before the app was ever up, within the grace: got %q, want no 'app is down'", out.String())
	}
	if h.ok.Load() {
		t.Errorf("ok before the app is up: got true, want false")
	}

	up.Store(true)
	eventually(t, "app is up logged", func() (bool, string) {
		return ups.Load() > 0 && strings.Contains(out.String(), `msg="app is up"`), out.String()
	})

	// Once the app was up, going down is reported at once.
	up.Store(false)
	eventually(t, "app is down logged", func() (bool, string) {
		return strings.Contains(out.String(), `msg="app is down: instance marked not ready"`), out.String()
	})
	if n := strings.Count(out.String(), `msg="app is up"`); n != 1 {
		t.Errorf("'app is up' lines: got %d, want 1:\n%s", n, out.String())
	}
}

func TestHealthWarnsWhenTheAppNeverComesUp(t *testing.T) {
	addr, _ := app(t)
	log, out := newLog(slog.LevelInfo)
	h := newHealth(addr, "/healthz", 10*time.Millisecond, log)
	h.grace = 50 * time.Millisecond
	downs, _ := runHealth(t, h)

	eventually(t, "warning after the grace", func() (bool, string) {
		return strings.Contains(out.String(), `msg="app is down: not up since the sidecar started; instance not ready"`), out.String()
	})
	// Said once, not at every check.
	n := downs.Load()
	eventually(t, "more failed checks", func() (bool, string) { return downs.Load() >= n+3, out.String() })
	if c := strings.Count(out.String(), "app is down"); c != 1 {
		t.Errorf("'app is down' lines: got %d, want 1:\n%s", c, out.String())
	}
}

func TestHealthTCPCheck(t *testing.T) {
	addr, _ := app(t) // a listener: the TCP check only connects
	log, _ := newLog(slog.LevelInfo)
	h := newHealth(addr, "", time.Second, log)
	if !h.check(context.Background()) {
		t.Errorf("TCP check of a listening port: got false, want true")
	}
	h = newHealth("127.0.0.1:1", "", time.Second, log)
	if h.check(context.Background()) {
		t.Errorf("TCP check of a closed port: got true, want false")
	}
}
