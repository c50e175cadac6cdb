// Package hub is the control plane's side of the push stream (see package
// push for the whole picture):
//
//	etcd watch (/weft/...) --> Hub: state at revision R + log of recent changes
//	                              |  (one broadcast channel, closed on change)
//	                              v
//	   Handler per sidecar (GET /v1/stream?since=REV): Since(lastRev) ->
//	   snapshot or changes, written as push.Message lines to push.Client
//
// The Hub mirrors the pushed part of etcd (instances and config) in memory
// and never blocks on a slow stream: each stream pulls what it has not seen
// when it is ready to write, and falls back to a full snapshot if the log
// has moved on. It links the etcd client, so sidecars do not import it.
package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/keyspace"
	"github.com/weftmesh/weft/internal/push"
	"github.com/weftmesh/weft/internal/registry"
)

// maxLog bounds the change log; older changes are served as a snapshot.
const maxLog = 8192

// pushed reports whether a key is part of what sidecars need: instances,
// service records (names the mesh keeps knowing after their last
// instance) and resources; not proxy records.
func pushed(key string) bool {
	return strings.HasPrefix(key, registry.KeyPrefix) || strings.HasPrefix(key, registry.ServiceKeyPrefix) ||
		strings.HasPrefix(key, config.KeyPrefix)
}

type logged struct {
	rev int64
	ch  push.Change
}

// Hub mirrors the pushed part of etcd in memory.
type Hub struct {
	c   *clientv3.Client
	log *slog.Logger

	mu      sync.Mutex
	state   map[string][]byte
	rev     int64    // revision state is at
	logRev  int64    // every change after logRev is in changes
	changes []logged // ascending by rev
	changed chan struct{}
	cache   struct { // the last message built, shared by streams at the same revision
		since, rev int64
		line       []byte
	}
	ready chan struct{}
	// appliedAt is when the hub took in its latest change (zero: only
	// the first load), for the push latency.
	appliedAt time.Time
}

// New returns a Hub; Run fills it.
func New(c *clientv3.Client, log *slog.Logger) *Hub {
	return &Hub{c: c, log: log, state: map[string][]byte{}, changed: make(chan struct{}), ready: make(chan struct{})}
}

// Ready is closed once the first load from etcd is done.
func (h *Hub) Ready() <-chan struct{} { return h.ready }

// Run loads state from etcd and follows its watch until ctx ends,
// reloading after a compaction or a broken watch.
func (h *Hub) Run(ctx context.Context) error {
	first := true
	for ctx.Err() == nil {
		rev, err := h.load(ctx)
		if err != nil {
			h.log.Warn("push: load from etcd failed, retrying", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		if first {
			close(h.ready)
			first = false
		}
		h.follow(ctx, rev)
	}
	return nil
}

func (h *Hub) load(ctx context.Context) (int64, error) {
	resp, err := h.c.Get(ctx, keyspace.Prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", keyspace.Prefix, err)
	}
	state := make(map[string][]byte, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if k := string(kv.Key); pushed(k) && h.valid(k, kv.Value) {
			state[k] = kv.Value
		}
	}
	h.mu.Lock()
	h.state = state
	h.rev = resp.Header.Revision
	h.logRev = h.rev
	h.changes = nil
	h.broadcastLocked()
	h.mu.Unlock()
	return resp.Header.Revision, nil
}

func (h *Hub) follow(ctx context.Context, rev int64) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for resp := range h.c.Watch(wctx, keyspace.Prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
		if err := resp.Err(); err != nil {
			h.log.Warn("push: etcd watch ended, reloading", "err", err)
			return
		}
		h.apply(resp.Header.Revision, resp.Events)
	}
}

func (h *Hub) apply(rev int64, events []*clientv3.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ev := range events {
		k := string(ev.Kv.Key)
		if !pushed(k) {
			continue
		}
		c := push.Change{Key: k}
		// A record overwritten with something that is not JSON is gone as
		// far as sidecars are concerned.
		if ev.Type == clientv3.EventTypePut && h.valid(k, ev.Kv.Value) {
			c.Value = ev.Kv.Value
			h.state[k] = ev.Kv.Value
		} else {
			delete(h.state, k)
		}
		h.changes = append(h.changes, logged{rev: ev.Kv.ModRevision, ch: c})
	}
	if n := len(events); n > 0 { // a catching-up watch's header is ahead of its events
		rev = events[n-1].Kv.ModRevision
	}
	if rev > h.rev {
		h.rev = rev
		h.appliedAt = time.Now()
	}
	if n := len(h.changes); n > maxLog {
		drop := n - maxLog/2
		h.logRev = h.changes[drop-1].rev
		h.changes = append([]logged(nil), h.changes[drop:]...)
	}
	h.broadcastLocked()
}

// valid keeps a record that is not JSON (written by hand into a shared
// etcd) out of every stream; it is logged and skipped.
func (h *Hub) valid(key string, v []byte) bool {
	if json.Valid(v) {
		return true
	}
	h.log.Warn("push: skipping a record that is not JSON", "key", key)
	return false
}

func (h *Hub) broadcastLocked() {
	close(h.changed)
	h.changed = make(chan struct{})
}

// AppliedAt is when the hub took in its latest change from the store
// (zero: none since its first load).
func (h *Hub) AppliedAt() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.appliedAt
}

// Since returns the encoded line that brings a receiver at revision since up
// to date (nil when it is already), the revision it brings it to, and a
// channel closed at the next change. since 0 always gets a snapshot.
func (h *Hub) Since(since int64) (line []byte, rev int64, changed <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	changed = h.changed
	if since == h.rev && since != 0 {
		return nil, since, changed
	}
	if h.cache.line != nil && h.cache.since == since && h.cache.rev == h.rev {
		return h.cache.line, h.rev, changed
	}
	var msg push.Message
	if since == 0 || since < h.logRev || since > h.rev {
		msg = push.Message{Type: push.TypeSnapshot, Revision: h.rev, Changes: make([]push.Change, 0, len(h.state))}
		for k, v := range h.state {
			msg.Changes = append(msg.Changes, push.Change{Key: k, Value: v})
		}
	} else {
		msg = push.Message{Type: push.TypeUpdate, Revision: h.rev}
		for _, l := range h.changes {
			if l.rev > since {
				msg.Changes = append(msg.Changes, l.ch)
			}
		}
	}
	line = push.Encode(msg)
	h.cache.since, h.cache.rev, h.cache.line = since, h.rev, line
	return line, h.rev, changed
}
