package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

const paymentsYAML = `apiVersion: weftmesh.io/v1alpha1
kind: ExternalService
metadata:
  name: payments
  labels:
    team: billing
spec:
  endpoints:
  - address: pay.example.com:443
    labels:
      zone: a
  - address: 10.0.0.7:8443
`

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		names []string // metadata.name of each resource, in order
	}{
		{"yaml single", paymentsYAML, []string{"payments"}},
		{"yaml multi-document", "---\n" + paymentsYAML + "---\n" + strings.Replace(paymentsYAML, "name: payments", "name: ledger", 1) + "---\n",
			[]string{"payments", "ledger"}},
		{"json object", `{"apiVersion":"weftmesh.io/v1alpha1","kind":"ExternalService","metadata":{"name":"payments"},
			"spec":{"endpoints":[{"address":"pay.example.com:443"}]}}`, []string{"payments"}},
		{"json array", `[
			{"apiVersion":"weftmesh.io/v1alpha1","kind":"ExternalService","metadata":{"name":"a"},"spec":{"endpoints":[{"address":"a.example:80"}]}},
			{"apiVersion":"weftmesh.io/v1alpha1","kind":"ExternalService","metadata":{"name":"b"},"spec":{"endpoints":[{"address":"[::1]:8080"}]}}
		]`, []string{"a", "b"}},
		{"yaml list", "- " + strings.ReplaceAll(strings.TrimSuffix(paymentsYAML, "\n"), "\n", "\n  ") + "\n" +
			"- " + strings.ReplaceAll(strings.TrimSuffix(strings.Replace(paymentsYAML, "name: payments", "name: ledger", 1), "\n"), "\n", "\n  ") + "\n",
			[]string{"payments", "ledger"}},
		{"revision and Kubernetes-style labels", `apiVersion: weftmesh.io/v1alpha1
kind: ExternalService
metadata:
  name: pay
  revision: 42
  labels: {example.com/team: billing, tier: "", a_b.c-d: X.9}
spec:
  endpoints: [{address: "a:1", labels: {app.kubernetes.io/name: pay}}]
`, []string{"pay"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := Parse([]byte(tt.in))
			if err != nil {
				t.Fatalf("Parse: got error %v, want nil", err)
			}
			var got []string
			for _, r := range rs {
				got = append(got, r.Metadata.Name)
				if r.Kind != "ExternalService" || r.APIVersion != APIVersion {
					t.Errorf("resource %s: got kind %q apiVersion %q, want ExternalService %q", r.Metadata.Name, r.Kind, r.APIVersion, APIVersion)
				}
			}
			if !reflect.DeepEqual(got, tt.names) {
				t.Errorf("names: got %v, want %v", got, tt.names)
			}
		})
	}
}

func TestParseYAMLSpecDecodes(t *testing.T) {
	rs, err := Parse([]byte(paymentsYAML))
	if err != nil {
		t.Fatalf("Parse: got error %v, want nil", err)
	}
	if got, want := rs[0].Metadata.Labels, map[string]string{"team": "billing"}; !reflect.DeepEqual(got, want) {
		t.Errorf("metadata.labels: got %v, want %v", got, want)
	}
	es, err := DecodeExternalService(&rs[0])
	if err != nil {
		t.Fatalf("DecodeExternalService: got error %v, want nil", err)
	}
	want := ExternalService{Endpoints: []Endpoint{
		{Address: "pay.example.com:443", Labels: map[string]string{"zone": "a"}},
		{Address: "10.0.0.7:8443"},
	}}
	if !reflect.DeepEqual(es, want) {
		t.Errorf("spec: got %+v, want %+v", es, want)
	}
	if got, want := rs[0].Ref(), "ExternalService/payments"; got != want {
		t.Errorf("Ref: got %q, want %q", got, want)
	}
}

