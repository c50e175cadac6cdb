package config

import (
	"encoding/json"
	"fmt"

	"github.com/weftmesh/weft/internal/registry"
)

// PeerAuthentication is the spec of a PeerAuthentication resource: what
// the inbound of a service takes, mutual TLS from peer sidecars only
// (STRICT) or plain connections too (PERMISSIVE). It is Istio's
// PeerAuthentication, by service rather than by label selector:
//
//   - a service's own policy (spec.service) decides for it;
//   - else the policy named MeshPolicy ("mesh", no spec.service) decides
//     for every service;
//   - else each sidecar's --mtls flag (permissive by default).
type PeerAuthentication struct {
	// Service is the service whose inbound the policy sets; required,
	// except on the policy named MeshPolicy, which has none.
	Service string `json:"service,omitempty"`
	// MTLS holds the mode, as Istio nests it.
	MTLS PeerAuthenticationMTLS `json:"mtls"`
}

// PeerAuthenticationMTLS is a PeerAuthentication's mode.
type PeerAuthenticationMTLS struct {
	// Mode is STRICT or PERMISSIVE.
	Mode string `json:"mode"`
}

// Modes of a PeerAuthentication.
const (
	PeerAuthStrict     = "STRICT"
	PeerAuthPermissive = "PERMISSIVE"
)

// PeerAuth is a validated PeerAuthentication.
type PeerAuth struct {
	Name    string
	Service string // "" on the mesh policy
	Mode    string // PeerAuthStrict or PeerAuthPermissive
}

// Ref is "PeerAuthentication/NAME".
func (p *PeerAuth) Ref() string { return "PeerAuthentication/" + p.Name }

// CompilePeerAuthentication reads a validated PeerAuthentication.
func CompilePeerAuthentication(r *Resource) (PeerAuth, error) {
	var s PeerAuthentication
	if fe := decodeSpec(r.Spec, &s); fe != nil {
		fe.Ref = r.Ref()
		return PeerAuth{}, fe
	}
	if fe := checkPeerAuthentication(r.Metadata.Name, &s); fe != nil {
		fe.Ref = r.Ref()
		return PeerAuth{}, fe
	}
	return PeerAuth{Name: r.Metadata.Name, Service: s.Service, Mode: s.MTLS.Mode}, nil
}

// PeerAuthModeFor is the mode policies set for service's inbound and the
// policy that sets it: the service's own, else the mesh policy; "" when
// neither is there (the sidecar's flag decides).
func PeerAuthModeFor(service string, policies []PeerAuth) (mode, ref string) {
	for i := range policies {
		if p := &policies[i]; p.Service == service {
			return p.Mode, p.Ref()
		}
	}
	for i := range policies {
		if p := &policies[i]; p.Name == MeshPolicy {
			return p.Mode, p.Ref()
		}
	}
	return "", ""
}

func validatePeerAuthentication(name string, spec json.RawMessage) *FieldError {
	var s PeerAuthentication
	if fe := decodeSpec(spec, &s); fe != nil {
		return fe
	}
	return checkPeerAuthentication(name, &s)
}

func checkPeerAuthentication(name string, s *PeerAuthentication) *FieldError {
	switch {
	case name == MeshPolicy && s.Service != "":
		return &FieldError{Field: "spec.service", Msg: fmt.Sprintf("the policy named %q sets every service's mode: give it no spec.service (or name it otherwise)", MeshPolicy)}
	case name != MeshPolicy && s.Service == "":
		return &FieldError{Field: "spec.service", Msg: fmt.Sprintf("is required: the service whose inbound the policy sets (only the policy named %q applies to every service)", MeshPolicy)}
	}
	if s.Service != "" {
		if err := registry.ValidName(s.Service); err != nil {
			return &FieldError{Field: "spec.service", Msg: err.Error()}
		}
	}
	switch s.MTLS.Mode {
	case PeerAuthStrict, PeerAuthPermissive:
	case "":
		return &FieldError{Field: "spec.mtls.mode", Msg: "is required: STRICT (mutual TLS only) or PERMISSIVE (plain connections too)"}
	default:
		return &FieldError{Field: "spec.mtls.mode", Msg: fmt.Sprintf("%q: want STRICT or PERMISSIVE (upper case, as Istio's; DISABLE is not offered: a sidecar with a certificate always takes mutual TLS)", s.MTLS.Mode)}
	}
	return nil
}
