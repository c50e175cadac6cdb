// Package registry describes the instances of every mesh service: the
// Instance record, its key in etcd, and the rules for valid names.
//
// An instance is written under /weft/instances/<service>/<id>, attached to an
// etcd lease that its sidecar keeps alive with heartbeats. Every sidecar also
// writes a Proxy record under /weft/proxies/<service>/<id> on the same lease,
// so that consumer-only sidecars, which have no instance, are visible too. When the sidecar
// dies the heartbeats stop, the lease lapses, and etcd deletes the record:
// the watch that feeds the push stream carries the deletion to every sidecar.
//
// This package does not link etcd, so that sidecars and the CLI can use the
// types; the etcd-backed store, used only by the control plane, is package
// registry/regstore.
package registry

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"

	"github.com/weftmesh/weft/internal/keyspace"
)

// KeyPrefix is where instance records live.
const KeyPrefix = keyspace.Prefix + "instances/"

// DefaultTTL is how long an instance outlives its last heartbeat.
const DefaultTTL = 10 * time.Second

// ErrLeaseNotFound means the lease lapsed or never existed: register again.
var ErrLeaseNotFound = errors.New("lease not found")

// Instance is one running copy of a service, as its sidecar reported it.
type Instance struct {
	Service string            `json:"service"`
	ID      string            `json:"id"`
	Address string            `json:"address"` // host:port that peers dial (the sidecar's inbound)
	Labels  map[string]string `json:"labels,omitempty"`
	// Protocol is what the instance's app speaks: http, h2c or tcp (empty: http).
	Protocol string `json:"protocol,omitempty"`
	// MTLS: the instance's sidecar takes mutual TLS from peer sidecars
	// (it holds a workload certificate), so peers that hold one too
	// connect to it over mutual TLS.
	MTLS  bool      `json:"mtls,omitempty"`
	Ready bool      `json:"ready"`
	Node  string    `json:"node,omitempty"` // host name of the machine
	Since time.Time `json:"since"`          // when this sidecar registered
	Lease LeaseID   `json:"lease,omitempty"`
}

// Key is the etcd key of an instance.
func Key(service, id string) string { return KeyPrefix + service + "/" + id }

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ValidName reports whether s is usable as a service name: a DNS label,
// so that http://<service>/ is a valid URL.
func ValidName(s string) error {
	if !nameRE.MatchString(s) {
		return fmt.Errorf("%q is not a valid service name (lower-case letters, digits and '-', at most 63, like a DNS label)", s)
	}
	return nil
}

func validID(id string) error {
	if id == "" || strings.ContainsAny(id, "/ ") {
		return fmt.Errorf("id: %q must be non-empty without '/' or spaces", id)
	}
	return nil
}

// Validate checks an instance before it is stored.
func (in *Instance) Validate() error {
	if err := ValidName(in.Service); err != nil {
		return fmt.Errorf("service: %w", err)
	}
	if err := validID(in.ID); err != nil {
		return err
	}
	if _, _, err := net.SplitHostPort(in.Address); err != nil {
		return fmt.Errorf("address: %q is not host:port: %w", in.Address, err)
	}
	switch in.Protocol {
	case "", "http", "h2c", "tcp":
	default:
		return fmt.Errorf("protocol: %q must be http, h2c or tcp", in.Protocol)
	}
	return nil
}
