// Package health is the sidecar's active check of the peers it sends
// to: sidecar to sidecar, not through the registry. It is one of the
// mesh's three health signals (with the registry's, from each sidecar's
// check of its own app, and passive outlier detection in package
// endpoint); balancers combine them (package lb).
//
//	sidecar:    prober.Set(service, opts, endpoints)   on every table update
//	            prober.Run(ctx)                        once
//	Run: every Interval (less jitter) per endpoint
//	     endpoint used since the last look, or within IdleAfter, or down?
//	       ──yes──> probe (HTTPProbe: GET /.well-known/weft/health) ──>
//	                UnhealthyThreshold failures in a row: SetProbeDown(true)
//	                HealthyThreshold passes in a row:     SetProbeDown(false)
//
// Only peers in use are probed, so probes grow with what each sidecar
// calls, not with consumers × providers; use is read from the endpoint's
// attempt counter between looks, at no cost to the data path.
package health

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/internal/endpoint"

	"github.com/weftmesh/weft/internal/proxy/conn"
)

// Defaults of Config.
const (
	// DefaultIdleAfter is how long an endpoint is probed after its last
	// attempt.
	DefaultIdleAfter = time.Minute
	// DefaultMaxConcurrent bounds the probes in flight at once.
	DefaultMaxConcurrent = 64
)

// Config is what a Prober is made with; the zero value is every default.
type Config struct {
	// Probe probes one endpoint (nil: HTTPProbe(nil)). Tests substitute
	// their own; a sidecar speaking mTLS to its peers gives HTTPProbe its
	// dialer.
	Probe ProbeFunc
	// IdleAfter: an endpoint is probed while it carried an attempt
	// within this long, or while it is down (0: DefaultIdleAfter).
	IdleAfter time.Duration
	// MaxConcurrent bounds the probes in flight (0: DefaultMaxConcurrent).
	MaxConcurrent int
	// Seed seeds the jitter (0: a random seed).
	Seed uint64
	// Logger hears of state changes (nil: none).
	Logger *slog.Logger
}

// Prober probes the endpoints it is given, while they are in use, and
// sets their probe-down flag. Set and Stats are safe for concurrent use
// with Run and each other.
type Prober struct {
	probe     ProbeFunc
	ownProbe  bool // Config.Probe was nil: endpoints with mutual TLS are probed over it
	idleAfter time.Duration
	maxConc   int
	log       *slog.Logger

	mu       sync.Mutex
	services map[string]*service
	running  int // probes in flight
	rnd      *rand.Rand
	wake     chan struct{} // one slot: something changed

	sent, failed, changes atomic.Uint64
}

// service is the targets of one service.
type service struct {
	opts    Options
	targets map[*endpoint.Endpoint]*target
}

// target is one endpoint's probe state, under the Prober's lock.
type target struct {
	ep       *endpoint.Endpoint
	next     time.Time // when it is looked at next
	seen     uint64    // its attempt counter at the last look
	usedAt   time.Time // when the counter last moved (zero: never seen to)
	inflight bool
	ok, bad  int // probes passed, failed, in a row
	probes   uint64
	failures uint64
	changed  time.Time // when its probe state last changed
}

// New returns a Prober with no targets.
func New(cfg Config) *Prober {
	p := &Prober{probe: cfg.Probe, idleAfter: cfg.IdleAfter, maxConc: cfg.MaxConcurrent, log: cfg.Logger,
		services: map[string]*service{}, wake: make(chan struct{}, 1)}
	if p.probe == nil {
		p.probe, p.ownProbe = HTTPProbe(nil), true
	}
	if p.idleAfter <= 0 {
		p.idleAfter = DefaultIdleAfter
	}
	if p.maxConc <= 0 {
		p.maxConc = DefaultMaxConcurrent
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	p.rnd = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return p
}

// Set makes eps the endpoints of service name to probe, with opts: an
// endpoint already there keeps its state; one no longer listed is probed
// no more and its probe-down flag is cleared; no endpoints removes the
// service. Call it on every table update.
func (p *Prober) Set(name string, opts Options, eps []*endpoint.Endpoint) error {
	if err := opts.Validate(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.services[name]
	next := &service{opts: opts, targets: make(map[*endpoint.Endpoint]*target, len(eps))}
	for _, e := range eps {
		if old != nil && old.targets[e] != nil {
			t := old.targets[e]
			if soon := time.Now().Add(opts.Interval); t.next.After(soon) {
				t.next = soon // a shorter interval counts from now, not after the old one
			}
			next.targets[e] = t
		} else {
			next.targets[e] = &target{ep: e} // looked at the next round
		}
	}
	if old != nil {
		for e := range old.targets {
			if next.targets[e] == nil && e.SetProbeDown(false) {
				p.changes.Add(1)
			}
		}
	}
	if len(eps) == 0 {
		delete(p.services, name)
	} else {
		p.services[name] = next
	}
	p.poke()
	return nil
}

// poke wakes Run without blocking.
func (p *Prober) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Run probes until ctx ends, then waits for the probes in flight (they
// end with ctx) and returns nil. Call it once.
func (p *Prober) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := p.dispatch(ctx, time.Now(), &wg)
		wait := time.Hour
		if !next.IsZero() {
			wait = max(time.Until(next), 0)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-p.wake:
		}
	}
}

// dispatch looks at every target due at now and starts the probes of
// those in use; it returns when the next target is due (zero: none is
// waiting on time).
func (p *Prober) dispatch(ctx context.Context, now time.Time, wg *sync.WaitGroup) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	var earliest time.Time
	soonest := func(t time.Time) {
		if earliest.IsZero() || t.Before(earliest) {
			earliest = t
		}
	}
	for name, svc := range p.services {
		for _, t := range svc.targets {
			if t.inflight {
				continue // its end wakes Run
			}
			if t.next.After(now) {
				soonest(t.next)
				continue
			}
			if n := t.ep.Attempts(); n != t.seen {
				t.seen, t.usedAt = n, now
			}
			if !(!t.usedAt.IsZero() && now.Sub(t.usedAt) < p.idleAfter) && !t.ep.ProbeDown() {
				t.next = now.Add(svc.opts.Interval) // idle: look again later
				soonest(t.next)
				continue
			}
			if p.running >= p.maxConc {
				continue // a probe's end wakes Run
			}
			t.inflight = true
			p.running++
			p.sent.Add(1)
			wg.Go(func() { p.run(ctx, name, t, svc.opts.Timeout, now) })
		}
	}
	return earliest
}

