package configstore

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/store/storetest"
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

func mustParseOne(t *testing.T, s string) config.Resource {
	t.Helper()
	rs, err := config.Parse([]byte(s))
	if err != nil {
		t.Fatalf("Parse: got error %v, want nil", err)
	}
	if len(rs) != 1 {
		t.Fatalf("Parse: got %d resources, want 1", len(rs))
	}
	return rs[0]
}

func TestStoreApplyListGetDelete(t *testing.T) {
	s := storetest.Open(t)
	cs := New(s.Client)
	ctx := storetest.Ctx(t)

	pay := mustParseOne(t, paymentsYAML)
	ledger := mustParseOne(t, strings.Replace(paymentsYAML, "name: payments", "name: ledger", 1))
	changed := mustParseOne(t, strings.Replace(paymentsYAML, "10.0.0.7:8443", "10.0.0.8:8443", 1))

	steps := []struct {
		name string
		r    config.Resource
		want string
	}{
		{"first apply creates", pay, config.Created},
		{"same again is unchanged", pay, config.Unchanged},
		{"other name creates", ledger, config.Created},
		{"changed spec is configured", changed, config.Configured},
		{"changed again is unchanged", changed, config.Unchanged},
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
	es, err := config.DecodeExternalService(&got)
	if err != nil {
		t.Fatalf("DecodeExternalService: %v", err)
	}
	if es.Endpoints[1].Address != "10.0.0.8:8443" {
		t.Errorf("stored endpoint: got %q, want %q", es.Endpoints[1].Address, "10.0.0.8:8443")
	}
	// A resource read back carries its revision; applying it again must
	// not count the revision as a change.
	if out, err := cs.Apply(ctx, got); err != nil || out != config.Unchanged {
		t.Errorf("re-apply of Get result: got (%q, %v), want (%q, nil)", out, err, config.Unchanged)
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
	if out, err := cs.Apply(ctx, pay); err != nil || out != config.Created {
		t.Errorf("Apply after Delete: got (%q, %v), want (%q, nil)", out, err, config.Created)
	}
}

func TestStoreApplyRejectsInvalid(t *testing.T) {
	s := storetest.Open(t)
	cs := New(s.Client)
	ctx := storetest.Ctx(t)

	bad := config.Resource{APIVersion: config.APIVersion, Kind: "ExternalService", Metadata: config.Metadata{Name: "pay"},
		Spec: json.RawMessage(`{"endpoints":[{"address":"nope"}]}`)}
	out, err := cs.Apply(ctx, bad)
	var fe *config.FieldError
	if !errors.As(err, &fe) || fe.Field != "spec.endpoints[0].address" {
		t.Fatalf("Apply invalid: got (%q, %v), want a FieldError on spec.endpoints[0].address", out, err)
	}
	list, err := cs.List(ctx, "")
	if err != nil || len(list) != 0 {
		t.Errorf("List after rejected Apply: got (%d resources, %v), want (0, nil)", len(list), err)
	}
}

// TestMain fails the package when goroutines started by its tests (etcd,
// watches, streams, clients) outlive them.
func TestMain(m *testing.M) { storetest.Main(m) }
