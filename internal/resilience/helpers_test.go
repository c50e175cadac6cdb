package resilience

import (
	"sync"
	"testing"
	"time"
)

// t0 is the simulated clock's start: a realistic unix time in
// nanoseconds, on a second boundary.
const t0 = int64(1_790_000_000) * int64(time.Second)

const (
	ms  = int64(time.Millisecond)
	sec = int64(time.Second)
)

// hammer runs fn(g) on n goroutines at once and waits for them all.
func hammer(n int, fn func(g int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for g := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			fn(g)
		}()
	}
	close(start)
	wg.Wait()
}

// noAllocs fails t when fn allocates.
func noAllocs(t *testing.T, name string, fn func()) {
	t.Helper()
	if got := testing.AllocsPerRun(1000, fn); got != 0 {
		t.Errorf("%s: got %v allocations a call, want 0", name, got)
	}
}
