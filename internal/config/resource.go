// Package config holds Weft's declarative resources: their types, parsing
// from YAML or JSON, validation with errors that name the field, and their
// keys in etcd, /weft/config/<Kind>/<name>.
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
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/weftmesh/weft/internal/registry"
)

// APIVersion is the version every current kind is served at.
const APIVersion = "weftmesh.io/v1alpha1"

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
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("%s: %s: %s", e.Ref, e.Field, e.Msg)
}

// kind describes how to check the spec of one kind.
type kind struct {
	validate func(spec json.RawMessage) (field, msg string)
}

var kinds = map[string]kind{
	"ExternalService": {validate: validateExternalService},
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
// externalservice, externalservices) to its canonical name.
func KindFor(word string) (string, bool) {
	w := strings.ToLower(word)
	for k := range kinds {
		lk := strings.ToLower(k)
		if w == lk || w == lk+"s" {
			return k, true
		}
	}
	return "", false
}

// Validate checks the whole resource.
func (r *Resource) Validate() error {
	ref := r.Ref()
	if r.APIVersion != APIVersion {
		return &FieldError{ref, "apiVersion", fmt.Sprintf("got %q, want %q", r.APIVersion, APIVersion)}
	}
	k, ok := kinds[r.Kind]
	if !ok {
		return &FieldError{ref, "kind", fmt.Sprintf("unknown kind %q (known: %s)", r.Kind, strings.Join(Kinds(), ", "))}
	}
	if err := registry.ValidName(r.Metadata.Name); err != nil {
		return &FieldError{ref, "metadata.name", err.Error()}
	}
	if len(r.Spec) == 0 || string(r.Spec) == "null" {
		return &FieldError{ref, "spec", "is required"}
	}
	if field, msg := k.validate(r.Spec); msg != "" {
		return &FieldError{ref, field, msg}
	}
	return nil
}

// decodeSpec decodes a spec strictly, so a misspelt field is an error.
func decodeSpec(spec json.RawMessage, into any) (field, msg string) {
	d := json.NewDecoder(bytes.NewReader(spec))
	d.DisallowUnknownFields()
	if err := d.Decode(into); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return "spec." + te.Field, fmt.Sprintf("must be %s, got %s", te.Type, te.Value)
		}
		return "spec", strings.TrimPrefix(err.Error(), "json: ")
	}
	return "", ""
}

// Parse reads one or more resources from YAML (documents separated by
// ---) or JSON (an object or an array of objects), and validates each.
func Parse(data []byte) ([]Resource, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, errors.New("no resources in input")
	}
	var docs []any
	if trimmed[0] == '[' {
		if err := json.Unmarshal(trimmed, &docs); err != nil {
			return nil, fmt.Errorf("parse JSON: %w", err)
		}
	} else {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for i := 1; ; i++ {
			var doc any
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("document %d: %w", i, err)
			}
			if doc != nil {
				docs = append(docs, doc)
			}
		}
	}
	out := make([]Resource, 0, len(docs))
	for i, doc := range docs {
		r, err := fromDoc(doc, i+1)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		return nil, errors.New("no resources in input")
	}
	return out, nil
}

func fromDoc(doc any, n int) (Resource, error) {
	var r Resource
	b, err := json.Marshal(doc)
	if err != nil {
		return r, fmt.Errorf("document %d: %w", n, err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&r); err != nil {
		return r, &FieldError{fmt.Sprintf("document %d", n), "(top level)", strings.TrimPrefix(err.Error(), "json: ")}
	}
	if err := r.Validate(); err != nil {
		return r, err
	}
	return r, nil
}
