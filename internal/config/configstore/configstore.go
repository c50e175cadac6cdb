// Package configstore keeps config resources in etcd under
// /weft/config/<Kind>/<name>: it validates and applies them, reporting
// whether each was created, changed or left as it was, and lists, reads
// and deletes them. Every change is a revision (the etcd revision that
// made it), kept in the resource's history under
// /weft/history/<Kind>/<name>/<revision> (the last MaxHistory), from
// which a rollback re-applies an earlier one. Only the control plane
// uses it; the CLI goes through the control plane's API.
//
//	Plan     -> what Apply would do (dry run): created, configured, unchanged
//	Apply    -> write the resource; append {revision, time, action, resource}
//	Delete   -> remove it; append a deleted entry
//	Rollback -> Apply the resource of an earlier entry
package configstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/keyspace"
)

// MaxHistory is how many changes of one resource its history keeps.
const MaxHistory = 20

// historyPrefix is where histories live (not pushed to sidecars).
const historyPrefix = keyspace.Prefix + "history/"

func historyKeys(kind, name string) string { return historyPrefix + kind + "/" + name + "/" }

// Change is one entry of a resource's history.
type Change struct {
	// Revision is the revision of the change (the entry is written in
	// the same transaction, so it is the entry's too).
	Revision int64     `json:"revision"`
	Time     time.Time `json:"time"`
	// Action is config.Created, config.Configured or Deleted.
	Action string `json:"action"`
	// RollbackTo is the revision a rollback restored (0: none).
	RollbackTo int64 `json:"rollbackTo,omitempty"`
	// Resource is the resource as this change left it (nil: deleted).
	Resource *config.Resource `json:"resource,omitempty"`
}

// Deleted is the action of a history entry for a deletion.
const Deleted = "deleted"

// ErrNoRevision: a rollback names a revision the history does not have,
// or one that deleted the resource.
var ErrNoRevision = errors.New("no such revision")

// Store reads and writes resources.
type Store struct {
	c *clientv3.Client
}

// New returns a Store over an etcd client.
func New(c *clientv3.Client) *Store { return &Store{c: c} }

// Apply validates r and writes it, reporting whether it was created,
// changed or left as it was, and the revision it has now.
func (s *Store) Apply(ctx context.Context, r config.Resource) (outcome string, rev int64, err error) {
	return s.apply(ctx, r, 0)
}

func (s *Store) apply(ctx context.Context, r config.Resource, rollbackTo int64) (string, int64, error) {
	for range 3 {
		outcome, b, old, err := s.plan(ctx, r)
		if err != nil || outcome == config.Unchanged {
			return outcome, old, err
		}
		key := config.Key(r.Kind, r.Metadata.Name)
		stored := r
		entry := Change{Action: outcome, RollbackTo: rollbackTo, Resource: &stored}
		rev, ok, err := s.write(ctx, r.Kind, r.Metadata.Name, clientv3.Compare(clientv3.ModRevision(key), "=", old),
			clientv3.OpPut(key, string(b)), entry)
		if err != nil || ok {
			return outcome, rev, err
		}
		// Another apply changed it meanwhile: compare again.
	}
	return "", 0, fmt.Errorf("apply %s: it keeps changing under this apply; try again", r.Ref())
}

// Plan is what Apply would do with r, without writing: its outcome
// (config.Created, config.Configured or config.Unchanged) and the
// resource stored now (found false: none).
func (s *Store) Plan(ctx context.Context, r config.Resource) (outcome string, stored config.Resource, found bool, err error) {
	outcome, _, rev, err := s.plan(ctx, r)
	if err != nil || rev == 0 {
		return outcome, stored, false, err
	}
	stored, found, err = s.Get(ctx, r.Kind, r.Metadata.Name)
	return outcome, stored, found, err
}

