package registry

import (
	"fmt"
	"net"
	"time"

	"github.com/weftmesh/weft/internal/keyspace"
)

// ProxyKeyPrefix is where proxy records live. They are not pushed to
// sidecars (nothing routes by them); they are for people: `weft get proxies`.
const ProxyKeyPrefix = keyspace.Prefix + "proxies/"

// Proxy is one running sidecar, as it reported itself. Every sidecar writes
// one, a consumer-only sidecar (no app port, so no Instance) included, under
// the same lease as its Instance when it has one: both go when the sidecar
// stops or dies.
type Proxy struct {
	Service string `json:"service"`
	ID      string `json:"id"` // the instance id, also when there is no instance
	Node    string `json:"node,omitempty"`
	// Outbound is the listener the app's calls go to (its HTTP_PROXY).
	Outbound string `json:"outbound"`
	Admin    string `json:"admin,omitempty"`
	// Inbound is the address peers dial, empty for a consumer-only sidecar.
	Inbound string    `json:"inbound,omitempty"`
	Version string    `json:"version,omitempty"` // Weft version of the sidecar
	Since   time.Time `json:"since"`             // when this sidecar started
	Lease   LeaseID   `json:"lease,omitempty"`
}

// ProxyKey is the etcd key of a proxy record.
func ProxyKey(service, id string) string { return ProxyKeyPrefix + service + "/" + id }

// Validate checks a proxy record before it is stored.
func (p *Proxy) Validate() error {
	if err := ValidName(p.Service); err != nil {
		return fmt.Errorf("service: %w", err)
	}
	if err := validID(p.ID); err != nil {
		return err
	}
	if _, _, err := net.SplitHostPort(p.Outbound); err != nil {
		return fmt.Errorf("outbound: %q is not host:port: %w", p.Outbound, err)
	}
	if p.Inbound != "" {
		if _, _, err := net.SplitHostPort(p.Inbound); err != nil {
			return fmt.Errorf("inbound: %q is not host:port: %w", p.Inbound, err)
		}
	}
	return nil
}
