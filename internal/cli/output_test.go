package cli

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/config"
)

// The YAML form of a resource: the API's field order, numbers as numbers,
// strings that look like numbers or booleans quoted, indented by 2 with
// lists at their key's indentation, as kubectl prints.
func TestWriteYAMLLooksLikeKubectl(t *testing.T) {
	r := config.Resource{APIVersion: config.APIVersion, Kind: "ExternalService",
		Metadata: config.Metadata{Name: "pay", Labels: map[string]string{"tier": "1", "on": "true"}, Revision: 6},
		Spec:     json.RawMessage(`{"endpoints":[{"address":"a:1","labels":{"dc":"east"}},{"address":"b:2"}]}`)}
	var buf bytes.Buffer
	if err := writeYAML(&buf, r); err != nil {
		t.Fatalf("writeYAML: %v", err)
	}
	want := `apiVersion: weftmesh.io/v1alpha1
kind: ExternalService
metadata:
  name: pay
  labels:
    on: "true"
    tier: "1"
  revision: 6
spec:
  endpoints:
  - address: a:1
    labels:
      dc: east
  - address: b:2
`
	if got := buf.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestWriteYAMLKeepsValues(t *testing.T) {
	v := map[string]any{"lease": int64(7587878412345678901), "ratio": 0.25, "ok": true, "none": nil,
		"zero": "0", "empty": "", "list": []string{"8080", "yes"}}
	var buf bytes.Buffer
	if err := writeYAML(&buf, v); err != nil {
		t.Fatalf("writeYAML: %v", err)
	}
	for _, line := range []string{"lease: 7587878412345678901\n", "ratio: 0.25\n", "ok: true\n", "none: null\n",
		`zero: "0"` + "\n", `empty: ""` + "\n", `- "8080"` + "\n", "- yes\n"} {
		if !strings.Contains(buf.String(), line) {
			t.Errorf("got\n%s\nwant a line %q", buf.String(), line)
		}
	}
}

// What the printers write, the parser reads back as the same resources:
// one resource as an object, several as a list, in YAML and in JSON.
func TestPrintedResourcesParseBack(t *testing.T) {
	rs, err := config.Parse([]byte(`apiVersion: weftmesh.io/v1alpha1
kind: ExternalService
metadata:
  name: pay
  labels: {tier: "1", example.com/team: billing, "on": "yes", "null": "true"}
  revision: 12
spec:
  protocol: tcp
  endpoints:
  - address: "[::1]:8443"
    labels: {port: "8080", zone: ""}
---
apiVersion: weftmesh.io/v1alpha1
kind: ExternalService
metadata: {name: ledger}
spec: {endpoints: [{address: "10.0.0.7:80"}]}
`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	for _, format := range []string{formatYAML, formatJSON} {
		for _, v := range []any{rs, rs[0]} {
			var buf bytes.Buffer
			o := &output{format: format}
			if err := o.show(&buf, view{value: v}); err != nil {
				t.Fatalf("-o %s: %v", format, err)
			}
			back, err := config.Parse(buf.Bytes())
			if err != nil {
				t.Errorf("-o %s of %T: Parse of the output: got error %v, want nil; output:\n%s", format, v, err, buf.String())
				continue
			}
			want := rs
			if _, one := v.(config.Resource); one {
				want = rs[:1]
			}
			if !reflect.DeepEqual(back, want) {
				t.Errorf("-o %s of %T: got back %+v, want %+v", format, v, back, want)
			}
		}
	}
}

func TestOutputFormats(t *testing.T) {
	for _, f := range getFormats {
		if err := (&output{format: f, allowed: getFormats}).check(); err != nil {
			t.Errorf("check(%q): got %v, want nil", f, err)
		}
	}
	err := (&output{format: "xml", allowed: getFormats}).check()
	if err == nil || ExitCode(err) != 2 || !strings.Contains(err.Error(), "table, wide, json, yaml, name") {
		t.Errorf("check(xml): got %v, want a usage error listing the formats", err)
	}
	// describe has no wide or name form.
	if err := (&output{format: formatName, allowed: []string{formatTable, formatJSON, formatYAML}}).check(); err == nil {
		t.Errorf("check(name) for describe: got nil, want a usage error")
	}
}
