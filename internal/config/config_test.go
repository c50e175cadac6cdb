package config

import (
	"errors"
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
		name    string
		in      string
		ref     string
		field   string // exact FieldError.Field
		msgHas  string // substring of FieldError.Msg
		fieldFn func(string) bool
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
			ref: "ExternalService/pay", field: "spec", msgHas: `"adress"`},
		{name: "wrong type of endpoints", in: doc(APIVersion, "ExternalService", "pay", "  endpoints: a.example:80\n"),
			ref: "ExternalService/pay", field: "spec.endpoints", msgHas: "string"},
		{name: "wrong type of address", in: doc(APIVersion, "ExternalService", "pay", "  endpoints:\n  - address: 8080\n"),
			ref: "ExternalService/pay", msgHas: "number",
			// encoding/json names the path without the index: spec.endpoints.address
			fieldFn: func(f string) bool { return strings.HasPrefix(f, "spec.endpoints") && strings.HasSuffix(f, "address") }},
		{name: "unknown top-level field", in: doc(APIVersion, "ExternalService", "pay", okSpec) + "status: {}\n",
			ref: "document 1", field: "(top level)", msgHas: `"status"`},
		{name: "second document names itself", in: doc(APIVersion, "ExternalService", "a", okSpec) + "---\n" +
			doc(APIVersion, "ExternalService", "b", "  endpoints: []\n"),
			ref: "ExternalService/b", field: "spec.endpoints", msgHas: "at least one"},
		{name: "unknown field in third json element", in: `[
			{"apiVersion":"weftmesh.io/v1alpha1","kind":"ExternalService","metadata":{"name":"a"},"spec":{"endpoints":[{"address":"a:1"}]}},
			{"apiVersion":"weftmesh.io/v1alpha1","kind":"ExternalService","metadata":{"name":"b"},"spec":{"endpoints":[{"address":"b:1"}]}},
			{"apiVersion":"weftmesh.io/v1alpha1","kind":"ExternalService","metadata":{"name":"c"},"spek":{}}]`,
			ref: "document 3", field: "(top level)", msgHas: `"spek"`},
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
			if tt.fieldFn != nil {
				if !tt.fieldFn(fe.Field) {
					t.Errorf("Field: got %q, want spec.endpoints...address", fe.Field)
				}
			} else if fe.Field != tt.field {
				t.Errorf("Field: got %q, want %q", fe.Field, tt.field)
			}
			if !strings.Contains(fe.Msg, tt.msgHas) {
				t.Errorf("Msg: got %q, want it to contain %q", fe.Msg, tt.msgHas)
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
	if got, want := Kinds(), []string{"ExternalService"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Kinds: got %v, want %v", got, want)
	}
}

func TestKey(t *testing.T) {
	if got, want := Key("ExternalService", "pay"), "/weft/config/ExternalService/pay"; got != want {
		t.Errorf("Key: got %q, want %q", got, want)
	}
}
