package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"gopkg.in/yaml.v3"
)

// output is the -o flag: table, json or yaml.
type output struct{ format string }

func outputFlag(fs *flags) *output {
	o := &output{}
	fs.StringVar(&o.format, "o", "table", "output format: table, json or yaml")
	return o
}

func (o *output) check() error {
	switch o.format {
	case "table", "json", "yaml":
		return nil
	}
	return usagef("-o %q: want table, json or yaml", o.format)
}

// print writes v as JSON or YAML, or calls table for the table form.
func (o *output) print(w io.Writer, v any, table func(tw *tabwriter.Writer)) error {
	switch o.format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		// Through JSON, so YAML shows the same field names as the API.
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		var generic any
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber() // keep 64-bit lease ids exact
		if err := dec.Decode(&generic); err != nil {
			return err
		}
		out, err := yaml.Marshal(generic)
		if err != nil {
			return err
		}
		_, err = w.Write(out)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	table(tw)
	return tw.Flush()
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
