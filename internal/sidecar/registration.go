package sidecar

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/registry"
	"github.com/weftmesh/weft/internal/version"
)

// registration keeps this sidecar's records in the registry, both on one
// lease: its proxy record (every sidecar, so consumer-only ones are visible
// in `weft get proxies`) and, when it has an app, its instance. It writes
// both, renews the lease every third of its TTL, writes them again when the
// lease is gone (after a long control plane outage), and rewrites the
// instance when the app's readiness changes.
type registration struct {
	api *api.Client
	ttl time.Duration
	log *slog.Logger

	mu         sync.Mutex
	proxy      registry.Proxy
	inst       *registry.Instance // nil for a consumer-only sidecar
	lease      registry.LeaseID   // 0 until registered
	proxyDirty bool               // the proxy record is not written under lease
	instDirty  bool               // the instance record is out of date
	registered bool
	kick       chan struct{} // one slot: "a record changed"
}

func newRegistration(c *api.Client, p registry.Proxy, ttl time.Duration, log *slog.Logger) *registration {
	return &registration{api: c, proxy: p, ttl: ttl, log: log, proxyDirty: true, kick: make(chan struct{}, 1)}
}

// setInstance adds the instance record; call it before run.
func (r *registration) setInstance(in registry.Instance) {
	r.mu.Lock()
	r.inst, r.instDirty = &in, true
	r.mu.Unlock()
}

// setReady records the app's readiness; the loop writes it out.
func (r *registration) setReady(ready bool) {
	r.mu.Lock()
	changed := r.inst != nil && r.inst.Ready != ready
	if changed {
		r.inst.Ready, r.instDirty = ready, true
	}
	r.mu.Unlock()
	if changed {
		r.poke()
	}
}

func (r *registration) poke() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Registered reports whether the registry holds current records, and the
// lease they are on.
func (r *registration) Registered() (bool, registry.LeaseID) {
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

// step writes what is out of date, else renews the lease.
func (r *registration) step(ctx context.Context) error {
	r.mu.Lock()
	p, lease, writeProxy, writeInst := r.proxy, r.lease, r.proxyDirty, r.instDirty
	hasInst := r.inst != nil
	r.mu.Unlock()
	was := lease
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if !writeProxy && !writeInst {
		err := r.api.KeepAlive(cctx, lease)
		if !errors.Is(err, api.ErrNotFound) {
			return err
		}
		// The records went with the lease.
		r.log.Warn("registration: lease expired, registering again", "lease", lease)
		writeProxy, writeInst = true, hasInst
	}
	if writeProxy {
		resp, err := r.api.RegisterProxy(cctx, api.ProxyRequest{Proxy: p, Lease: lease, TTLSeconds: r.ttlSeconds()})
		if err != nil {
			return r.failed(err)
		}
		// On a new lease the instance must move to it.
		writeInst = writeInst || (hasInst && resp.Lease != lease)
		lease = resp.Lease
		r.mu.Lock()
		r.lease, r.proxyDirty = lease, false
		r.mu.Unlock()
	}
	var inst registry.Instance
	if writeInst {
		r.mu.Lock()
		inst = *r.inst
		r.mu.Unlock()
		resp, err := r.api.Register(cctx, api.RegisterRequest{Instance: inst, Lease: lease, TTLSeconds: r.ttlSeconds()})
		if err != nil {
			return r.failed(err)
		}
		r.mu.Lock()
		if resp.Lease != lease {
			// The lease lapsed between the two writes, taking the proxy
			// record with it: write that again on the new lease.
			r.proxyDirty = true
			r.poke()
		}
		lease = resp.Lease
		r.lease = lease
		r.instDirty = r.inst.Ready != inst.Ready // changed again while we wrote
		r.mu.Unlock()
	}
	r.mu.Lock()
	r.registered = !r.proxyDirty
	r.mu.Unlock()
	if lease != was {
		if hasInst {
			r.log.Info("registered", "address", inst.Address, "ready", inst.Ready, "lease", lease)
		} else {
			r.log.Info("registered", "outbound", p.Outbound, "lease", lease)
		}
	}
	return nil
}

func (r *registration) ttlSeconds() int { return int(r.ttl / time.Second) }

func (r *registration) failed(err error) error {
	r.mu.Lock()
	r.registered = false
	r.mu.Unlock()
	return err
}

// deregister removes the records at shutdown; best effort, bounded by ctx.
// Deleting the instance revokes the lease, which removes the proxy record
// too; the second delete is for a consumer-only sidecar, or a lease that
// was already replaced.
func (r *registration) deregister(ctx context.Context) {
	r.mu.Lock()
	p, inst := r.proxy, r.inst
	r.registered = false
	r.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var err error
	if inst != nil {
		err = r.api.Deregister(cctx, inst.Service, inst.ID)
	}
	if err == nil {
		err = r.api.DeregisterProxy(cctx, p.Service, p.ID)
	}
	if err != nil {
		r.log.Warn("deregister failed; the lease will lapse", "err", err)
		return
	}
	r.log.Info("deregistered")
}

// proxyRecord is what this sidecar says of itself in the registry.
func (s *Sidecar) proxyRecord() registry.Proxy {
	host, _ := os.Hostname()
	out, _, admin := s.Addrs()
	p := registry.Proxy{
		Service:  s.cfg.Service,
		ID:       s.cfg.ID,
		Node:     host,
		Outbound: out,
		Admin:    admin,
		Version:  version.Version,
		Since:    time.Now().UTC().Truncate(time.Second),
	}
	if s.inLn != nil {
		p.Inbound = s.advertise()
	}
	return p
}
