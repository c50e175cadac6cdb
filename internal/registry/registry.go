// Package registry keeps the instances of every mesh service in etcd.
//
// An instance is written under /weft/instances/<service>/<id>, attached to an
// etcd lease that its sidecar keeps alive with heartbeats. When the sidecar
// dies the heartbeats stop, the lease lapses, and etcd deletes the record:
// the watch that feeds the push stream carries the deletion to every sidecar.
package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"regexp"
	"sort"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftmesh/weft/internal/store"
)

// KeyPrefix is where instance records live.
const KeyPrefix = store.Prefix + "instances/"

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
	Ready   bool              `json:"ready"`
	Node    string            `json:"node,omitempty"` // host name of the machine
	Since   time.Time         `json:"since"`          // when this sidecar registered
	Lease   int64             `json:"lease,omitempty"`
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

// Validate checks an instance before it is stored.
func (in *Instance) Validate() error {
	if err := ValidName(in.Service); err != nil {
		return fmt.Errorf("service: %w", err)
	}
	if in.ID == "" || strings.ContainsAny(in.ID, "/ ") {
		return fmt.Errorf("id: %q must be non-empty without '/' or spaces", in.ID)
	}
	if _, _, err := net.SplitHostPort(in.Address); err != nil {
		return fmt.Errorf("address: %q is not host:port: %w", in.Address, err)
	}
	return nil
}

// Store reads and writes instances.
type Store struct {
	c *clientv3.Client
}

// New returns a Store over an etcd client.
func New(c *clientv3.Client) *Store { return &Store{c: c} }

// Put writes in under lease. With lease 0, or a lease that no longer exists,
// a new lease of ttl is granted. It returns the lease in use.
func (s *Store) Put(ctx context.Context, in Instance, lease int64, ttl time.Duration) (int64, error) {
	if err := in.Validate(); err != nil {
		return 0, err
	}
	if lease != 0 {
		if err := s.KeepAlive(ctx, lease); errors.Is(err, ErrLeaseNotFound) {
			lease = 0
		} else if err != nil {
			return 0, err
		}
	}
	if lease == 0 {
		secs := int64(ttl / time.Second)
		if secs < 1 {
			secs = 1
		}
		g, err := s.c.Grant(ctx, secs)
		if err != nil {
			return 0, fmt.Errorf("grant lease: %w", err)
		}
		lease = int64(g.ID)
	}
	in.Lease = lease
	b, err := json.Marshal(in)
	if err != nil {
		return 0, err
	}
	if _, err := s.c.Put(ctx, Key(in.Service, in.ID), string(b), clientv3.WithLease(clientv3.LeaseID(lease))); err != nil {
		return 0, fmt.Errorf("put instance %s/%s: %w", in.Service, in.ID, err)
	}
	return lease, nil
}

// KeepAlive renews a lease once.
func (s *Store) KeepAlive(ctx context.Context, lease int64) error {
	_, err := s.c.KeepAliveOnce(ctx, clientv3.LeaseID(lease))
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return ErrLeaseNotFound
	}
	if err != nil {
		return fmt.Errorf("keep lease %x alive: %w", lease, err)
	}
	return nil
}

// Delete removes an instance and revokes its lease.
func (s *Store) Delete(ctx context.Context, service, id string) error {
	resp, err := s.c.Get(ctx, Key(service, id))
	if err != nil {
		return fmt.Errorf("get instance %s/%s: %w", service, id, err)
	}
	if len(resp.Kvs) == 0 {
		return nil
	}
	if _, err := s.c.Delete(ctx, Key(service, id)); err != nil {
		return fmt.Errorf("delete instance %s/%s: %w", service, id, err)
	}
	if l := resp.Kvs[0].Lease; l != 0 {
		// The record is gone already; a failed revoke only leaves a lease to lapse.
		_, _ = s.c.Revoke(ctx, clientv3.LeaseID(l))
	}
	return nil
}

// List returns the instances of service, or of all services when it is "".
func (s *Store) List(ctx context.Context, service string) ([]Instance, error) {
	prefix := KeyPrefix
	if service != "" {
		prefix += service + "/"
	}
	resp, err := s.c.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	out := make([]Instance, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var in Instance
		if err := json.Unmarshal(kv.Value, &in); err != nil {
			return nil, fmt.Errorf("instance record %s: %w", kv.Key, err)
		}
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Service != out[j].Service {
			return out[i].Service < out[j].Service
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}