func TestParseErrorsNameTheField(t *testing.T) {
	// doc builds a resource with the given overrides of a valid one.
	doc := func(apiVersion, kind, name, spec string) string {
		s := "apiVersion: " + apiVersion + "\nkind: " + kind + "\nmetadata:\n  name: " + name + "\n"
		if spec != "" {
			s += "spec:\n" + spec
		}
		return s
	}
	const okSpec = "  endpoints:\n  - address: a.example:80\n"
	tests := []struct {
		name   string
		in     string
		ref    string
		field  string // exact FieldError.Field
		msgHas string // substring of FieldError.Msg
		line   int    // FieldError.Line
	}{
		{name: "wrong apiVersion", in: doc("weftmesh.io/v1", "ExternalService", "pay", okSpec),
			ref: "ExternalService/pay", field: "apiVersion", msgHas: `"weftmesh.io/v1"`},
		{name: "unknown kind", in: doc(APIVersion, "ExternalThing", "pay", okSpec),
			ref: "ExternalThing/pay", field: "kind", msgHas: "ExternalService"},
		{name: "bad metadata.name", in: doc(APIVersion, "ExternalService", "Pay_Ments", okSpec),
			ref: "ExternalService/Pay_Ments", field: "metadata.name", msgHas: `"Pay_Ments"`},
		{name: "missing spec", in: doc(APIVersion, "ExternalService", "pay", ""),
			ref: "ExternalService/pay", field: "spec", msgHas: "required"},
		{name: "null spec", in: doc(APIVersion, "ExternalService", "pay", "") + "spec: null\n",
			ref: "ExternalService/pay", field: "spec", msgHas: "required"},
		{name: "unknown protocol", in: doc(APIVersion, "ExternalService", "pay", "  protocol: udp\n  endpoints:\n  - address: a.example:80\n"),
			ref: "ExternalService/pay", field: "spec.protocol", msgHas: `"udp"`},
		{name: "endpoints empty", in: doc(APIVersion, "ExternalService", "pay", "  endpoints: []\n"),
			ref: "ExternalService/pay", field: "spec.endpoints", msgHas: "at least one"},
		{name: "endpoints[1] not host:port", in: doc(APIVersion, "ExternalService", "pay",
			"  endpoints:\n  - address: a.example:80\n  - address: b.example\n"),
			ref: "ExternalService/pay", field: "spec.endpoints[1].address", msgHas: `"b.example"`},
		{name: "empty host", in: doc(APIVersion, "ExternalService", "pay", "  endpoints:\n  - address: \":80\"\n"),
			ref: "ExternalService/pay", field: "spec.endpoints[0].address", msgHas: `":80"`},
		{name: "port out of range", in: doc(APIVersion, "ExternalService", "pay", "  endpoints:\n  - address: a.example:70000\n"),
			ref: "ExternalService/pay", field: "spec.endpoints[0].address", msgHas: "70000"},
		{name: "port zero", in: doc(APIVersion, "ExternalService", "pay", "  endpoints:\n  - address: a.example:0\n"),
			ref: "ExternalService/pay", field: "spec.endpoints[0].address", msgHas: `"0"`},
		{name: "port not a number", in: doc(APIVersion, "ExternalService", "pay", "  endpoints:\n  - address: a.example:http\n"),
			ref: "ExternalService/pay", field: "spec.endpoints[0].address", msgHas: `"http"`},
		{name: "misspelt field in spec", in: doc(APIVersion, "ExternalService", "pay", "  endpoints:\n  - adress: a.example:80\n"),
			ref: "ExternalService/pay", field: "spec.endpoints[0].adress", msgHas: `unknown field "adress"`, line: 7},
		{name: "unknown field in the second endpoint", in: doc(APIVersion, "ExternalService", "pay",
			"  endpoints:\n  - address: a.example:80\n  - address: b.example:80\n    weight: 3\n"),
			ref: "ExternalService/pay", field: "spec.endpoints[1].weight", msgHas: "known here: address, labels", line: 9},
		{name: "wrong type of endpoints", in: doc(APIVersion, "ExternalService", "pay", "  endpoints: a.example:80\n"),
			ref: "ExternalService/pay", field: "spec.endpoints", msgHas: "string", line: 6},
		{name: "wrong type of address", in: doc(APIVersion, "ExternalService", "pay", "  endpoints:\n  - address: 8080\n"),
			ref: "ExternalService/pay", field: "spec.endpoints[0].address", msgHas: "must be a string, got the number 8080", line: 7},
		{name: "label value not a string", in: doc(APIVersion, "ExternalService", "pay", "  endpoints:\n  - address: a:80\n    labels: {v: 2}\n"),
			ref: "ExternalService/pay", field: `spec.endpoints[0].labels["v"]`, msgHas: "quote it", line: 8},
		{name: "unknown top-level field", in: doc(APIVersion, "ExternalService", "pay", okSpec) + "status: {}\n",
			ref: "ExternalService/pay", field: "status", msgHas: `unknown field "status"`, line: 8},
		{name: "unknown metadata field", in: strings.Replace(doc(APIVersion, "ExternalService", "pay", okSpec), "  name: pay\n", "  name: pay\n  owner: prod\n", 1),
			ref: "ExternalService/pay", field: "metadata.owner", msgHas: `unknown field "owner"`, line: 5},
		{name: "key given twice", in: doc(APIVersion, "ExternalService", "pay", okSpec) + "kind: ExternalService\n",
			ref: "ExternalService/pay", field: "kind", msgHas: "given twice (first at line 2)", line: 8},
		{name: "bad metadata label key", in: strings.Replace(doc(APIVersion, "ExternalService", "pay", okSpec), "  name: pay\n", "  name: pay\n  labels:\n    team: a\n    \"bad key!\": x\n", 1),
			ref: "ExternalService/pay", field: "metadata.labels", msgHas: `key "bad key!"`, line: 7},
		{name: "bad metadata label value", in: strings.Replace(doc(APIVersion, "ExternalService", "pay", okSpec), "  name: pay\n", "  name: pay\n  labels: {team: \"a b\"}\n", 1),
			ref: "ExternalService/pay", field: "metadata.labels", msgHas: `value "a b" of "team"`, line: 5},
		{name: "label name too long", in: strings.Replace(doc(APIVersion, "ExternalService", "pay", okSpec), "  name: pay\n", "  name: pay\n  labels: {"+strings.Repeat("a", 64)+": x}\n", 1),
			ref: "ExternalService/pay", field: "metadata.labels", msgHas: "1 to 63", line: 5},
		{name: "label prefix not a DNS subdomain", in: strings.Replace(doc(APIVersion, "ExternalService", "pay", okSpec), "  name: pay\n", "  name: pay\n  labels: {Example.COM/team: x}\n", 1),
			ref: "ExternalService/pay", field: "metadata.labels", msgHas: "DNS subdomain", line: 5},
		{name: "bad endpoint label key", in: doc(APIVersion, "ExternalService", "pay",
			"  endpoints:\n  - address: a.example:80\n  - address: b.example:80\n    labels:\n      zone: a\n      -zone: b\n"),
			ref: "ExternalService/pay", field: "spec.endpoints[1].labels", msgHas: `key "-zone"`, line: 11},
		{name: "duplicate endpoint", in: doc(APIVersion, "ExternalService", "pay",
			"  endpoints:\n  - address: a.example:80\n  - address: A.example:080\n"),
			ref: "ExternalService/pay", field: "spec.endpoints[1].address", msgHas: "same endpoint as spec.endpoints[0]", line: 8},
		{name: "duplicate IPv6 endpoint", in: doc(APIVersion, "ExternalService", "pay",
			"  endpoints:\n  - address: \"[::1]:80\"\n  - address: b:1\n  - address: \"[0:0::1]:80\"\n"),
			ref: "ExternalService/pay", field: "spec.endpoints[2].address", msgHas: "same endpoint", line: 9},
		{name: "second document names itself", in: doc(APIVersion, "ExternalService", "a", okSpec) + "---\n" +
			doc(APIVersion, "ExternalService", "b", "  endpoints: []\n"),
			ref: "ExternalService/b", field: "spec.endpoints", msgHas: "at least one", line: 14},
		{name: "unknown field in third json element", in: `[
			{"apiVersion":"weftmesh.io/v1alpha1","kind":"ExternalService","metadata":{"name":"a"},"spec":{"endpoints":[{"address":"a:1"}]}},
			{"apiVersion":"weftmesh.io/v1alpha1","kind":"ExternalService","metadata":{"name":"b"},"spec":{"endpoints":[{"address":"b:1"}]}},
			{"apiVersion":"weftmesh.io/v1alpha1","kind":"ExternalService","metadata":{"name":"c"},"spek":{}}]`,
			ref: "ExternalService/c", field: "spek", msgHas: `unknown field "spek"`, line: 4},
		{name: "nameless resource in a list", in: "- apiVersion: weftmesh.io/v1alpha1\n  kind: ExternalService\n  metadata: {}\n" +
			"  spec: {endpoints: [{address: a:1}]}\n",
			ref: "document 1 item 1", field: "metadata.name", msgHas: "not a valid service name", line: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := Parse([]byte(tt.in))
			if err == nil {
				t.Fatalf("Parse: got %d resources and no error, want an error on %s", len(rs), tt.field)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Parse: got error %T %q, want a *FieldError", err, err)
			}
			if fe.Ref != tt.ref {
				t.Errorf("Ref: got %q, want %q", fe.Ref, tt.ref)
			}
			if fe.Field != tt.field {
				t.Errorf("Field: got %q, want %q", fe.Field, tt.field)
			}
			if !strings.Contains(fe.Msg, tt.msgHas) {
				t.Errorf("Msg: got %q, want it to contain %q", fe.Msg, tt.msgHas)
			}
			if tt.line != 0 && fe.Line != tt.line {
				t.Errorf("Line: got %d, want %d", fe.Line, tt.line)
			}
			if want := fe.Ref + ": " + fe.Field + ": "; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("Error(): got %q, want prefix %q", err.Error(), want)
			}
		})
	}
}

