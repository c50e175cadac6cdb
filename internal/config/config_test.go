package config

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/store"
)

// openStore starts an embedded etcd for one test and closes it at the end.
func openStore(t *testing.T) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := store.Open(ctx, store.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatalf("store.Open: got error %v, want nil", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

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

func mustParseOne(t *testing.T, s string) Resource {
	t.Helper()
	rs, err := Parse([]byte(s))
	if err != nil {
		t.Fatalf("Parse: got error %v, want nil", err)
	}
	if len(rs) != 1 {
		t.Fatalf("Parse: got %d resources, want 1", len(rs))
	}
	return rs[0]
}

func TestStoreApplyListGetDelete(t *testing.T) {
	s := openStore(t)
	cs := NewStore(s.Client)
	ctx := testCtx(t)

	pay := mustParseOne(t, paymentsYAML)
	ledger := mustParseOne(t, strings.Replace(paymentsYAML, "name: payments", "name: ledger", 1))
	changed := mustParseOne(t, strings.Replace(paymentsYAML, "10.0.0.7:8443", "10.0.0.8:8443", 1))

	steps := []struct {
		name string
		r    Resource
		want string
	}{
		{"first apply creates", pay, Created},
		{"same again is unchanged", pay, Unchanged},
		{"other name creates", ledger, Created},
		{"changed spec is configured", changed, Configured},
		{"changed again is unchanged", changed, Unchanged},
	}
	for _, st := range steps {
		got, err := cs.Apply(ctx, st.r)
		if err != nil {
			t.Fatalf("%s: Apply: got error %v, want nil", st.name, err)
		}
		if got != st.want {
			t.Errorf("%s: Apply: got %q, want %q", st.name, got, st.want)
		}
	}

	got, found, err := cs.Get(ctx, "ExternalService", "payments")
	if err != nil || !found {
		t.Fatalf("Get payments: got (found %v, err %v), want (true, nil)", found, err)
	}
	if got.Metadata.Revision == 0 {
		t.Errorf("Get payments: got revision 0, want the etcd revision")
	}
	es, err := DecodeExternalService(&got)
	if err != nil {
		t.Fatalf("DecodeExternalService: %v", err)
	}
	if es.Endpoints[1].Address != "10.0.0.8:8443" {
		t.Errorf("stored endpoint: got %q, want %q", es.Endpoints[1].Address, "10.0.0.8:8443")
	}
	// A resource read back carries its revision; applying it again must
	// not count the revision as a change.
	if out, err := cs.Apply(ctx, got); err != nil || out != Unchanged {
		t.Errorf("re-apply of Get result: got (%q, %v), want (%q, nil)", out, err, Unchanged)
	}

	if _, found, err := cs.Get(ctx, "ExternalService", "nope"); err != nil || found {
		t.Errorf("Get nope: got (found %v, err %v), want (false, nil)", found, err)
	}

	for _, kind := range []string{"", "ExternalService"} {
		list, err := cs.List(ctx, kind)
		if err != nil {
			t.Fatalf("List(%q): got error %v, want nil", kind, err)
		}
		var names []string
		for _, r := range list {
			names = append(names, r.Metadata.Name)
			if r.Metadata.Revision == 0 {
				t.Errorf("List(%q): %s has revision 0, want the etcd revision", kind, r.Metadata.Name)
			}
		}
		if want := []string{"ledger", "payments"}; !reflect.DeepEqual(names, want) {
			t.Errorf("List(%q): got %v, want %v", kind, names, want)
		}
	}
	if list, err := cs.List(ctx, "Other"); err != nil || len(list) != 0 {
		t.Errorf("List(Other): got (%d resources, %v), want (0, nil)", len(list), err)
	}

	deleted, err := cs.Delete(ctx, "ExternalService", "payments")
	if err != nil || !deleted {
		t.Errorf("Delete payments: got (%v, %v), want (true, nil)", deleted, err)
	}
	deleted, err = cs.Delete(ctx, "ExternalService", "payments")
	if err != nil || deleted {
		t.Errorf("Delete payments again: got (%v, %v), want (false, nil)", deleted, err)
	}
	if _, found, _ := cs.Get(ctx, "ExternalService", "payments"); found {
		t.Errorf("Get after Delete: got found, want not found")
	}
	if out, err := cs.Apply(ctx, pay); err != nil || out != Created {
		t.Errorf("Apply after Delete: got (%q, %v), want (%q, nil)", out, err, Created)
	}
}

func TestStoreApplyRejectsInvalid(t *testing.T) {
	s := openStore(t)
	cs := NewStore(s.Client)
	ctx := testCtx(t)

	bad := Resource{APIVersion: APIVersion, Kind: "ExternalService", Metadata: Metadata{Name: "pay"},
		Spec: json.RawMessage(`{"endpoints":[{"address":"nope"}]}`)}
	out, err := cs.Apply(ctx, bad)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "spec.endpoints[0].address" {
		t.Fatalf("Apply invalid: got (%q, %v), want a FieldError on spec.endpoints[0].address", out, err)
	}
	list, err := cs.List(ctx, "")
	if err != nil || len(list) != 0 {
		t.Errorf("List after rejected Apply: got (%d resources, %v), want (0, nil)", len(list), err)
	}
}

func TestStoreKeys(t *testing.T) {
	if got, want := Key("ExternalService", "pay"), "/weft/config/ExternalService/pay"; got != want {
		t.Errorf("Key: got %q, want %q", got, want)
	}
}

// TestMain fails the package when goroutines started by its tests (etcd,
// watches, streams, clients) outlive them.
func TestMain(m *testing.M) {
	before := runtime.NumGoroutine()
	code := m.Run()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		<-time.After(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		fmt.Fprintf(os.Stderr, "goroutines: got %d after the tests, want at most %d as before them:\n%s", n, before, buf[:runtime.Stack(buf, true)])
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}
