package resilience

import "sync/atomic"

// ThresholdsOptions are Envoy's circuit breaker thresholds for one
// destination (a service, or one endpoint). Zero values are taken
// literally: start from DefaultThresholdsOptions.
type ThresholdsOptions struct {
	// MaxRequests bounds the requests in flight (at least 1; default
	// 1024).
	MaxRequests int
	// MaxPending bounds the requests waiting for a connection (at least
	// 1; default 1024).
	MaxPending int
}

// DefaultThresholdsOptions are Envoy's: 1024 and 1024.
func DefaultThresholdsOptions() ThresholdsOptions {
	return ThresholdsOptions{MaxRequests: 1024, MaxPending: 1024}
}

// Validate names the first field that is out of range.
func (o ThresholdsOptions) Validate() error {
	if o.MaxRequests < 1 {
		return optErr("connectionPool.maxRequests", "%d must be at least 1", o.MaxRequests)
	}
	if o.MaxPending < 1 {
		return optErr("connectionPool.maxPendingRequests", "%d must be at least 1", o.MaxPending)
	}
	return nil
}

// Thresholds are the two gates of a destination: Requests (in flight)
// and Pending (waiting for a connection).
type Thresholds struct {
	requests, pending Gate
}

// NewThresholds returns open gates, or the options' error.
func NewThresholds(o ThresholdsOptions) (*Thresholds, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	t := &Thresholds{}
	t.requests.max.Store(int64(o.MaxRequests))
	t.pending.max.Store(int64(o.MaxPending))
	return t, nil
}

// Set changes the thresholds in place (a configuration reload), keeping
// the places taken: callers holding a place still release it here.
func (t *Thresholds) Set(o ThresholdsOptions) error {
	if err := o.Validate(); err != nil {
		return err
	}
	t.requests.SetMax(o.MaxRequests)
	t.pending.SetMax(o.MaxPending)
	return nil
}

// Requests is the gate of requests in flight.
func (t *Thresholds) Requests() *Gate { return &t.requests }

// Pending is the gate of requests waiting for a connection.
func (t *Thresholds) Pending() *Gate { return &t.pending }

// Gate bounds how many holders there are at once: Acquire takes a place
// if one is free, Release gives it back. Lock-free and allocation-free;
// safe for concurrent use. A refusal is counted in Rejected.
type Gate struct {
	max      atomic.Int64
	n        atomic.Int64
	rejected atomic.Uint64
}

// NewGate returns a gate of n places (at least 1).
func NewGate(n int) (*Gate, error) {
	if n < 1 {
		return nil, optErr("max", "%d must be at least 1", n)
	}
	g := &Gate{}
	g.max.Store(int64(n))
	return g, nil
}

// Acquire takes a place and reports true, or reports false when all are
// taken. Concurrent callers at the limit may see one more refusal than
// strictly needed, never one place too many.
func (g *Gate) Acquire() bool {
	if g.n.Add(1) > g.max.Load() {
		g.n.Add(-1)
		g.rejected.Add(1)
		return false
	}
	return true
}

// Release gives back a place taken by Acquire.
func (g *Gate) Release() { g.n.Add(-1) }

// InUse is how many places are taken.
func (g *Gate) InUse() int { return int(g.n.Load()) }

// SetMax changes the number of places (at least 1), keeping those taken.
// When fewer are left than are taken, Acquire refuses until enough are
// released.
func (g *Gate) SetMax(n int) { g.max.Store(int64(max(n, 1))) }

// Max is how many places there are.
func (g *Gate) Max() int { return int(g.max.Load()) }

// Rejected is how many Acquires were refused, ever.
func (g *Gate) Rejected() uint64 { return g.rejected.Load() }