// run is one probe of t, started at start.
func (p *Prober) run(ctx context.Context, name string, t *target, timeout time.Duration, start time.Time) {
	defer p.poke()
	pctx, cancel := context.WithTimeout(ctx, timeout)
	probe := p.probe
	if cfg := t.ep.TLS(); cfg != nil && p.ownProbe {
		// A peer that takes mutual TLS is probed over it, as its traffic
		// goes (a strict inbound refuses plain connections).
		probe = HTTPProbe(func(context.Context, string, string) (net.Conn, error) {
			return conn.DialPeer(t.ep.Address, cfg, conn.ALPNMeshHTTP1)
		})
	}
	err := probe(pctx, t.ep.Address)
	cancel()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.running--
	t.inflight = false
	if ctx.Err() != nil {
		return // stopping: the probe says nothing of the endpoint
	}
	t.probes++
	svc := p.services[name]
	if svc == nil || svc.targets[t.ep] != t {
		return // removed meanwhile
	}
	o := svc.opts
	t.next = start.Add(o.Interval - time.Duration(p.rnd.Int64N(int64(o.Jitter)+1)))
	now := time.Now()
	if err != nil {
		p.failed.Add(1)
		t.failures++
		t.bad, t.ok = t.bad+1, 0
		if t.bad >= o.UnhealthyThreshold && t.ep.SetProbeDown(true) {
			p.changes.Add(1)
			t.changed = now
			p.log.Info("peer down", "service", name, "instance", t.ep.Instance, "address", t.ep.Address, "error", err)
		}
		return
	}
	t.ok, t.bad = t.ok+1, 0
	if t.ok >= o.HealthyThreshold && t.ep.SetProbeDown(false) {
		p.changes.Add(1)
		t.changed = now
		p.log.Info("peer up", "service", name, "instance", t.ep.Instance, "address", t.ep.Address)
	}
}

// Stats is a copy of a Prober's counters, for metrics.
type Stats struct {
	Sent         uint64 // probes started
	Failed       uint64 // probes that failed (not those cut short by Run's end)
	StateChanges uint64 // endpoints marked down or up
	InFlight     int
}

// Stats reads the Prober's counters.
func (p *Prober) Stats() Stats {
	p.mu.Lock()
	n := p.running
	p.mu.Unlock()
	return Stats{Sent: p.sent.Load(), Failed: p.failed.Load(), StateChanges: p.changes.Load(), InFlight: n}
}

// Target is one probed endpoint's state, for views such as /config.
type Target struct {
	Service          string
	Endpoint         *endpoint.Endpoint
	Active           bool      // in use (or down): probed
	Down             bool      // the endpoint's probe-down flag
	Probes, Failures uint64    // probes ended, and failed
	Changed          time.Time // when the probes last changed its state (zero: never)
}

// Targets lists the endpoints given to Set, with their probe state at
// now.
func (p *Prober) Targets(now time.Time) []Target {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Target
	for name, svc := range p.services {
		for _, t := range svc.targets {
			active := (!t.usedAt.IsZero() && now.Sub(t.usedAt) < p.idleAfter) || t.ep.ProbeDown()
			out = append(out, Target{Service: name, Endpoint: t.ep, Active: active, Down: t.ep.ProbeDown(),
				Probes: t.probes, Failures: t.failures, Changed: t.changed})
		}
	}
	return out
}