func TestParseRejectsNonResources(t *testing.T) {
	tests := []struct {
		name, in, errHas string
	}{
		{"empty", "", "no resources"},
		{"whitespace only", " \n\t\n", "no resources"},
		{"only separators", "---\n---\n", "no resources"},
		{"bad yaml", "apiVersion: [\n", "document 1"},
		{"bad yaml in second document", paymentsYAML + "---\nkind: {\n", "document 2"},
		{"bad json array", `[{"kind":`, "parse JSON"},
		{"bad json on line 3", "[\n{\"kind\": 1},\n{\"kind\" 2}]", "parse JSON: line 3"},
		{"a string, not a resource", "hello\n", "want a resource or a list of resources"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := Parse([]byte(tt.in))
			if err == nil {
				t.Fatalf("Parse: got %d resources and no error, want error containing %q", len(rs), tt.errHas)
			}
			if !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("error: got %q, want it to contain %q", err, tt.errHas)
			}
		})
	}
}

func TestKindFor(t *testing.T) {
	tests := []struct {
		word   string
		want   string
		wantOK bool
	}{
		{"ExternalService", "ExternalService", true},
		{"externalservice", "ExternalService", true},
		{"externalservices", "ExternalService", true},
		{"EXTERNALSERVICES", "ExternalService", true},
		{"externalservicess", "", false},
		{"peerauth", "PeerAuthentication", true},
		{"external", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.word, func(t *testing.T) {
			got, ok := KindFor(tt.word)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("KindFor(%q): got (%q, %v), want (%q, %v)", tt.word, got, ok, tt.want, tt.wantOK)
			}
		})
	}
	if got, want := Kinds(), []string{"AlertRule", "AuthorizationPolicy", "ExternalService", "Fault", "GRPCRoute", "HTTPRoute", "PeerAuthentication", "ServiceSubset", "TrafficPolicy"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Kinds: got %v, want %v", got, want)
	}
}

