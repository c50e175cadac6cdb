package regstore

import (
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/registry"
	"github.com/weftmesh/weft/internal/store/storetest"
)

func TestProxySharesTheInstanceLease(t *testing.T) {
	s := storetest.Open(t)
	reg := New(s.Client)
	ctx := storetest.Ctx(t)

	p := registry.Proxy{Service: "catalog", ID: "c1", Outbound: "127.0.0.1:15001", Inbound: "127.0.0.1:9001", Version: "dev"}
	lease, err := reg.PutProxy(ctx, p, 0, 30*time.Second)
	if err != nil || lease == 0 {
		t.Fatalf("PutProxy: got (%x, %v), want a granted lease", lease, err)
	}
	got, err := reg.Put(ctx, inst("catalog", "c1", "127.0.0.1:9001"), lease, 30*time.Second)
	if err != nil || got != lease {
		t.Fatalf("Put with the proxy's lease: got (%x, %v), want (%x, nil)", got, err, lease)
	}
	consumer := registry.Proxy{Service: "web", ID: "w1", Outbound: "127.0.0.1:15002"}
	if _, err := reg.PutProxy(ctx, consumer, 0, 30*time.Second); err != nil {
		t.Fatalf("PutProxy consumer: %v", err)
	}

	list, err := reg.ListProxies(ctx, "")
	if err != nil || len(list) != 2 || list[0].ID != "c1" || list[1].ID != "w1" {
		t.Fatalf("ListProxies: got (%+v, %v), want c1 then w1", list, err)
	}
	if list[0].Lease != registry.LeaseID(lease) {
		t.Errorf("proxy record lease: got %d, want %d", list[0].Lease, lease)
	}
	if only, _ := reg.ListProxies(ctx, "web"); len(only) != 1 || only[0].ID != "w1" {
		t.Errorf("ListProxies web: got %+v, want w1 alone", only)
	}
	// The instances list holds no proxy records.
	if insts, _ := reg.List(ctx, ""); len(insts) != 1 {
		t.Errorf("List: got %d instances, want 1", len(insts))
	}

	// Deregistering the instance revokes the shared lease: the proxy record goes too.
	if err := reg.Delete(ctx, "catalog", "c1"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if list, _ := reg.ListProxies(ctx, ""); len(list) != 1 || list[0].ID != "w1" {
		t.Errorf("ListProxies after Delete of c1: got %+v, want w1 alone", list)
	}
	if err := reg.DeleteProxy(ctx, "web", "w1"); err != nil {
		t.Fatalf("DeleteProxy: %v", err)
	}
	if list, _ := reg.ListProxies(ctx, ""); len(list) != 0 {
		t.Errorf("ListProxies after DeleteProxy: got %+v, want none", list)
	}
	if err := reg.DeleteProxy(ctx, "web", "w1"); err != nil {
		t.Errorf("DeleteProxy again: got %v, want nil", err)
	}
}

func TestPutProxyRejectsInvalid(t *testing.T) {
	s := storetest.Open(t)
	reg := New(s.Client)
	ctx := storetest.Ctx(t)
	_, err := reg.PutProxy(ctx, registry.Proxy{Service: "web", ID: "w1", Outbound: "nope"}, 0, 30*time.Second)
	if err == nil || !strings.HasPrefix(err.Error(), "outbound:") {
		t.Errorf("PutProxy invalid: got %v, want an outbound: error", err)
	}
	if leases, _ := s.Client.Leases(ctx); len(leases.Leases) != 0 {
		t.Errorf("leases after invalid PutProxy: got %d, want 0", len(leases.Leases))
	}
}
