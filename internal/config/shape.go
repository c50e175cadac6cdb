package config

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// The shape check walks a YAML node tree (JSON is read as YAML) beside the
// Go type it is to become, field names from the json tags. It refuses
// unknown fields, repeated keys and values of the wrong type, each at its
// exact path (spec.endpoints[1].adress), and records the line of every
// path so that later checks of the values can point at the line too.

var rawMessageType = reflect.TypeFor[json.RawMessage]()

// maxNodes bounds a walk: aliases can make a small input expand to a huge
// tree ("billion laughs"), and the control plane parses what clients send.
// The bound is per resource: 65536 values is thousands of endpoints.
const maxNodes = 1 << 16

// shapeWalker holds what one walk needs.
type shapeWalker struct {
	lines  map[string]int // path → line; nil when lines are not wanted
	spec   reflect.Type   // the type of a json.RawMessage field (the spec); nil: any
	visits int
}

// checkShape checks n against t, with n at path; lines, when not nil,
// receives the line of every path.
func checkShape(n *yaml.Node, t reflect.Type, path string, lines map[string]int) *FieldError {
	w := &shapeWalker{lines: lines}
	return w.check(n, t, path)
}

func (w *shapeWalker) record(path string, line int) {
	if w.lines != nil {
		if _, ok := w.lines[path]; !ok {
			w.lines[path] = line
		}
	}
}

func (w *shapeWalker) check(n *yaml.Node, t reflect.Type, path string) *FieldError {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if w.visits++; w.visits > maxNodes {
		return &FieldError{Field: path, Msg: fmt.Sprintf("more than %d values (are aliases expanding?)", maxNodes), Line: n.Line}
	}
	w.record(path, n.Line)
	if t == rawMessageType {
		t = w.spec
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil // absent, as in JSON
	}
	if t == nil || t.Kind() == reflect.Interface {
		return w.walkAny(n, path)
	}
	want := ""
	switch t.Kind() {
	case reflect.Pointer:
		return w.check(n, t.Elem(), path)
	case reflect.String:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
			want = "a string"
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
			want = "a whole number"
		}
	case reflect.Float32, reflect.Float64:
		if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!float") {
			want = "a number"
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			want = "true or false"
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			want = "a list"
			break
		}
		for i, item := range n.Content {
			if fe := w.check(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); fe != nil {
				return fe
			}
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			want = "a map"
			break
		}
		return w.walkMap(n, path, func(key string) (string, reflect.Type, string) {
			return fmt.Sprintf("%s[%q]", path, key), t.Elem(), ""
		})
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			want = "a map of fields"
			break
		}
		fields := jsonFields(t)
		return w.walkMap(n, path, func(key string) (string, reflect.Type, string) {
			child := joinPath(path, key)
			ft, ok := fields[key]
			if !ok {
				return child, nil, fmt.Sprintf("unknown field %q (known here: %s)", key, strings.Join(sortedKeys(fields), ", "))
			}
			return child, ft, ""
		})
	default:
		return &FieldError{Field: path, Msg: fmt.Sprintf("cannot check a field of Go type %s", t), Line: n.Line}
	}
	if want != "" {
		return &FieldError{Field: path, Msg: "must be " + want + ", got " + describeNode(n), Line: n.Line}
	}
	return nil
}

// walkMap checks each entry of a mapping; child names the path and type of
// the value under a key, or says why the key is refused.
func (w *shapeWalker) walkMap(n *yaml.Node, path string, child func(key string) (string, reflect.Type, string)) *FieldError {
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return &FieldError{Field: path, Msg: "a key must be a plain value, got " + describeNode(k), Line: k.Line}
		}
		p, t, refused := child(k.Value)
		if refused != "" {
			return &FieldError{Field: p, Msg: refused, Line: k.Line}
		}
		if first, dup := seen[k.Value]; dup {
			return &FieldError{Field: p, Msg: fmt.Sprintf("given twice (first at line %d)", first), Line: k.Line}
		}
		seen[k.Value] = k.Line
		w.record(p, k.Line)
		if fe := w.check(v, t, p); fe != nil {
			return fe
		}
	}
	return nil
}

// walkAny records lines under a value of no known type; it still refuses
// repeated keys, which would otherwise lose one of the values.
func (w *shapeWalker) walkAny(n *yaml.Node, path string) *FieldError {
	switch n.Kind {
	case yaml.SequenceNode:
		for i, item := range n.Content {
			if fe := w.check(item, nil, fmt.Sprintf("%s[%d]", path, i)); fe != nil {
				return fe
			}
		}
	case yaml.MappingNode:
		return w.walkMap(n, path, func(key string) (string, reflect.Type, string) { return joinPath(path, key), nil, "" })
	}
	return nil
}

// jsonFields maps the JSON names of t's fields to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct || opts == "inline" {
			// An embedded struct's fields are the outer one's (Gateway
			// API's types embed with json:",inline").
			for k, v := range jsonFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// describeNode names what a node holds, for "must be X, got Y".
func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a map"
	case yaml.SequenceNode:
		return "a list"
	}
	switch n.ShortTag() {
	case "!!str":
		return fmt.Sprintf("the string %q", n.Value)
	case "!!int", "!!float":
		return fmt.Sprintf("the number %s (quote it to make it a string)", n.Value)
	case "!!bool":
		return fmt.Sprintf("%s (quote it to make it a string)", n.Value)
	}
	return fmt.Sprintf("%s (%s)", n.Value, strings.TrimPrefix(n.ShortTag(), "!!"))
}

// docContent unwraps a document node.
func docContent(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		return n.Content[0]
	}
	return n
}

// nodeValue turns a node the shape check accepted into plain Go values
// (maps, slices, strings, numbers) for encoding/json.
func nodeValue(n *yaml.Node) (any, error) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			v, err := nodeValue(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			m[n.Content[i].Value] = v
		}
		return m, nil
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for _, item := range n.Content {
			v, err := nodeValue(item)
			if err != nil {
				return nil, err
			}
			s = append(s, v)
		}
		return s, nil
	case yaml.ScalarNode:
		if n.ShortTag() == "!!str" {
			return n.Value, nil
		}
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, fmt.Errorf("line %d: %w", n.Line, err)
		}
		return v, nil
	}
	return nil, fmt.Errorf("line %d: unexpected YAML node", n.Line)
}
