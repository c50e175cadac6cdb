// Package regstore keeps registry instances and proxy records in etcd: it
// writes each record attached to a lease, renews and revokes leases, and
// lists records. Only the control plane uses it; sidecars register through
// the control plane's API.
package regstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftmesh/weft/internal/registry"
)

// Store reads and writes instances.
type Store struct {
	c *clientv3.Client
}

// New returns a Store over an etcd client.
func New(c *clientv3.Client) *Store { return &Store{c: c} }

// Put writes in under lease. With lease 0, or a lease that no longer exists,
// a new lease of ttl is granted. It returns the lease in use.
func (s *Store) Put(ctx context.Context, in registry.Instance, lease int64, ttl time.Duration) (int64, error) {
	if err := in.Validate(); err != nil {
		return 0, err
	}
	lease, err := s.leaseFor(ctx, lease, ttl)
	if err != nil {
		return 0, err
	}
	in.Lease = registry.LeaseID(lease)
	if err := s.put(ctx, registry.Key(in.Service, in.ID), in, lease); err != nil {
		return 0, fmt.Errorf("put instance %s/%s: %w", in.Service, in.ID, err)
	}
	return lease, nil
}

// PutProxy writes a sidecar's proxy record under lease, as Put does an
// instance: a sidecar passes the lease of its instance, so both share it.
func (s *Store) PutProxy(ctx context.Context, p registry.Proxy, lease int64, ttl time.Duration) (int64, error) {
	if err := p.Validate(); err != nil {
		return 0, err
	}
	lease, err := s.leaseFor(ctx, lease, ttl)
	if err != nil {
		return 0, err
	}
	p.Lease = registry.LeaseID(lease)
	if err := s.put(ctx, registry.ProxyKey(p.Service, p.ID), p, lease); err != nil {
		return 0, fmt.Errorf("put proxy %s/%s: %w", p.Service, p.ID, err)
	}
	return lease, nil
}

// leaseFor returns lease if it is still alive, else a new lease of ttl.
func (s *Store) leaseFor(ctx context.Context, lease int64, ttl time.Duration) (int64, error) {
	if lease != 0 {
		err := s.KeepAlive(ctx, lease)
		if err == nil {
			return lease, nil
		}
		if !errors.Is(err, registry.ErrLeaseNotFound) {
			return 0, err
		}
	}
	secs := max(int64(ttl/time.Second), 1)
	g, err := s.c.Grant(ctx, secs)
	if err != nil {
		return 0, fmt.Errorf("grant lease: %w", err)
	}
	return int64(g.ID), nil
}

func (s *Store) put(ctx context.Context, key string, v any, lease int64) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = s.c.Put(ctx, key, string(b), clientv3.WithLease(clientv3.LeaseID(lease)))
	return err
}

// KeepAlive renews a lease once.
func (s *Store) KeepAlive(ctx context.Context, lease int64) error {
	_, err := s.c.KeepAliveOnce(ctx, clientv3.LeaseID(lease))
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return registry.ErrLeaseNotFound
	}
	if err != nil {
		return fmt.Errorf("keep lease %x alive: %w", lease, err)
	}
	return nil
}

// Delete removes an instance and revokes its lease, which removes the
// sidecar's proxy record with it.
func (s *Store) Delete(ctx context.Context, service, id string) error {
	if err := s.deleteAndRevoke(ctx, registry.Key(service, id)); err != nil {
		return fmt.Errorf("delete instance %s/%s: %w", service, id, err)
	}
	return nil
}

// DeleteProxy removes a proxy record and revokes its lease.
func (s *Store) DeleteProxy(ctx context.Context, service, id string) error {
	if err := s.deleteAndRevoke(ctx, registry.ProxyKey(service, id)); err != nil {
		return fmt.Errorf("delete proxy %s/%s: %w", service, id, err)
	}
	return nil
}

// deleteAndRevoke deletes key, if present, and revokes its lease.
func (s *Store) deleteAndRevoke(ctx context.Context, key string) error {
	resp, err := s.c.Get(ctx, key)
	if err != nil {
		return err
	}
	if len(resp.Kvs) == 0 {
		return nil
	}
	if _, err := s.c.Delete(ctx, key); err != nil {
		return err
	}
	if l := resp.Kvs[0].Lease; l != 0 {
		// The record is gone already; a failed revoke only leaves a lease to lapse.
		_, _ = s.c.Revoke(ctx, clientv3.LeaseID(l))
	}
	return nil
}

// ListProxies returns the proxy records of service, or of all when it is "".
func (s *Store) ListProxies(ctx context.Context, service string) ([]registry.Proxy, error) {
	prefix := registry.ProxyKeyPrefix
	if service != "" {
		prefix += service + "/"
	}
	resp, err := s.c.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list proxies: %w", err)
	}
	out := make([]registry.Proxy, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var p registry.Proxy
		if err := json.Unmarshal(kv.Value, &p); err != nil {
			return nil, fmt.Errorf("proxy record %s: %w", kv.Key, err)
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Service != out[j].Service {
			return out[i].Service < out[j].Service
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// List returns the instances of service, or of all services when it is "".
func (s *Store) List(ctx context.Context, service string) ([]registry.Instance, error) {
	prefix := registry.KeyPrefix
	if service != "" {
		prefix += service + "/"
	}
	resp, err := s.c.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	out := make([]registry.Instance, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var in registry.Instance
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
