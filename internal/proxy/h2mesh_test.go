package proxy

import (
	"sync"
	"testing"
)

// TestH2MeshGRPCShaped runs the benchmark's calls through the two hops
// once, concurrently, and checks nothing is left running afterwards.
func TestH2MeshGRPCShaped(t *testing.T) {
	for _, frames := range []bool{true, false} {
		t.Run(map[bool]string{true: "frames", false: "xnet"}[frames], func(t *testing.T) { testH2MeshGRPCShaped(t, frames) })
	}
}

func testH2MeshGRPCShaped(t *testing.T, frames bool) {
	checkGoroutines(t)
	addr := h2Mesh(t, h2Backend(t), frames)
	tr := newH2CClient(t)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				if err := grpcCall(tr, addr); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
