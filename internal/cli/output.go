package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	// The fork of yaml.v3 that kubectl's YAML library carries: it can put
	// a list's "- " at its key's indentation, as kubectl prints.
	yaml "sigs.k8s.io/yaml/goyaml.v3"
)

// Output formats of -o.
const (
	formatTable = "table"
	formatWide  = "wide"
	formatJSON  = "json"
	formatYAML  = "yaml"
	formatName  = "name"
)

// output is the -o flag.
type output struct {
	format  string
	allowed []string
}

// outputFlag adds -o with the formats given; the first is the default.
func outputFlag(fs *flags, formats ...string) *output {
	if len(formats) == 0 {
		formats = []string{formatTable, formatJSON, formatYAML}
	}
	o := &output{allowed: formats}
	fs.StringVar(&o.format, "o", formats[0], "output format: "+strings.Join(formats, ", "))
	return o
}

func (o *output) check() error {
	for _, f := range o.allowed {
		if o.format == f {
			return nil
		}
	}
	return usagef("-o %q: want %s", o.format, strings.Join(o.allowed, ", "))
}

// view is one answer in every format: value for json and yaml (the API's
// objects, so that what get prints, apply reads back), table for table
// and wide, names for name.
type view struct {
	value any
	table func(tw *tabwriter.Writer, wide bool)
	names []string
}

// print writes v as JSON or YAML, or calls table for the table form.
func (o *output) print(w io.Writer, v any, table func(tw *tabwriter.Writer)) error {
	return o.show(w, view{value: v, table: func(tw *tabwriter.Writer, _ bool) { table(tw) }})
}

// show writes v in the chosen format.
func (o *output) show(w io.Writer, v view) error {
	switch o.format {
	case formatJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v.value)
	case formatYAML:
		return writeYAML(w, v.value)
	case formatName:
		for _, n := range v.names {
			if _, err := fmt.Fprintln(w, n); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	v.table(tw, o.format == formatWide)
	return tw.Flush()
}

// writeYAML writes v as YAML through its JSON form, so that YAML has the
// API's field names in the API's order, numbers stay numbers and strings
// that look like numbers stay strings; indented by 2, lists as kubectl
// prints them.
func writeYAML(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // 64-bit lease ids stay exact
	n, err := yamlNode(dec)
	if err != nil {
		return fmt.Errorf("yaml output: %w", err)
	}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	enc.CompactSeqIndent()
	if err := enc.Encode(n); err != nil {
		return err
	}
	return enc.Close()
}

// yamlNode reads the next JSON value from dec as a YAML node, keeping the
// order of object keys.
func yamlNode(dec *json.Decoder) (*yaml.Node, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		if t == '{' {
			n = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		}
		for dec.More() {
			if n.Kind == yaml.MappingNode {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k.(string)})
			}
			c, err := yamlNode(dec)
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, c)
		}
		if _, err := dec.Token(); err != nil { // the closing delimiter
			return nil, err
		}
		return n, nil
	case string:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: t}, nil
	case json.Number:
		tag := "!!int"
		if strings.ContainsAny(t.String(), ".eE") {
			tag = "!!float"
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: t.String()}, nil
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: fmt.Sprint(t)}, nil
	case nil:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}, nil
	}
	return nil, fmt.Errorf("unexpected JSON token %v", tok)
}

func row(w io.Writer, cols ...any) {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = fmt.Sprint(c)
	}
	fmt.Fprintln(w, strings.Join(parts, "\t"))
}

func labelString(m map[string]string) string {
	if len(m) == 0 {
		return "<none>"
	}
	return labels(m).String()
}
