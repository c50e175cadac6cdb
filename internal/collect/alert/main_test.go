package alert

import (
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"
)

// TestMain fails the run when goroutines outlive the tests: every
// evaluator, notifier worker and webhook connection must be stopped.
func TestMain(m *testing.M) {
	before := runtime.NumGoroutine()
	code := m.Run()
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
