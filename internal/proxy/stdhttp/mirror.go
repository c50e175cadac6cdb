package stdhttp

import (
	"context"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/weftmesh/weft/internal/proxy/plan"
)

// Mirroring: Outbound is the sidecar's plan.Mirrorer. Each copy runs in
// a goroutine of its own through the mirror's cluster (one try), with at
// most Outbound.MaxMirrors at once: a copy over that is shed and counted,
// never queued, so a slow or dead mirror costs the caller nothing.

// DefaultMaxMirrors bounds the mirrored requests a sidecar has in flight
// at once (Outbound.MaxMirrors).
const DefaultMaxMirrors = 128

// MirrorTimeout bounds a mirrored request, answer body included, when
// its service's policy sets no shorter timeout.
const MirrorTimeout = 10 * time.Second

var _ plan.Mirrorer = (*Outbound)(nil)

// mirrors is the Outbound's state of mirrored requests in flight.
type mirrors struct {
	once   sync.Once
	slots  chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex // orders wg.Add after the closed check, before CloseMirrors' Wait
	closed bool
	wg     sync.WaitGroup
}

func (m *mirrors) init(n int) {
	m.once.Do(func() {
		if n <= 0 {
			n = DefaultMaxMirrors
		}
		m.slots = make(chan struct{}, n)
		m.ctx, m.cancel = context.WithCancel(context.Background())
	})
}

// Mirror sends r through c's plan in the background and drops the
// answer; false when MaxMirrors are in flight already, or the Outbound
// is closed.
func (o *Outbound) Mirror(c *plan.Cluster, r *http.Request) bool {
	m := &o.mirrors
	m.init(o.MaxMirrors)
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return false
	}
	select {
	case m.slots <- struct{}{}:
	default:
		m.mu.Unlock()
		return false
	}
	m.wg.Add(1)
	m.mu.Unlock()
	// In flight from the moment it holds a place, so that no copy holds
	// one unseen (it is counted out after it has let the place go).
	mt := c.Metrics()
	start := time.Now()
	mt.Begin()
	go func() {
		defer m.wg.Done()
		timeout := MirrorTimeout
		if c.Overall > 0 {
			timeout = min(timeout, c.Overall)
		}
		ctx, cancel := context.WithTimeout(m.ctx, timeout)
		o.sendMirror(c, r.WithContext(ctx), mt, start, func() { cancel(); <-m.slots })
	}()
	return true
}

// sendMirror is one mirrored request, begun at start: its answer is
// read and dropped, and recorded under direction "mirror" once release
// has freed its place.
func (o *Outbound) sendMirror(c *plan.Cluster, r *http.Request, mt *plan.ServiceMetrics, start time.Time, release func()) {
	res := plan.Result{Status: plan.StatusAborted}
	defer func() {
		if p := recover(); p != nil && p != http.ErrAbortHandler { // (a body cut off mid-way)
			panic(p)
		}
		release()
		mt.Done(res, start)
	}()
	res = o.route(&discard{}, r, c, start, nil, nil) // (copies are not recorded)
}

// CloseMirrors stops the mirrored requests in flight and waits for
// them; later copies are shed.
func (o *Outbound) CloseMirrors() {
	m := &o.mirrors
	m.init(o.MaxMirrors)
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait()
}

// discard is the ResponseWriter of a mirrored request: the answer goes
// nowhere.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header {
	if d.h == nil {
		d.h = http.Header{}
	}
	return d.h
}
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(int)             {}

// teeBody copies a request body, as it passes, for the route's mirrors:
// at EOF the copy goes to SendMirrors; over plan.MaxMirrorBody, or on a
// read error, the mirrors are dropped. It never holds the body back.
type teeBody struct {
	io.ReadCloser
	mu     sync.Mutex // Read runs in the transport's goroutine; finish also in the handler's
	routed *plan.Routed
	head   *http.Request
	buf    []byte
	done   bool
}

func (t *teeBody) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return n, err
	}
	if len(t.buf)+n > plan.MaxMirrorBody {
		t.finishLocked(plan.MirrorBodyTooLarge)
	} else {
		t.buf = append(t.buf, p[:n]...)
	}
	switch {
	case err == io.EOF:
		t.finishLocked("")
	case err != nil:
		t.finishLocked(plan.MirrorIncomplete)
	}
	return n, err
}

// finish ends the copy: sent when drop is "", else dropped and counted
// as drop. The first call decides.
func (t *teeBody) finish(drop string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.finishLocked(drop)
}

func (t *teeBody) finishLocked(drop string) {
	if t.done {
		return
	}
	t.done = true
	if drop != "" {
		t.routed.DropMirrors(drop)
	} else {
		t.routed.SendMirrors(t.head, t.buf)
	}
	t.buf = nil
}

// Close drops the mirrors when the body was not read to its end.
func (t *teeBody) Close() error {
	t.finish(plan.MirrorIncomplete)
	return t.ReadCloser.Close()
}

// mirror hands r to the route's mirrors: at once when it has no body,
// else as its body passes (the body is teed, never buffered ahead of
// the upstream). The tee it returns (nil: none) must be finished when
// the handler ends: a body not read to its end is not mirrored.
func mirror(r *http.Request, routed *plan.Routed) *teeBody {
	head := r.Clone(context.Background()) // before the edits and hop handling change r
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		routed.SendMirrors(head, nil)
		return nil
	}
	if r.ContentLength > plan.MaxMirrorBody {
		routed.DropMirrors(plan.MirrorBodyTooLarge)
		return nil
	}
	t := &teeBody{ReadCloser: r.Body, routed: routed, head: head}
	r.Body = t
	return t
}
