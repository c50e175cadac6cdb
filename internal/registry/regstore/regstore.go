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
	"slices"
	"sort"
	"strings"
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
	b, err := json.Marshal(in)
	if err != nil {
		return 0, err
	}
	svc, err := json.Marshal(registry.Service{Name: in.Service, Since: in.Since})
	if err != nil {
		return 0, err
	}
	// The instance, and its service's record if the mesh did not know
	// the service yet (one transaction: no instance without its service).
	sk := registry.ServiceKey(in.Service)
	put := clientv3.OpPut(registry.Key(in.Service, in.ID), string(b), clientv3.WithLease(clientv3.LeaseID(lease)))
	_, err = s.c.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(sk), "=", 0)).
		Then(put, clientv3.OpPut(sk, string(svc))).
		Else(put).
		Commit()
	if err != nil {
		return 0, fmt.Errorf("put instance %s/%s: %w", in.Service, in.ID, err)
	}
	return lease, nil
}

// ErrServiceInUse: a service record cannot be removed while instances
// of the service are registered.
var ErrServiceInUse = errors.New("the service still has instances")

// ErrServiceNotFound: no record of that service.
var ErrServiceNotFound = errors.New("no such service")

// Services lists the service records, sorted by name.
func (s *Store) Services(ctx context.Context) ([]registry.Service, error) {
	resp, err := s.c.Get(ctx, registry.ServiceKeyPrefix, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	out := make([]registry.Service, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var sv registry.Service
		if err := json.Unmarshal(kv.Value, &sv); err != nil {
			return nil, fmt.Errorf("service record %s: %w", kv.Key, err)
		}
		out = append(out, sv)
	}
	return out, nil
}

// ForgetService removes a service's record, so the mesh no longer knows
// the name (its callers' requests go out as egress again). It refuses
// while instances of the service are registered.
func (s *Store) ForgetService(ctx context.Context, name string) error {
	sk := registry.ServiceKey(name)
	prefix := registry.KeyPrefix + name + "/"
	// One transaction: the record goes only if no instance key exists
	// (a compare over the whole prefix), so a registration cannot slip in.
	resp, err := s.c.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(sk), ">", 0),
			clientv3.Compare(clientv3.CreateRevision(prefix), "=", 0).WithPrefix()).
		Then(clientv3.OpDelete(sk)).
		Else(clientv3.OpGet(sk, clientv3.WithCountOnly()), clientv3.OpGet(prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())).
		Commit()
	if err != nil {
		return fmt.Errorf("forget service %s: %w", name, err)
	}
	if resp.Succeeded {
		return nil
	}
	if resp.Responses[0].GetResponseRange().Count == 0 {
		return fmt.Errorf("service %q: %w", name, ErrServiceNotFound)
	}
	n := resp.Responses[1].GetResponseRange().Count
	return fmt.Errorf("service %q has %d registered instance(s): %w", name, n, ErrServiceInUse)
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

// LeaseServices names the services whose records lease holds, sorted
// (none: it holds no record yet); a key on it that is no instance or
// proxy record (a join token's) counts as service "". It returns
// registry.ErrLeaseNotFound for a lease that lapsed or never existed.
func (s *Store) LeaseServices(ctx context.Context, lease int64) ([]string, error) {
	resp, err := s.c.TimeToLive(ctx, clientv3.LeaseID(lease), clientv3.WithAttachedKeys())
	if errors.Is(err, rpctypes.ErrLeaseNotFound) || err == nil && resp.TTL == -1 {
		return nil, registry.ErrLeaseNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("lease %x: %w", lease, err)
	}
	var out []string
	for _, k := range resp.Keys {
		svc, _ := recordService(string(k))
		out = append(out, svc)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// recordService is the service of an instance or proxy record's key.
func recordService(key string) (string, bool) {
	for _, prefix := range []string{registry.KeyPrefix, registry.ProxyKeyPrefix} {
		if rest, ok := strings.CutPrefix(key, prefix); ok {
			svc, _, ok := strings.Cut(rest, "/")
			return svc, ok && svc != ""
		}
	}
	return "", false
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
