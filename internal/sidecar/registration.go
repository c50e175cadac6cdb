package sidecar

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/registry"
)

// registration keeps this instance in the registry: it registers, renews
// the lease every third of its TTL, registers again when the lease is gone
// (after a long control plane outage), and rewrites the record when the
// app's readiness changes.
type registration struct {
	api *api.Client
	ttl time.Duration
	log *slog.Logger

	mu         sync.Mutex
	inst       registry.Instance
	lease      int64 // 0 until registered
	dirty      bool  // the record in the registry is out of date
	registered bool
	kick       chan struct{} // one slot: "the record changed"
}

func newRegistration(c *api.Client, inst registry.Instance, ttl time.Duration, log *slog.Logger) *registration {
	return &registration{api: c, inst: inst, ttl: ttl, log: log, dirty: true, kick: make(chan struct{}, 1)}
}

// setReady records the app's readiness; the loop writes it out.
func (r *registration) setReady(ready bool) {
	r.mu.Lock()
	changed := r.inst.Ready != ready
	r.inst.Ready = ready
	r.dirty = r.dirty || changed
	r.mu.Unlock()
	if changed {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
}

// Registered reports whether the registry holds a current record.
func (r *registration) Registered() (bool, int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.registered, r.lease
}

func (r *registration) run(ctx context.Context) {
	beat := r.ttl / 3
	backoff := 200 * time.Millisecond
	for {
		wait := beat
		if err := r.step(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			r.log.Warn("registration: control plane unreachable, retrying", "err", err)
			wait = backoff/2 + rand.N(backoff/2+1)
			backoff = min(backoff*2, beat)
		} else {
			backoff = 200 * time.Millisecond
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-r.kick:
		case <-t.C:
		}
		t.Stop()
	}
}

// step writes the record if it changed, else renews the lease.
func (r *registration) step(ctx context.Context) error {
	r.mu.Lock()
	inst, lease, dirty := r.inst, r.lease, r.dirty
	r.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if !dirty {
		err := r.api.KeepAlive(cctx, lease)
		if !errors.Is(err, api.ErrNotFound) {
			return err
		}
		r.log.Warn("registration: lease expired, registering again", "lease", lease)
		dirty = true
	}
	resp, err := r.api.Register(cctx, api.RegisterRequest{Instance: inst, Lease: lease, TTLSeconds: int(r.ttl / time.Second)})
	if err != nil {
		r.mu.Lock()
		r.registered = false
		r.mu.Unlock()
		return err
	}
	r.mu.Lock()
	if r.lease != resp.Lease {
		r.log.Info("registered", "address", inst.Address, "ready", inst.Ready, "lease", resp.Lease)
	}
	r.lease, r.registered = resp.Lease, true
	r.dirty = r.inst.Ready != inst.Ready // changed again while we wrote
	r.mu.Unlock()
	return nil
}

// deregister removes the instance at shutdown; best effort, bounded by ctx.
func (r *registration) deregister(ctx context.Context) {
	r.mu.Lock()
	inst := r.inst
	r.registered = false
	r.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := r.api.Deregister(cctx, inst.Service, inst.ID); err != nil {
		r.log.Warn("deregister failed; the lease will lapse", "err", err)
		return
	}
	r.log.Info("deregistered")
}