func TestKey(t *testing.T) {
	if got, want := Key("ExternalService", "pay"), "/weft/config/ExternalService/pay"; got != want {
		t.Errorf("Key: got %q, want %q", got, want)
	}
}

func TestParseIDs(t *testing.T) {
	// Deleting needs only kind and name: specs that Parse refuses are fine.
	in := `apiVersion: weftmesh.io/v1alpha1
kind: ExternalService
metadata:
  name: payments
spec:
  endpoints: []
---
kind: externalservices
metadata: {name: ledger, labels: {"bad key!": x}}
---
- kind: ExternalService
  metadata: {name: a}
`
	got, err := ParseIDs([]byte(in))
	if err != nil {
		t.Fatalf("ParseIDs: got error %v, want nil", err)
	}
	want := []ID{{"ExternalService", "payments"}, {"ExternalService", "ledger"}, {Kind: "ExternalService", Name: "a"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseIDs: got %v, want %v", got, want)
	}
	if _, err := Parse([]byte(in)); err == nil {
		t.Errorf("Parse of the same input: got no error, want one (the specs are invalid)")
	}

	bad := []struct {
		name, in, field string
		line            int
	}{
		{"no kind", "metadata: {name: a}\n", "kind", 1},
		{"unknown kind", "kind: Widget\nmetadata: {name: a}\n", "kind", 1},
		{"no name", "kind: ExternalService\nmetadata:\n  labels: {}\n", "metadata.name", 2},
		{"bad name", "kind: ExternalService\nmetadata:\n  name: Bad_Name\n", "metadata.name", 3},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			ids, err := ParseIDs([]byte(tt.in))
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("ParseIDs: got %v, %v; want a *FieldError on %s", ids, err, tt.field)
			}
			if fe.Field != tt.field || fe.Line != tt.line {
				t.Errorf("got field %q line %d, want %q line %d (%v)", fe.Field, fe.Line, tt.field, tt.line, err)
			}
		})
	}
}

