package config

import (
	"encoding/json"

	"github.com/weftmesh/weft/internal/keyspace"
)

// KeyPrefix is where resources live.
const KeyPrefix = keyspace.Prefix + "config/"

// Key is the etcd key of a resource.
func Key(kind, name string) string { return KeyPrefix + kind + "/" + name }

// Outcome of an apply, as kubectl words it.
const (
	Created    = "created"
	Configured = "configured"
	Unchanged  = "unchanged"
)

// Decode reads a stored resource and stamps its revision.
func Decode(b []byte, rev int64) (Resource, error) {
	var r Resource
	if err := json.Unmarshal(b, &r); err != nil {
		return r, err
	}
	r.Metadata.Revision = rev
	return r, nil
}
