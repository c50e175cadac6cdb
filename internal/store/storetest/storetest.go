// Package storetest gives tests an embedded etcd of their own and checks
// that a test binary leaves no goroutine running.
package storetest

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/store"
)

// Open starts an embedded etcd for one test and closes it at the end.
func Open(t testing.TB) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := store.Open(ctx, store.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatalf("store.Open: got error %v, want nil", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Ctx is a context that ends with the test, or after 30 s.
func Ctx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Main runs the tests, then fails the binary if goroutines started during
// them are still running 5 s later. Call it from TestMain.
func Main(m *testing.M) {
	// Control planes leave their API token for the local user's CLI: in
	// tests, in a directory of the test binary's own.
	cfgDir, err := os.MkdirTemp("", "weft-test-config-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("XDG_CONFIG_HOME", cfgDir)
	before := runtime.NumGoroutine()
	code := m.Run()
	os.RemoveAll(cfgDir)
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		<-time.After(10 * time.Millisecond) // polling interval while goroutines wind down
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		fmt.Fprintf(os.Stderr, "goroutines: got %d after the tests, want at most %d as before them:\n%s", n, before, buf[:runtime.Stack(buf, true)])
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}