func TestLabelRules(t *testing.T) {
	keys := map[string]bool{
		"a": true, "A.b_c-9": true, "example.com/team": true, "a.b/c": true, strings.Repeat("k", 63): true,
		"": false, "bad key!": false, "-a": false, "a-": false, "/a": false, "a/": false, "Example.com/a": false,
		strings.Repeat("k", 64): false, "a/b/c": false, strings.Repeat("p", 254) + "/a": false,
	}
	for k, ok := range keys {
		if got := LabelKeyError(k) == ""; got != ok {
			t.Errorf("LabelKeyError(%q): got valid=%v, want %v (%s)", k, got, ok, LabelKeyError(k))
		}
	}
	values := map[string]bool{"": true, "v1": true, "a.b-c_d": true, strings.Repeat("v", 63): true,
		"a b": false, "-v": false, strings.Repeat("v", 64): false, "v/1": false}
	for v, ok := range values {
		if got := LabelValueError(v) == ""; got != ok {
			t.Errorf("LabelValueError(%q): got valid=%v, want %v", v, got, ok)
		}
	}
}

func TestValidateWithoutInput(t *testing.T) {
	// A resource built in code (weft register, the API) gets the same
	// checks, with exact paths and no line.
	r := Resource{APIVersion: APIVersion, Kind: "ExternalService", Metadata: Metadata{Name: "pay"},
		Spec: []byte(`{"endpoints":[{"address":"a:1"},{"address":"a:1"}]}`)}
	var fe *FieldError
	if err := r.Validate(); !errors.As(err, &fe) || fe.Field != "spec.endpoints[1].address" || fe.Line != 0 || fe.Ref != "ExternalService/pay" {
		t.Errorf("Validate: got %v, want ExternalService/pay: spec.endpoints[1].address without a line", err)
	}
	r.Spec = []byte(`{"endpoints":[{"address":"a:1","weight":1}]}`)
	if err := r.Validate(); !errors.As(err, &fe) || fe.Field != "spec.endpoints[0].weight" {
		t.Errorf("Validate: got %v, want an error on spec.endpoints[0].weight", err)
	}
}

func TestParseRefusesAliasBombs(t *testing.T) {
	// Each level doubles the last: 2^30 values if expanded.
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x]\n")
	for i := 1; i <= 30; i++ {
		fmt.Fprintf(&b, "a%d: &a%d [*a%d, *a%d]\n", i, i, i-1, i-1)
	}
	// An unknown kind: its spec is walked as any value, all the way down.
	in := "apiVersion: weftmesh.io/v1alpha1\nkind: Widget\nmetadata: {name: pay}\nspec:\n" + indent(b.String(), "  ")
	_, err := Parse([]byte(in))
	if err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("Parse: got %v, want an error saying the input expands too far", err)
	}
}

func indent(s, by string) string {
	return by + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n"+by) + "\n"
}
