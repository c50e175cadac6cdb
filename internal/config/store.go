package config

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftmesh/weft/internal/store"
)

// KeyPrefix is where resources live.
const KeyPrefix = store.Prefix + "config/"

// Key is the etcd key of a resource.
func Key(kind, name string) string { return KeyPrefix + kind + "/" + name }

// Outcome of an apply, as kubectl words it.
const (
	Created    = "created"
	Configured = "configured"
	Unchanged  = "unchanged"
)

// Store reads and writes resources.
type Store struct {
	c *clientv3.Client
}

// NewStore returns a Store over an etcd client.
func NewStore(c *clientv3.Client) *Store { return &Store{c: c} }

// Apply validates r and writes it, reporting whether it was created,
// changed or left as it was.
func (s *Store) Apply(ctx context.Context, r Resource) (string, error) {
	if err := r.Validate(); err != nil {
		return "", err
	}
	r.Metadata.Revision = 0
	b, err := json.Marshal(r)
	if err != nil {
		return "", err
	}
	key := Key(r.Kind, r.Metadata.Name)
	old, err := s.c.Get(ctx, key)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", r.Ref(), err)
	}
	outcome := Created
	if len(old.Kvs) > 0 {
		if bytes.Equal(old.Kvs[0].Value, b) {
			return Unchanged, nil
		}
		outcome = Configured
	}
	if _, err := s.c.Put(ctx, key, string(b)); err != nil {
		return "", fmt.Errorf("write %s: %w", r.Ref(), err)
	}
	return outcome, nil
}

// List returns the resources of kind, or of every kind when it is "".
func (s *Store) List(ctx context.Context, kind string) ([]Resource, error) {
	prefix := KeyPrefix
	if kind != "" {
		prefix += kind + "/"
	}
	resp, err := s.c.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", kind, err)
	}
	out := make([]Resource, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		r, err := Decode(kv.Value, kv.ModRevision)
		if err != nil {
			return nil, fmt.Errorf("resource %s: %w", kv.Key, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// Get returns one resource; found is false when it does not exist.
func (s *Store) Get(ctx context.Context, kind, name string) (r Resource, found bool, err error) {
	resp, err := s.c.Get(ctx, Key(kind, name))
	if err != nil {
		return r, false, fmt.Errorf("get %s/%s: %w", kind, name, err)
	}
	if len(resp.Kvs) == 0 {
		return r, false, nil
	}
	r, err = Decode(resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
	return r, err == nil, err
}

// Delete removes a resource; deleted is false when it did not exist.
func (s *Store) Delete(ctx context.Context, kind, name string) (deleted bool, err error) {
	resp, err := s.c.Delete(ctx, Key(kind, name))
	if err != nil {
		return false, fmt.Errorf("delete %s/%s: %w", kind, name, err)
	}
	return resp.Deleted > 0, nil
}

// Decode reads a stored resource and stamps its revision.
func Decode(b []byte, rev int64) (Resource, error) {
	var r Resource
	if err := json.Unmarshal(b, &r); err != nil {
		return r, err
	}
	r.Metadata.Revision = rev
	return r, nil
}
