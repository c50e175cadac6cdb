package snapshot

import (
	"fmt"

	"github.com/weftmesh/weft/internal/config"
)

// The kinds of the security resources, as keyed in etcd.
const (
	authorizationKind = "AuthorizationPolicy"
	peerAuthKind      = "PeerAuthentication"
)

// decodeValidated reads a stored resource of kind, validated again (the
// store may hold one written by another version of the control plane).
func decodeValidated(kind, key string, raw []byte) (config.Resource, error) {
	r, err := config.Decode(raw, 0)
	if err != nil {
		return config.Resource{}, fmt.Errorf("malformed resource: %w", err)
	}
	if r.Kind != kind || key != config.Key(kind, r.Metadata.Name) {
		return config.Resource{}, fmt.Errorf("resource %s is not the %s of its key", r.Ref(), kind)
	}
	if err := r.Validate(); err != nil {
		return config.Resource{}, fmt.Errorf("invalid %s: %w", kind, err)
	}
	return r, nil
}

// decodeAuthorization reads a stored AuthorizationPolicy.
func decodeAuthorization(key string, raw []byte) (config.Authorization, error) {
	r, err := decodeValidated(authorizationKind, key, raw)
	if err != nil {
		return config.Authorization{}, err
	}
	return config.CompileAuthorizationPolicy(&r)
}

// decodePeerAuth reads a stored PeerAuthentication.
func decodePeerAuth(key string, raw []byte) (config.PeerAuth, error) {
	r, err := decodeValidated(peerAuthKind, key, raw)
	if err != nil {
		return config.PeerAuth{}, err
	}
	return config.CompilePeerAuthentication(&r)
}
