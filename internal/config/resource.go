// Package config holds Weft's declarative resources: their types, parsing
// from YAML or JSON, validation with errors that name the resource, the
// field and its line, and their keys in etcd, /weft/config/<Kind>/<name>.
//
//	input ──documents──▶ YAML nodes ──shape check──▶ Resource ──Validate──▶ ok
//	         (parse.go)    (lines)      (shape.go)               (per kind)
//
// Every resource has the Kubernetes shape apiVersion/kind/metadata/spec.
// Each kind registers a spec type and a validator in kinds; adding a kind is
// adding one entry and one file.
//
// This package does not link etcd, so that sidecars and the CLI can use the
// types; the etcd-backed store, used only by the control plane, is package
// config/configstore.
package config

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/weftmesh/weft/internal/registry"
)

// APIVersion is the version Weft's own kinds are served at.
const APIVersion = "weftmesh.io/v1alpha1"

// GatewayAPIVersion is the version of the Gateway API kinds (HTTPRoute,
// GRPCRoute), as their manifests name it.
const GatewayAPIVersion = "gateway.networking.k8s.io/v1"

// Resource is one declarative object.
type Resource struct {
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Metadata   Metadata        `json:"metadata"`
	Spec       json.RawMessage `json:"spec"`
}

// Metadata names a resource.
type Metadata struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
	// Namespace and Annotations are taken, and have no effect, so that
	// Kubernetes manifests apply as written: the mesh has one namespace.
	Namespace   string            `json:"namespace,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// Revision is the etcd revision that last changed the resource; set by the store.
	Revision int64 `json:"revision,omitempty"`
}

// Ref is "Kind/name", how errors and the CLI refer to a resource.
func (r *Resource) Ref() string { return r.Kind + "/" + r.Metadata.Name }

// FieldError points at the field that is wrong.
type FieldError struct {
	Ref   string // Kind/name, or "document N" before the name is known
	Field string // dotted path, e.g. spec.endpoints[0].address
	Msg   string
	// Line is the line of the field in the input, when it came from one
	// (1-based; 0 when unknown, e.g. for a resource built in code).
	Line int
	// at is the path whose line to report when it is more precise than
	// Field, e.g. metadata.labels["bad key"] for an error on metadata.labels.
	at string
}

func (e *FieldError) Error() string {
	s := fmt.Sprintf("%s: %s: %s", e.Ref, e.Field, e.Msg)
	if e.Line > 0 {
		s += fmt.Sprintf(" (line %d)", e.Line)
	}
	return s
}

// kind describes one kind: the Go type of its spec, which fixes the
// fields and their types, the checks of the values once decoded, and the
// words the CLI takes for it besides its name: its plural and short
// forms, or, when it lists none, its name with an s.
type kind struct {
	apiVersion string // "": APIVersion
	spec       reflect.Type
	validate   func(spec json.RawMessage) *FieldError
	// named, when set, is the validator instead of validate, for a kind
	// whose checks depend on the resource's name.
	named func(name string, spec json.RawMessage) *FieldError
	words []string // lower case
}

var kinds = map[string]kind{
	"ExternalService": {spec: reflect.TypeFor[ExternalService](), validate: validateExternalService},
	"TrafficPolicy": {spec: reflect.TypeFor[TrafficPolicy](), validate: validateTrafficPolicy,
		words: []string{"trafficpolicies", "tp"}},
	"HTTPRoute": {apiVersion: GatewayAPIVersion, spec: reflect.TypeFor[gwv1.HTTPRouteSpec](), validate: validateHTTPRoute,
		words: []string{"httproutes", "hr"}},
	"GRPCRoute": {apiVersion: GatewayAPIVersion, spec: reflect.TypeFor[gwv1.GRPCRouteSpec](), validate: validateGRPCRoute,
		words: []string{"grpcroutes", "gr"}},
	"ServiceSubset": {spec: reflect.TypeFor[ServiceSubset](), validate: validateServiceSubset,
		words: []string{"servicesubsets", "subset", "subsets"}},
	"Fault": {spec: reflect.TypeFor[Fault](), validate: validateFault},
	"AlertRule": {spec: reflect.TypeFor[AlertRule](), validate: validateAlertRule,
		words: []string{"alertrules", "ar"}},
	"AuthorizationPolicy": {spec: reflect.TypeFor[AuthorizationPolicy](), named: validateAuthorizationPolicy,
		words: []string{"authorizationpolicies", "authz", "ap"}},
	"PeerAuthentication": {spec: reflect.TypeFor[PeerAuthentication](), named: validatePeerAuthentication,
		words: []string{"peerauthentications", "peerauth", "pa"}},
}

// APIVersionOf is the apiVersion resources of kind are written with.
func APIVersionOf(kind string) string {
	if k, ok := kinds[kind]; ok && k.apiVersion != "" {
		return k.apiVersion
	}
	return APIVersion
}

// Kinds lists the kinds the config API accepts.
func Kinds() []string {
	out := make([]string, 0, len(kinds))
	for k := range kinds {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// KindFor resolves a user's word for a kind (ExternalService,
// externalservice, externalservices; trafficpolicies, tp) to its
// canonical name.
func KindFor(word string) (string, bool) {
	w := strings.ToLower(word)
	for k, kd := range kinds {
		lk := strings.ToLower(k)
		if w == lk || (w == lk+"s" && kd.words == nil) || slices.Contains(kd.words, w) {
			return k, true
		}
	}
	return "", false
}

// Validate checks the whole resource.
func (r *Resource) Validate() error {
	if fe := r.validate(); fe != nil {
		fe.Ref = r.Ref()
		return fe
	}
	return nil
}

// validate checks r field by field; the error has no Ref yet.
func (r *Resource) validate() *FieldError {
	k, ok := kinds[r.Kind]
	if !ok {
		if r.APIVersion != APIVersion && r.APIVersion != GatewayAPIVersion {
			return &FieldError{Field: "apiVersion", Msg: fmt.Sprintf("got %q, want %q (or %q for HTTPRoute and GRPCRoute)", r.APIVersion, APIVersion, GatewayAPIVersion)}
		}
		return &FieldError{Field: "kind", Msg: fmt.Sprintf("unknown kind %q (known: %s)", r.Kind, strings.Join(Kinds(), ", "))}
	}
	if want := APIVersionOf(r.Kind); r.APIVersion != want {
		return &FieldError{Field: "apiVersion", Msg: fmt.Sprintf("got %q, want %q for kind %s", r.APIVersion, want, r.Kind)}
	}
	if err := registry.ValidName(r.Metadata.Name); err != nil {
		return &FieldError{Field: "metadata.name", Msg: err.Error()}
	}
	if fe := validateLabels("metadata.labels", r.Metadata.Labels); fe != nil {
		return fe
	}
	if len(r.Spec) == 0 || string(r.Spec) == "null" {
		return &FieldError{Field: "spec", Msg: "is required"}
	}
	// The spec's shape first (field names and types, with exact paths),
	// then the kind's own checks of the values.
	var n yaml.Node
	if err := yaml.Unmarshal(r.Spec, &n); err != nil {
		return &FieldError{Field: "spec", Msg: err.Error()}
	}
	if fe := checkShape(docContent(&n), k.spec, "spec", nil); fe != nil {
		return fe
	}
	if k.named != nil {
		return k.named(r.Metadata.Name, r.Spec)
	}
	return k.validate(r.Spec)
}

// decodeSpec decodes a spec whose shape checkShape has accepted.
func decodeSpec(spec json.RawMessage, into any) *FieldError {
	if err := json.Unmarshal(spec, into); err != nil {
		return &FieldError{Field: "spec", Msg: strings.TrimPrefix(err.Error(), "json: ")}
	}
	return nil
}
