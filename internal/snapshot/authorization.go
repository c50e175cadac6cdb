package snapshot

import (
	"fmt"

	"github.com/weftmesh/weft/internal/config"
)

// authorizationKind is the kind of AuthorizationPolicy resources, as
// keyed in etcd.
const authorizationKind = "AuthorizationPolicy"

// decodeAuthorization reads a stored AuthorizationPolicy, validated
// again (the store may hold one written by another version of the
// control plane).
func decodeAuthorization(key string, raw []byte) (config.Authorization, error) {
	r, err := config.Decode(raw, 0)
	if err != nil {
		return config.Authorization{}, fmt.Errorf("malformed resource: %w", err)
	}
	if r.Kind != authorizationKind || key != config.Key(authorizationKind, r.Metadata.Name) {
		return config.Authorization{}, fmt.Errorf("resource %s is not the AuthorizationPolicy of its key", r.Ref())
	}
	if err := r.Validate(); err != nil {
		return config.Authorization{}, fmt.Errorf("invalid AuthorizationPolicy: %w", err)
	}
	return config.CompileAuthorizationPolicy(&r)
}