// plan validates r and compares it with what is stored: the outcome,
// r as it would be stored, and the stored revision (0: none).
func (s *Store) plan(ctx context.Context, r config.Resource) (string, []byte, int64, error) {
	if err := r.Validate(); err != nil {
		return "", nil, 0, err
	}
	r.Metadata.Revision = 0
	b, err := json.Marshal(r)
	if err != nil {
		return "", nil, 0, err
	}
	old, err := s.c.Get(ctx, config.Key(r.Kind, r.Metadata.Name))
	if err != nil {
		return "", nil, 0, fmt.Errorf("read %s: %w", r.Ref(), err)
	}
	if len(old.Kvs) == 0 {
		return config.Created, b, 0, nil
	}
	if bytes.Equal(old.Kvs[0].Value, b) {
		return config.Unchanged, b, old.Kvs[0].ModRevision, nil
	}
	return config.Configured, b, old.Kvs[0].ModRevision, nil
}

// write runs op if cond holds, and appends entry to the history of
// kind/name in the same transaction (so the change and its entry share
// one revision), dropping what is past MaxHistory. ok is false when cond
// did not hold.
func (s *Store) write(ctx context.Context, kind, name string, cond clientv3.Cmp, op clientv3.Op, entry Change) (rev int64, ok bool, err error) {
	prefix := historyKeys(kind, name)
	keys, err := s.c.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithSort(clientv3.SortByModRevision, clientv3.SortAscend))
	if err != nil {
		return 0, false, fmt.Errorf("history of %s/%s: %w", kind, name, err)
	}
	entry.Time = time.Now().UTC()
	b, err := json.Marshal(entry)
	if err != nil {
		return 0, false, err
	}
	ops := []clientv3.Op{op, clientv3.OpPut(fmt.Sprintf("%s%020d", prefix, entry.Time.UnixNano()), string(b))}
	for i := 0; i < len(keys.Kvs)+1-MaxHistory; i++ {
		ops = append(ops, clientv3.OpDelete(string(keys.Kvs[i].Key)))
	}
	resp, err := s.c.Txn(ctx).If(cond).Then(ops...).Commit()
	if err != nil {
		return 0, false, fmt.Errorf("write %s/%s: %w", kind, name, err)
	}
	return resp.Header.Revision, resp.Succeeded, nil
}

// History is the changes of kind/name kept, oldest first; empty when
// it has none (it never existed, or changed only before histories were
// kept).
func (s *Store) History(ctx context.Context, kind, name string) ([]Change, error) {
	resp, err := s.c.Get(ctx, historyKeys(kind, name), clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByModRevision, clientv3.SortAscend))
	if err != nil {
		return nil, fmt.Errorf("history of %s/%s: %w", kind, name, err)
	}
	out := make([]Change, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var c Change
		if err := json.Unmarshal(kv.Value, &c); err != nil {
			return nil, fmt.Errorf("history entry %s: %w", kv.Key, err)
		}
		c.Revision = kv.ModRevision // written with the change it records
		if c.Resource != nil {
			c.Resource.Metadata.Revision = c.Revision
		}
		out = append(out, c)
	}
	return out, nil
}

// Rollback applies kind/name as its history entry of revision rev left
// it (a new revision, its entry marked with rev). ErrNoRevision when the
// history has no such entry or that entry deleted the resource.
func (s *Store) Rollback(ctx context.Context, kind, name string, rev int64) (outcome string, newRev int64, err error) {
	h, err := s.History(ctx, kind, name)
	if err != nil {
		return "", 0, err
	}
	for _, c := range h {
		if c.Revision != rev {
			continue
		}
		if c.Resource == nil {
			return "", 0, fmt.Errorf("%w: %s/%s was deleted at revision %d (weft history %s %s lists them)", ErrNoRevision, kind, name, rev, kind, name)
		}
		return s.apply(ctx, *c.Resource, rev)
	}
	return "", 0, fmt.Errorf("%w: %s/%s has no revision %d (weft history %s %s lists them)", ErrNoRevision, kind, name, rev, kind, name)
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
	key := config.Key(kind, name)
	_, ok, err := s.write(ctx, kind, name, clientv3.Compare(clientv3.CreateRevision(key), ">", 0), clientv3.OpDelete(key), Change{Action: Deleted})
	return ok, err
}
