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
	if m.ctx.Err() != nil {
		return false
	}
	select {
	case m.slots <- struct{}{}:
	default:
		return false
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		timeout := MirrorTimeout
		if c.Overall > 0 {
			timeout = min(timeout, c.Overall)
		}
		ctx, cancel := context.WithTimeout(m.ctx, timeout)
		o.sendMirror(c, r.WithContext(ctx), func() { cancel(); <-m.slots })
	}()
	return true
}

// sendMirror is one mirrored request: its answer is read and dropped,
// and recorded under direction "mirror" once release has freed its
// place.
func (o *Outbound) sendMirror(c *plan.Cluster, r *http.Request, release func()) {
	mt := c.Metrics()
	start := time.Now()
	mt.Begin()
	status := plan.StatusAborted
	defer func() {
		if p := recover(); p != nil && p != http.ErrAbortHandler { // (a body cut off mid-way)
			panic(p)
		}
		release()
		mt.Done(status, start)
	}()
	status = o.route(&discard{}, r, c, start, nil, nil) // (copies are not recorded)
}

// CloseMirrors stops the mirrored requests in flight and waits for
// them; later copies are shed.
func (o *Outbound) CloseMirrors() {
	m := &o.mirrors
	m.init(o.MaxMirrors)
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
	routed *plan.Routed
	head   *http.Request
	buf    []byte
	done   bool
}

func (t *teeBody) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	if t.done {
		return n, err
	}
	if len(t.buf)+n > plan.MaxMirrorBody {
		t.finish(plan.MirrorBodyTooLarge)
	} else {
		t.buf = append(t.buf, p[:n]...)
	}
	switch {
	case err == io.EOF:
		t.finish("")
	case err != nil:
		t.finish(plan.MirrorIncomplete)
	}
	return n, err
}

func (t *teeBody) finish(drop string) {
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
// the upstream).
func mirror(r *http.Request, routed *plan.Routed) {
	head := r.Clone(context.Background()) // before the edits and hop handling change r
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		routed.SendMirrors(head, nil)
		return
	}
	if r.ContentLength > plan.MaxMirrorBody {
		routed.DropMirrors(plan.MirrorBodyTooLarge)
		return
	}
	r.Body = &teeBody{ReadCloser: r.Body, routed: routed, head: head}
}
