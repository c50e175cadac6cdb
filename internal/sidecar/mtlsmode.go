package sidecar

import (
	"sync"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/snapshot"
)

// inboundMode is the inbound's mode of mutual TLS, strict or permissive:
// the service's PeerAuthentication, else the mesh's (the one named
// "mesh"), else --mtls. A strict inbound takes only peers' mutual TLS;
// one that has no certificate (no --join-token) then takes nothing,
// which the sidecar says loudly: it fails closed.
type inboundMode struct {
	mu     sync.Mutex
	strict bool
	by     string // "--mtls" or the PeerAuthentication's Ref
}

// Strict is proxy.Config.Strict.
func (m *inboundMode) Strict() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.strict
}

// view is the mode and what set it, for /config.
func (m *inboundMode) view() (mode, by string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.strict {
		return MTLSStrict, m.by
	}
	return MTLSPermissive, m.by
}

// applyPeerAuth sets the inbound's mode from snap's PeerAuthentications.
func (s *Sidecar) applyPeerAuth(snap *snapshot.Snapshot) {
	mode, by := config.PeerAuthModeFor(s.cfg.Service, snap.PeerAuthentication)
	strict := mode == config.PeerAuthStrict
	if mode == "" {
		strict, by = s.cfg.MTLSMode == MTLSStrict, "--mtls"
	}
	m := &s.inMode
	m.mu.Lock()
	changed := strict != m.strict || by != m.by
	m.strict, m.by = strict, by
	m.mu.Unlock()
	if !changed {
		return
	}
	word, _ := m.view()
	switch {
	case strict && s.certs == nil:
		s.log.Error("the inbound is strict but this sidecar has no workload certificate: it refuses every connection until it is started with --join-token", "mtls", word, "by", by)
	default:
		s.log.Info("inbound mutual TLS mode", "mtls", word, "by", by)
	}
}
