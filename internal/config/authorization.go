package config

import (
	"encoding/json"
	"fmt"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/weftmesh/weft/internal/registry"
)

// AuthorizationPolicy is the spec of an AuthorizationPolicy resource:
// which requests the inbound of one service lets through, by the
// calling service, the method and path, and request headers. It is
// Istio's AuthorizationPolicy, simplified:
//
//   - any DENY policy with a rule that matches denies;
//   - else, if the service has ALLOW policies, a request must match a
//     rule of one of them;
//   - else the mesh-wide default decides (allow, unless the policy
//     named MeshPolicy says spec.default: deny).
//
// The policy named MeshPolicy has no spec.service: its rules apply to
// every service, and it alone may hold spec.default.
type AuthorizationPolicy struct {
	// Service is the service whose inbound the policy guards; required,
	// except on the policy named MeshPolicy, which has none.
	Service string `json:"service,omitempty"`
	// Action is ALLOW (the default) or DENY.
	Action string `json:"action,omitempty"`
	// Rules are ORed; a policy without rules matches no request (an
	// ALLOW policy without rules allows nothing, as in Istio), and a rule
	// with no from, to or when matches every request.
	Rules []AuthorizationRule `json:"rules,omitempty"`
	// Default is the mesh-wide default, allow or deny (only on the
	// policy named MeshPolicy; absent: allow).
	Default string `json:"default,omitempty"`
}

// AuthorizationRule matches a request when each of its lists given
// matches: From by the calling service, To by method and path, When by
// headers. In From and To one entry must match; in When every one.
type AuthorizationRule struct {
	From []AuthorizationSource    `json:"from,omitempty"`
	To   []AuthorizationOperation `json:"to,omitempty"`
	When []AuthorizationCondition `json:"when,omitempty"`
}

// AuthorizationSource names calling services: a service's name,
// SourceAny (any mesh service) or SourceUnknown (callers that name
// none: clients without a sidecar).
type AuthorizationSource struct {
	Service string `json:"service"`
}

// AuthorizationOperation matches by method and path; a list left out
// matches any. A path is exact ("/items"), a prefix ending in *
// ("/items/*" matches "/items/" and everything below it), or "*".
type AuthorizationOperation struct {
	Methods []string `json:"methods,omitempty"`
	Paths   []string `json:"paths,omitempty"`
}

// AuthorizationCondition matches when the header's first value is one
// of Values: exact, a prefix ending in *, or "*" (present at all).
type AuthorizationCondition struct {
	Header string   `json:"header"`
	Values []string `json:"values"`
}

// Authorization actions and defaults.
const (
	AuthzAllow = "ALLOW"
	AuthzDeny  = "DENY"

	DefaultAllow = "allow"
	DefaultDeny  = "deny"

	// MeshPolicy names the AuthorizationPolicy that holds the mesh-wide
	// default and the rules for every service.
	MeshPolicy = "mesh"

	// SourceAny is any mesh service; SourceUnknown a caller that names
	// no service (no sidecar in front of it).
	SourceAny     = "*"
	SourceUnknown = "unknown"
)

// Limits of an AuthorizationPolicy.
const (
	MaxAuthzRules   = 64
	MaxAuthzEntries = 64 // in each from, to, when, methods, paths and values
	MaxAuthzPath    = 1024
)

// Authorization is a validated AuthorizationPolicy as the matcher takes
// it: its name, the action in upper case (ALLOW when left out) and the
// default in lower case ("" when not given).
type Authorization struct {
	Name    string
	Service string // "" on the mesh policy
	Action  string
	Default string
	Rules   []AuthorizationRule
}

// Ref is "AuthorizationPolicy/NAME".
func (a *Authorization) Ref() string { return "AuthorizationPolicy/" + a.Name }

// CompileAuthorizationPolicy reads a validated AuthorizationPolicy.
func CompileAuthorizationPolicy(r *Resource) (Authorization, error) {
	var s AuthorizationPolicy
	if fe := decodeSpec(r.Spec, &s); fe != nil {
		fe.Ref = r.Ref()
		return Authorization{}, fe
	}
	if fe := checkAuthorization(r.Metadata.Name, &s); fe != nil {
		fe.Ref = r.Ref()
		return Authorization{}, fe
	}
	a := Authorization{Name: r.Metadata.Name, Service: s.Service, Action: strings.ToUpper(s.Action),
		Default: strings.ToLower(s.Default), Rules: s.Rules}
	if a.Action == "" {
		a.Action = AuthzAllow
	}
	return a, nil
}

// validateAuthorizationPolicy is the kind's validator; some checks
// depend on the policy's name (the mesh policy has no service, the
// others need one).
func validateAuthorizationPolicy(name string, spec json.RawMessage) *FieldError {
	var s AuthorizationPolicy
	if fe := decodeSpec(spec, &s); fe != nil {
		return fe
	}
	return checkAuthorization(name, &s)
}

