package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/weftmesh/weft/internal/registry"
)

// doc is one resource of an input, as YAML nodes.
type doc struct {
	node *yaml.Node
	name string // "document N", or "document N item M" in a list
}

// documents splits an input into resources: YAML documents separated by
// ---, each a resource or a list of resources. JSON is YAML here, so a JSON
// object or array reads the same way, with lines.
func documents(data []byte) ([]doc, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("no resources in input")
	}
	var out []doc
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for i := 1; ; i++ {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if jerr := jsonSyntax(data); jerr != nil {
				return nil, jerr
			}
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		c := docContent(&n)
		for c.Kind == yaml.AliasNode {
			c = c.Alias
		}
		name := fmt.Sprintf("document %d", i)
		switch {
		case c.Kind == yaml.DocumentNode || (c.Kind == yaml.ScalarNode && c.ShortTag() == "!!null"):
			// empty document
		case c.Kind == yaml.MappingNode:
			out = append(out, doc{c, name})
		case c.Kind == yaml.SequenceNode:
			for j, item := range c.Content {
				out = append(out, doc{item, fmt.Sprintf("%s item %d", name, j+1)})
			}
		default:
			return nil, fmt.Errorf("%s (line %d): want a resource or a list of resources, got %s", name, c.Line, describeNode(c))
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no resources in input")
	}
	return out, nil
}

// jsonSyntax explains a YAML error in an input that looks like JSON by
// what encoding/json makes of it, which is clearer for JSON; nil when the
// input does not start like JSON or is valid JSON.
func jsonSyntax(data []byte) error {
	t := bytes.TrimSpace(data)
	if len(t) == 0 || (t[0] != '[' && t[0] != '{') || json.Valid(t) {
		return nil
	}
	var v any
	err := json.Unmarshal(t, &v)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		off := int(se.Offset) + bytes.Index(data, t[:1])
		return fmt.Errorf("parse JSON: line %d: %w", 1+bytes.Count(data[:min(off, len(data))], []byte("\n")), err)
	}
	return fmt.Errorf("parse JSON: %w", err)
}

// ref names a resource for errors: Kind/name when both can be read,
// otherwise its place in the input.
func (d doc) ref() string {
	k, n := scalarAt(d.node, "kind"), scalarAt(d.node, "metadata", "name")
	if k == "" || n == "" {
		return d.name
	}
	return k + "/" + n
}

// scalarAt reads the string at a path of keys, or "".
func scalarAt(n *yaml.Node, keys ...string) string {
	for _, key := range keys {
		for n.Kind == yaml.AliasNode {
			n = n.Alias
		}
		if n.Kind != yaml.MappingNode {
			return ""
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				next = n.Content[i+1]
			}
		}
		if next == nil {
			return ""
		}
		n = next
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		return ""
	}
	return n.Value
}

// Parse reads one or more resources from YAML (documents separated by
// ---, each a resource or a list of them) or JSON (an object or an array
// of objects), and validates each. An error is a *FieldError naming the
// resource, the field and its line, or names the document that is not
// YAML.
func Parse(data []byte) ([]Resource, error) {
	docs, err := documents(data)
	if err != nil {
		return nil, err
	}
	out := make([]Resource, 0, len(docs))
	for _, d := range docs {
		r, err := d.resource()
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// resource checks the shape of d, decodes it and validates it.
func (d doc) resource() (Resource, error) {
	var r Resource
	lines := map[string]int{}
	w := &shapeWalker{lines: lines}
	if k, ok := kinds[scalarAt(d.node, "kind")]; ok {
		w.spec = k.spec
	}
	fail := func(fe *FieldError) error {
		fe.Ref = d.ref()
		if fe.Line == 0 {
			fe.Line = lineOf(lines, fe.at, fe.Field)
		}
		return fe
	}
	if fe := w.check(d.node, reflect.TypeFor[Resource](), ""); fe != nil {
		return r, fail(fe)
	}
	v, err := nodeValue(d.node)
	if err != nil {
		return r, fmt.Errorf("%s: %w", d.ref(), err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return r, fmt.Errorf("%s: %w", d.ref(), err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fail(&FieldError{Field: "(top level)", Msg: strings.TrimPrefix(err.Error(), "json: ")})
	}
	if fe := r.validate(); fe != nil {
		return r, fail(fe)
	}
	return r, nil
}

// lineOf finds the line of the first path given, or of its nearest
// ancestor that has one: spec for spec.endpoints when endpoints is absent.
func lineOf(lines map[string]int, paths ...string) int {
	for _, p := range paths {
		for p != "" {
			if l, ok := lines[p]; ok {
				return l
			}
			i := strings.LastIndexAny(p, ".[")
			if i < 0 {
				p = ""
				break
			}
			p = p[:i]
		}
	}
	return lines[""]
}

// ID names a resource: all that deleting it needs.
type ID struct {
	Kind, Name string
}

func (id ID) String() string { return id.Kind + "/" + id.Name }

// ParseIDs reads the kind and metadata.name of every resource in an input
// in the forms Parse reads, and nothing else: a file whose specs are wrong
// or empty still names what to delete.
func ParseIDs(data []byte) ([]ID, error) {
	docs, err := documents(data)
	if err != nil {
		return nil, err
	}
	out := make([]ID, 0, len(docs))
	for _, d := range docs {
		fail := func(field, msg string) error {
			return &FieldError{Ref: d.ref(), Field: field, Msg: msg, Line: lineOfKey(d.node, field)}
		}
		word := scalarAt(d.node, "kind")
		if word == "" {
			return nil, fail("kind", "is required (a string)")
		}
		k, ok := KindFor(word)
		if !ok {
			return nil, fail("kind", fmt.Sprintf("unknown kind %q (known: %s)", word, strings.Join(Kinds(), ", ")))
		}
		name := scalarAt(d.node, "metadata", "name")
		if err := registry.ValidName(name); err != nil {
			return nil, fail("metadata.name", err.Error())
		}
		out = append(out, ID{Kind: k, Name: name})
	}
	return out, nil
}

// lineOfKey is the line of a dotted path of keys in n, or of n itself.
func lineOfKey(n *yaml.Node, path string) int {
	lines := map[string]int{}
	_ = (&shapeWalker{lines: lines}).check(n, nil, "")
	return lineOf(lines, path)
}
