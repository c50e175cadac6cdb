// Package regstore keeps registry instances in etcd: it writes each record
// attached to a lease, renews and revokes leases, and lists records. Only the
// control plane uses it; sidecars register through the control plane's API.
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
	if lease != 0 {
		if err := s.KeepAlive(ctx, lease); errors.Is(err, registry.ErrLeaseNotFound) {
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

// Delete removes an instance and revokes its lease.
func (s *Store) Delete(ctx context.Context, service, id string) error {
	resp, err := s.c.Get(ctx, registry.Key(service, id))
	if err != nil {
		return fmt.Errorf("get instance %s/%s: %w", service, id, err)
	}
	if len(resp.Kvs) == 0 {
		return nil
	}
	if _, err := s.c.Delete(ctx, registry.Key(service, id)); err != nil {
		return fmt.Errorf("delete instance %s/%s: %w", service, id, err)
	}
	if l := resp.Kvs[0].Lease; l != 0 {
		// The record is gone already; a failed revoke only leaves a lease to lapse.
		_, _ = s.c.Revoke(ctx, clientv3.LeaseID(l))
	}
	return nil
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
