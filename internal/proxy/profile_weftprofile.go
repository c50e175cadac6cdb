//go:build weftprofile

package proxy

import "runtime"

// Built with -tags weftprofile (for measurements only, never shipped), a
// binary records mutex contention and blocking, so that the admin
// listener's /debug/pprof/mutex and /debug/pprof/block have something to
// show (bench/grpcbench -profile).
func init() {
	runtime.SetMutexProfileFraction(10)
	runtime.SetBlockProfileRate(100_000) // one sample per 100 µs blocked
}
