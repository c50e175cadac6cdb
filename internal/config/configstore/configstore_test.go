package configstore

import (
	"encoding/json"
	"errors"
	"fmt"
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
		got, _, err := cs.Apply(ctx, st.r)
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
	if out, _, err := cs.Apply(ctx, got); err != nil || out != config.Unchanged {
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
	if out, _, err := cs.Apply(ctx, pay); err != nil || out != config.Created {
		t.Errorf("Apply after Delete: got (%q, %v), want (%q, nil)", out, err, config.Created)
	}
}

func TestStoreApplyRejectsInvalid(t *testing.T) {
	s := storetest.Open(t)
	cs := New(s.Client)
	ctx := storetest.Ctx(t)

	bad := config.Resource{APIVersion: config.APIVersion, Kind: "ExternalService", Metadata: config.Metadata{Name: "pay"},
		Spec: json.RawMessage(`{"endpoints":[{"address":"nope"}]}`)}
	out, _, err := cs.Apply(ctx, bad)
	var fe *config.FieldError
	if !errors.As(err, &fe) || fe.Field != "spec.endpoints[0].address" {
		t.Fatalf("Apply invalid: got (%q, %v), want a FieldError on spec.endpoints[0].address", out, err)
	}
	list, err := cs.List(ctx, "")
	if err != nil || len(list) != 0 {
		t.Errorf("List after rejected Apply: got (%d resources, %v), want (0, nil)", len(list), err)
	}
}

// Every change is a revision in the resource's history: created,
// configured, deleted; a dry run (Plan) writes nothing; a rollback
// re-applies an earlier revision as a new one, also of a deleted
// resource; a revision that deleted it, or one never kept, is refused;
// the history keeps the last MaxHistory.
func TestStoreHistoryAndRollback(t *testing.T) {
	s := storetest.Open(t)
	cs := New(s.Client)
	ctx := storetest.Ctx(t)
	v1 := mustParseOne(t, paymentsYAML)
	v2 := mustParseOne(t, strings.Replace(paymentsYAML, "10.0.0.7:8443", "10.0.0.8:8443", 1))

	if out, _, found, err := cs.Plan(ctx, v1); err != nil || out != config.Created || found {
		t.Fatalf("Plan before anything: got (%q, found %v, %v), want created", out, found, err)
	}
	if h, _ := cs.History(ctx, "ExternalService", "payments"); len(h) != 0 {
		t.Fatalf("a dry run wrote history: %+v", h)
	}
	_, rev1, err := cs.Apply(ctx, v1)
	if err != nil {
		t.Fatal(err)
	}
	if out, stored, found, err := cs.Plan(ctx, v2); err != nil || out != config.Configured || !found || stored.Metadata.Revision != rev1 {
		t.Fatalf("Plan of a change: got (%q, rev %d, found %v, %v), want configured against revision %d", out, stored.Metadata.Revision, found, err, rev1)
	}
	_, rev2, _ := cs.Apply(ctx, v2)
	if out, rev, _ := cs.Apply(ctx, v2); out != config.Unchanged || rev != rev2 {
		t.Errorf("an unchanged apply: got (%q, %d), want (unchanged, %d)", out, rev, rev2)
	}
	if _, err := cs.Delete(ctx, "ExternalService", "payments"); err != nil {
		t.Fatal(err)
	}
	h, err := cs.History(ctx, "ExternalService", "payments")
	if err != nil || len(h) != 3 {
		t.Fatalf("history: got %d entries (%v), want 3", len(h), err)
	}
	if h[0].Action != config.Created || h[0].Revision != rev1 || h[1].Action != config.Configured || h[1].Revision != rev2 ||
		h[2].Action != Deleted || h[2].Resource != nil || h[2].Revision <= rev2 || h[0].Time.IsZero() {
		t.Errorf("history: %+v", h)
	}

	out, rev3, err := cs.Rollback(ctx, "ExternalService", "payments", rev1)
	if err != nil || out != config.Created || rev3 <= h[2].Revision {
		t.Fatalf("rollback of a deleted resource to %d: got (%q, %d, %v), want created at a new revision", rev1, out, rev3, err)
	}
	got, _, _ := cs.Get(ctx, "ExternalService", "payments")
	if es, _ := config.DecodeExternalService(&got); es.Endpoints[1].Address != "10.0.0.7:8443" || got.Metadata.Revision != rev3 {
		t.Errorf("after rollback: %+v at revision %d, want the first spec at %d", es, got.Metadata.Revision, rev3)
	}
	if h, _ = cs.History(ctx, "ExternalService", "payments"); h[len(h)-1].RollbackTo != rev1 {
		t.Errorf("the rollback's entry: %+v, want rollbackTo %d", h[len(h)-1], rev1)
	}
	for _, bad := range []int64{h[2].Revision, 999999} {
		if _, _, err := cs.Rollback(ctx, "ExternalService", "payments", bad); !errors.Is(err, ErrNoRevision) {
			t.Errorf("rollback to %d: got %v, want ErrNoRevision", bad, err)
		}
	}

	for i := range MaxHistory + 5 {
		r := mustParseOne(t, strings.Replace(paymentsYAML, "10.0.0.7:8443", fmt.Sprintf("10.0.1.%d:8443", i), 1))
		if _, _, err := cs.Apply(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if h, _ = cs.History(ctx, "ExternalService", "payments"); len(h) != MaxHistory || h[len(h)-1].Resource == nil {
		t.Errorf("history after many changes: %d entries, want the last %d", len(h), MaxHistory)
	}
}

// TestMain fails the package when goroutines started by its tests (etcd,
// watches, streams, clients) outlive them.
func TestMain(m *testing.M) { storetest.Main(m) }
