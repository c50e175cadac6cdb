package sidecar

import (
	"crypto/tls"
	"log/slog"
	"sync"
	"time"

	"github.com/weftmesh/weft/internal/security"
)

// peerRefusalEvery is how often, at most, a refused peer certificate is
// logged per service: a peer that keeps showing a wrong certificate
// would otherwise log once per connection attempt.
const peerRefusalEvery = 10 * time.Second

// peerTLS is the mutual TLS of this sidecar's connections to peer
// sidecars (plan.PeerTLS): the credentials' client config, with what it
// refuses in a peer's certificate (another CA, expired, another service
// than the one dialed) logged here, on the side that refused it. The
// inbound logs what it refuses of its callers (proxy's detect.go).
type peerTLS struct {
	creds *security.Credentials
	log   *slog.Logger
	now   func() time.Time

	mu   sync.Mutex
	last map[string]time.Time // service: when a refusal was last logged
}

func newPeerTLS(creds *security.Credentials, log *slog.Logger) *peerTLS {
	return &peerTLS{creds: creds, log: log, now: time.Now, last: map[string]time.Time{}}
}

// ClientConfig is the credentials' config for peers of service, whose
// refusals are logged.
func (p *peerTLS) ClientConfig(service string) *tls.Config {
	cfg := p.creds.ClientConfig(service)
	verify := cfg.VerifyConnection
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		err := verify(cs)
		if err != nil && p.due(service) {
			p.log.Warn("mutual TLS: a peer's certificate refused", "service", service, "err", err)
		}
		return err
	}
	return cfg
}

// due reports whether a refusal for service is to be logged now.
func (p *peerTLS) due(service string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if last, ok := p.last[service]; ok && now.Sub(last) < peerRefusalEvery {
		return false
	}
	p.last[service] = now
	return true
}
