// Package configstore keeps config resources in etcd under
// /weft/config/<Kind>/<name>: it validates and applies them, reporting
// whether each was created, changed or left as it was, and lists, reads
// and deletes them. Only the control plane uses it; the CLI goes through
// the control plane's API.
package configstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftmesh/weft/internal/config"
)

// Store reads and writes resources.
type Store struct {
	c *clientv3.Client
}

// New returns a Store over an etcd client.
func New(c *clientv3.Client) *Store { return &Store{c: c} }

// Apply validates r and writes it, reporting whether it was created,
// changed or left as it was.
func (s *Store) Apply(ctx context.Context, r config.Resource) (string, error) {
	if err := r.Validate(); err != nil {
		return "", err
	}
	r.Metadata.Revision = 0
	b, err := json.Marshal(r)
	if err != nil {
		return "", err
	}
	key := config.Key(r.Kind, r.Metadata.Name)
	old, err := s.c.Get(ctx, key)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", r.Ref(), err)
	}
	outcome := config.Created
	if len(old.Kvs) > 0 {
		if bytes.Equal(old.Kvs[0].Value, b) {
			return config.Unchanged, nil
		}
		outcome = config.Configured
	}
	if _, err := s.c.Put(ctx, key, string(b)); err != nil {
		return "", fmt.Errorf("write %s: %w", r.Ref(), err)
	}
	return outcome, nil
}

// List returns the resources of kind, or of every kind when it is "".
func (s *Store) List(ctx context.Context, kind string) ([]config.Resource, error) {
	prefix := config.KeyPrefix
	if kind != "" {
		prefix += kind + "/"
	}
	resp, err := s.c.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", kind, err)
	}
	out := make([]config.Resource, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		r, err := config.Decode(kv.Value, kv.ModRevision)
		if err != nil {
			return nil, fmt.Errorf("resource %s: %w", kv.Key, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// Get returns one resource; found is false when it does not exist.
func (s *Store) Get(ctx context.Context, kind, name string) (r config.Resource, found bool, err error) {
	resp, err := s.c.Get(ctx, config.Key(kind, name))
	if err != nil {
		return r, false, fmt.Errorf("get %s/%s: %w", kind, name, err)
	}
	if len(resp.Kvs) == 0 {
		return r, false, nil
	}
	r, err = config.Decode(resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
	return r, err == nil, err
}

// Delete removes a resource; deleted is false when it did not exist.
func (s *Store) Delete(ctx context.Context, kind, name string) (deleted bool, err error) {
	resp, err := s.c.Delete(ctx, config.Key(kind, name))
	if err != nil {
		return false, fmt.Errorf("delete %s/%s: %w", kind, name, err)
	}
	return resp.Deleted > 0, nil
}