// checkAuthorization checks the spec of the policy named name.
func checkAuthorization(name string, s *AuthorizationPolicy) *FieldError {
	switch {
	case name == MeshPolicy && s.Service != "":
		return &FieldError{Field: "spec.service", Msg: fmt.Sprintf("the policy named %q applies to every service: give it no spec.service (or name it otherwise)", MeshPolicy)}
	case name != MeshPolicy && s.Service == "":
		return &FieldError{Field: "spec.service", Msg: fmt.Sprintf("is required: the service whose inbound the policy guards (only the policy named %q applies to every service)", MeshPolicy)}
	case name != MeshPolicy && s.Default != "":
		return &FieldError{Field: "spec.default", Msg: fmt.Sprintf("only the policy named %q holds the mesh-wide default", MeshPolicy)}
	}
	if s.Service != "" {
		if err := registry.ValidName(s.Service); err != nil {
			return &FieldError{Field: "spec.service", Msg: err.Error()}
		}
	}
	switch strings.ToUpper(s.Action) {
	case "", AuthzAllow, AuthzDeny:
	default:
		return &FieldError{Field: "spec.action", Msg: fmt.Sprintf("%q: want ALLOW or DENY", s.Action)}
	}
	switch strings.ToLower(s.Default) {
	case "", DefaultAllow, DefaultDeny:
	default:
		return &FieldError{Field: "spec.default", Msg: fmt.Sprintf("%q: want allow or deny", s.Default)}
	}
	if len(s.Rules) > MaxAuthzRules {
		return &FieldError{Field: "spec.rules", Msg: fmt.Sprintf("has %d rules, at most %d", len(s.Rules), MaxAuthzRules)}
	}
	for i := range s.Rules {
		if fe := checkAuthzRule(fmt.Sprintf("spec.rules[%d]", i), &s.Rules[i]); fe != nil {
			return fe
		}
	}
	return nil
}

func checkAuthzRule(path string, r *AuthorizationRule) *FieldError {
	for _, l := range []struct {
		field string
		n     int
	}{{"from", len(r.From)}, {"to", len(r.To)}, {"when", len(r.When)}} {
		if l.n > MaxAuthzEntries {
			return &FieldError{Field: path + "." + l.field, Msg: fmt.Sprintf("has %d entries, at most %d", l.n, MaxAuthzEntries)}
		}
	}
	for i, src := range r.From {
		field := fmt.Sprintf("%s.from[%d].service", path, i)
		switch src.Service {
		case "":
			return &FieldError{Field: field, Msg: fmt.Sprintf("is required: a service's name, %q (any mesh service) or %q (callers without a sidecar)", SourceAny, SourceUnknown)}
		case SourceAny, SourceUnknown:
		default:
			if err := registry.ValidName(src.Service); err != nil {
				return &FieldError{Field: field, Msg: err.Error() + fmt.Sprintf(`; or %q (any mesh service) or %q`, SourceAny, SourceUnknown)}
			}
		}
	}
	for i, op := range r.To {
		at := fmt.Sprintf("%s.to[%d]", path, i)
		if len(op.Methods) > MaxAuthzEntries || len(op.Paths) > MaxAuthzEntries {
			return &FieldError{Field: at, Msg: fmt.Sprintf("at most %d methods and %d paths", MaxAuthzEntries, MaxAuthzEntries)}
		}
		for j, m := range op.Methods {
			if m == "" || !httpguts.ValidHeaderFieldName(m) || strings.ToUpper(m) != m {
				return &FieldError{Field: fmt.Sprintf("%s.methods[%d]", at, j), Msg: fmt.Sprintf("%q: want a method in upper case, as GET or POST", m)}
			}
		}
		for j, p := range op.Paths {
			if fe := checkAuthzPath(fmt.Sprintf("%s.paths[%d]", at, j), p); fe != nil {
				return fe
			}
		}
	}
	for i, c := range r.When {
		at := fmt.Sprintf("%s.when[%d]", path, i)
		if c.Header == "" || !httpguts.ValidHeaderFieldName(c.Header) {
			return &FieldError{Field: at + ".header", Msg: fmt.Sprintf("%q: want a header's name", c.Header)}
		}
		if len(c.Values) == 0 {
			return &FieldError{Field: at + ".values", Msg: `needs at least one value ("*": the header is present)`}
		}
		if len(c.Values) > MaxAuthzEntries {
			return &FieldError{Field: at + ".values", Msg: fmt.Sprintf("has %d values, at most %d", len(c.Values), MaxAuthzEntries)}
		}
		for j, v := range c.Values {
			if i := strings.IndexByte(v, '*'); i >= 0 && i != len(v)-1 {
				return &FieldError{Field: fmt.Sprintf("%s.values[%d]", at, j), Msg: fmt.Sprintf("%q: a * may only end a value (a prefix), or be the whole value", v)}
			}
		}
	}
	return nil
}

func checkAuthzPath(field, p string) *FieldError {
	switch {
	case p == "*":
		return nil
	case p == "" || p[0] != '/':
		return &FieldError{Field: field, Msg: fmt.Sprintf(`%q: want a path beginning with / ("/items", "/items/*") or "*"`, p)}
	case len(p) > MaxAuthzPath:
		return &FieldError{Field: field, Msg: fmt.Sprintf("is %d bytes, at most %d", len(p), MaxAuthzPath)}
	case strings.ContainsAny(p, "?#"):
		return &FieldError{Field: field, Msg: fmt.Sprintf("%q: a path matches without the query: leave out ? and #", p)}
	}
	if i := strings.IndexByte(p, '*'); i >= 0 && i != len(p)-1 {
		return &FieldError{Field: field, Msg: fmt.Sprintf("%q: a * may only end a path (a prefix, as /items/*), or be the whole path", p)}
	}
	return nil
}

// authzServices are the services a policy names, for References: the
// service it guards and the sources it names ("*" and "unknown" are
// none).
func authzServices(a *Authorization) []string {
	var out []string
	if a.Service != "" {
		out = append(out, a.Service)
	}
	for _, r := range a.Rules {
		for _, src := range r.From {
			if src.Service != SourceAny && src.Service != SourceUnknown {
				out = append(out, src.Service)
			}
		}
	}
	return out
}
