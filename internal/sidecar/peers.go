package sidecar

import (
	"context"
	"time"

	peerhealth "github.com/weftmesh/weft/internal/health"
	"github.com/weftmesh/weft/internal/snapshot"
)

// peers keeps watch on the instances this sidecar sends to, beside what
// the registry says of them: the prober checks the peers in use directly
// (a dead host or a partition shows while the registry still lists the
// instance), and outlier detection's success-rate check runs on a tick.
type peers struct {
	prober *peerhealth.Prober
	probed map[string]bool // services given to the prober
}

func newPeers(s *Sidecar) *peers {
	return &peers{prober: peerhealth.New(peerhealth.Config{Logger: s.log}), probed: map[string]bool{}}
}

// update gives the prober the mesh services of snap with their health
// check (external services are nobody's sidecar: they are not probed),
// and stops probing services that are gone or no longer ask for it.
func (p *peers) update(s *Sidecar, snap *snapshot.Snapshot) {
	seen := map[string]bool{}
	for name, svc := range snap.Services {
		c := s.table.Lookup(name)
		hc := svc.Policy.HealthCheck
		if c == nil || svc.External || !hc.Enabled || len(c.Endpoints) == 0 {
			continue
		}
		opts := peerhealth.Options{Interval: hc.Interval, Timeout: hc.Timeout, HealthyThreshold: hc.HealthyThreshold,
			UnhealthyThreshold: hc.UnhealthyThreshold, Jitter: time.Duration(float64(hc.Interval) * hc.Jitter / 100)}
		if err := p.prober.Set(name, opts, c.Endpoints); err != nil {
			s.log.Warn("health check not applied", "service", name, "err", err)
			continue
		}
		seen[name] = true
	}
	for name := range p.probed {
		if !seen[name] {
			_ = p.prober.Set(name, peerhealth.DefaultOptions(), nil)
		}
	}
	p.probed = seen
}

// run probes and ticks until ctx ends.
func (p *peers) run(ctx context.Context, s *Sidecar) {
	done := make(chan struct{})
	go func() { defer close(done); _ = p.prober.Run(ctx) }()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			<-done
			return
		case now := <-t.C:
			s.table.Tick(now)
		}
	}
}
