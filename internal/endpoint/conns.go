package endpoint

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// conns counts an endpoint's open connections, for the engines whose
// requests each hold one (HTTP/1.1 and TCP), and lets requests wait for
// one when the count is at its limit (circuitBreaker.maxConnections and
// maxPendingRequests). Engines count every connection, limited or not, so
// that a limit set later starts from the truth.
type conns struct {
	open    atomic.Int32
	waiting atomic.Int32
	mu      sync.Mutex
	wake    chan struct{} // closed and replaced when a connection frees; nil: nobody waits
}

// ConnLimit is how many connections a request may find open to one
// endpoint before it waits, and for how long.
type ConnLimit struct {
	Max     int           // open connections per endpoint (0: no limit)
	Pending int           // requests that may wait at once per endpoint (0: no limit)
	Wait    time.Duration // the longest a request waits (0: it does not wait)
}

// ErrConnLimit is the error of a request that found an endpoint at its
// connection limit and could not wait for a connection (errors.Is).
var ErrConnLimit = errors.New("at its connection limit")

// OpenConns is how many connections engines hold open to e.
func (e *Endpoint) OpenConns() int { return int(e.conns.open.Load()) }

// WaitingForConn is how many requests wait for a connection to e.
func (e *Endpoint) WaitingForConn() int { return int(e.conns.waiting.Load()) }

// TakeConn counts a connection about to be dialled, if fewer than max
// are open (max 0: always). A taken connection is given back with
// ReleaseConn when it closes, or when its dial fails.
func (e *Endpoint) TakeConn(max int) bool {
	c := &e.conns
	if max <= 0 {
		c.open.Add(1)
		return true
	}
	for {
		n := c.open.Load()
		if int(n) >= max {
			return false
		}
		if c.open.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// ReleaseConn gives back a connection TakeConn counted: it closed.
func (e *Endpoint) ReleaseConn() {
	e.conns.open.Add(-1)
	e.ConnFreed()
}

// ConnFreed tells waiting requests that a connection may be free: one
// closed, or went idle in a pool. Cheap when nobody waits.
func (e *Endpoint) ConnFreed() {
	c := &e.conns
	if c.waiting.Load() == 0 {
		return
	}
	c.mu.Lock()
	if c.wake != nil {
		close(c.wake)
		c.wake = nil
	}
	c.mu.Unlock()
}

// AwaitConn waits, as one of at most lim.Pending (0: any number), for
// take to succeed: take looks for a connection (an idle one in the
// engine's pool, or TakeConn) and is called again each time one may have
// freed, until lim.Wait has passed. It returns an error wrapping
// ErrConnLimit when lim allows no wait, when lim.Pending requests wait
// already, or when the wait runs out. Call take once yourself first: a
// request that need not wait costs nothing here.
func (e *Endpoint) AwaitConn(lim ConnLimit, take func() bool) error {
	c := &e.conns
	if lim.Wait <= 0 {
		return fmt.Errorf("%d connections open, and the request has no time to wait: %w", lim.Max, ErrConnLimit)
	}
	// Counted as waiting before the look, so that a connection freed
	// between the look and the wait wakes it (ConnFreed reads waiting).
	if n := c.waiting.Add(1); lim.Pending > 0 && int(n) > lim.Pending {
		c.waiting.Add(-1)
		return fmt.Errorf("%d connections open and %d requests waiting for one: %w", lim.Max, lim.Pending, ErrConnLimit)
	}
	defer c.waiting.Add(-1)
	t := time.NewTimer(lim.Wait)
	defer t.Stop()
	for {
		c.mu.Lock()
		if c.wake == nil {
			c.wake = make(chan struct{})
		}
		w := c.wake
		c.mu.Unlock()
		if take() {
			return nil
		}
		select {
		case <-w:
		case <-t.C:
			return fmt.Errorf("%d connections open all of %s: %w", lim.Max, lim.Wait, ErrConnLimit)
		}
	}
}

// AcquireConn counts a connection to be dialled under lim, waiting while
// lim.Max are open: for engines with no pool of their own to look in
// (TCP, and net/http's, which hands a waiting request any connection
// that goes idle meanwhile). Give it back with ReleaseConn.
func (e *Endpoint) AcquireConn(lim ConnLimit) error {
	if e.TakeConn(lim.Max) {
		return nil
	}
	return e.AwaitConn(lim, func() bool { return e.TakeConn(lim.Max) })
}
