package http1

import "sync"

// Request bodies read whole, to be sent again to another instance
// (plan.Call.KeepBody): a retry, or a hedge.

// keptPool holds buffers for request bodies kept to send again.
var keptPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// getKept is a buffer of n bytes for a kept body.
func getKept(n int) *[]byte {
	b := keptPool.Get().(*[]byte)
	if cap(*b) < n {
		*b = make([]byte, n)
	}
	*b = (*b)[:n]
	return b
}

func putKept(b *[]byte) {
	if cap(*b) <= 64<<10 {
		keptPool.Put(b)
	}
}
