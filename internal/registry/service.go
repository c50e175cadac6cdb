package registry

import (
	"time"

	"github.com/weftmesh/weft/internal/keyspace"
)

// ServiceKeyPrefix is where service records live: one per name the mesh
// has known, written when its first instance registers and kept (no
// lease) after its last instance is gone, so that sidecars keep
// answering 503 no-ready-instance for it instead of sending its callers
// to whatever host the name resolves to outside the mesh. It is removed
// only on purpose (`weft delete service NAME`), once no instance is left.
const ServiceKeyPrefix = keyspace.Prefix + "services/"

// Service is the record of a mesh service.
type Service struct {
	Name  string    `json:"name"`
	Since time.Time `json:"since"` // when its first instance registered
}

// ServiceKey is the etcd key of a service record.
func ServiceKey(name string) string { return ServiceKeyPrefix + name }
