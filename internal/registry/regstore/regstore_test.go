package regstore

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftmesh/weft/internal/registry"
	"github.com/weftmesh/weft/internal/store/storetest"
)

func inst(service, id, addr string) registry.Instance {
	return registry.Instance{Service: service, ID: id, Address: addr, Ready: true, Labels: map[string]string{"v": "1"}}
}

// leaseOf returns the lease the stored record of service/id is attached to.
func leaseOf(t *testing.T, c *clientv3.Client, service, id string) int64 {
	t.Helper()
	resp, err := c.Get(storetest.Ctx(t), registry.Key(service, id))
	if err != nil {
		t.Fatalf("get %s/%s: %v", service, id, err)
	}
	if len(resp.Kvs) == 0 {
		t.Fatalf("get %s/%s: got no record, want one", service, id)
	}
	return resp.Kvs[0].Lease
}

func ttlOf(t *testing.T, c *clientv3.Client, lease int64) int64 {
	t.Helper()
	resp, err := c.TimeToLive(storetest.Ctx(t), clientv3.LeaseID(lease))
	if err != nil {
		t.Fatalf("TimeToLive %x: %v", lease, err)
	}
	return resp.TTL
}

func TestPutGrantsLease(t *testing.T) {
	s := storetest.Open(t)
	reg := New(s.Client)
	ctx := storetest.Ctx(t)

	lease, err := reg.Put(ctx, inst("catalog", "c1", "127.0.0.1:9001"), 0, 30*time.Second)
	if err != nil {
		t.Fatalf("Put: got error %v, want nil", err)
	}
	if lease == 0 {
		t.Fatalf("Put: got lease 0, want a granted lease")
	}
	if got := leaseOf(t, s.Client, "catalog", "c1"); got != lease {
		t.Errorf("record lease: got %x, want %x", got, lease)
	}
	if got := ttlOf(t, s.Client, lease); got < 25 || got > 30 {
		t.Errorf("lease TTL: got %ds, want about 30s", got)
	}
	list, err := reg.List(ctx, "catalog")
	if err != nil || len(list) != 1 {
		t.Fatalf("List: got (%v, %v), want one instance", list, err)
	}
	want := inst("catalog", "c1", "127.0.0.1:9001")
	want.Lease = registry.LeaseID(lease)
	if !reflect.DeepEqual(list[0], want) {
		t.Errorf("List: got %+v, want %+v", list[0], want)
	}

	// A TTL under a second still gets a lease of one second.
	short, err := reg.Put(ctx, inst("catalog", "c2", "127.0.0.1:9002"), 0, 100*time.Millisecond)
	if err != nil {
		t.Fatalf("Put with 100ms TTL: got error %v, want nil", err)
	}
	if got := ttlOf(t, s.Client, short); got < 0 || got > 1 {
		t.Errorf("lease TTL for 100ms: got %ds, want 1s or less (and not expired)", got)
	}
}

func TestPutReusesLiveLease(t *testing.T) {
	s := storetest.Open(t)
	reg := New(s.Client)
	ctx := storetest.Ctx(t)

	lease, err := reg.Put(ctx, inst("catalog", "c1", "127.0.0.1:9001"), 0, 30*time.Second)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	in := inst("catalog", "c1", "127.0.0.1:9001")
	in.Ready = false
	got, err := reg.Put(ctx, in, lease, 30*time.Second)
	if err != nil {
		t.Fatalf("Put with live lease: got error %v, want nil", err)
	}
	if got != lease {
		t.Errorf("Put with live lease: got lease %x, want the same %x", got, lease)
	}
	if l := leaseOf(t, s.Client, "catalog", "c1"); l != lease {
		t.Errorf("record lease: got %x, want %x", l, lease)
	}
	list, _ := reg.List(ctx, "catalog")
	if len(list) != 1 || list[0].Ready {
		t.Errorf("List after update: got %+v, want one instance with Ready false", list)
	}
}

func TestPutReplacesLostLease(t *testing.T) {
	s := storetest.Open(t)
	reg := New(s.Client)
	ctx := storetest.Ctx(t)

	g, err := s.Client.Grant(ctx, 30)
	if err != nil {
		t.Fatalf("Grant: %v", err)
	}
	if _, err := s.Client.Revoke(ctx, g.ID); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	tests := []struct {
		name  string
		lease int64
	}{
		{"revoked lease", int64(g.ID)},
		{"never granted lease", 0x7eadbeef},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := reg.Put(ctx, inst("catalog", "c1", "127.0.0.1:9001"), tt.lease, 30*time.Second)
			if err != nil {
				t.Fatalf("Put: got error %v, want nil (a new lease)", err)
			}
			if got == 0 || got == tt.lease {
				t.Errorf("Put: got lease %x, want a new lease other than %x", got, tt.lease)
			}
			if l := leaseOf(t, s.Client, "catalog", "c1"); l != got {
				t.Errorf("record lease: got %x, want %x", l, got)
			}
			if ttl := ttlOf(t, s.Client, got); ttl <= 0 {
				t.Errorf("new lease TTL: got %d, want > 0", ttl)
			}
		})
	}
}

func TestKeepAlive(t *testing.T) {
	s := storetest.Open(t)
	reg := New(s.Client)
	ctx := storetest.Ctx(t)

	lease, err := reg.Put(ctx, inst("catalog", "c1", "127.0.0.1:9001"), 0, 30*time.Second)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if err := reg.KeepAlive(ctx, lease); err != nil {
		t.Errorf("KeepAlive live lease: got %v, want nil", err)
	}
	if _, err := s.Client.Revoke(ctx, clientv3.LeaseID(lease)); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if err := reg.KeepAlive(ctx, lease); !errors.Is(err, registry.ErrLeaseNotFound) {
		t.Errorf("KeepAlive revoked lease: got %v, want registry.ErrLeaseNotFound", err)
	}
	if err := reg.KeepAlive(ctx, 0x5eed); !errors.Is(err, registry.ErrLeaseNotFound) {
		t.Errorf("KeepAlive unknown lease: got %v, want registry.ErrLeaseNotFound", err)
	}
	// Revoking the lease removed the record with it.
	if list, _ := reg.List(ctx, ""); len(list) != 0 {
		t.Errorf("List after revoke: got %+v, want none", list)
	}
}

func TestDelete(t *testing.T) {
	s := storetest.Open(t)
	reg := New(s.Client)
	ctx := storetest.Ctx(t)

	lease, err := reg.Put(ctx, inst("catalog", "c1", "127.0.0.1:9001"), 0, 30*time.Second)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if _, err := reg.Put(ctx, inst("catalog", "c2", "127.0.0.1:9002"), 0, 30*time.Second); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if err := reg.Delete(ctx, "catalog", "c1"); err != nil {
		t.Fatalf("Delete: got %v, want nil", err)
	}
	list, err := reg.List(ctx, "catalog")
	if err != nil || len(list) != 1 || list[0].ID != "c2" {
		t.Errorf("List after Delete: got (%+v, %v), want only c2", list, err)
	}
	if ttl := ttlOf(t, s.Client, lease); ttl != -1 {
		t.Errorf("TTL of deleted instance's lease: got %d, want -1 (revoked)", ttl)
	}
	if err := reg.Delete(ctx, "catalog", "c1"); err != nil {
		t.Errorf("Delete again: got %v, want nil", err)
	}
	if err := reg.Delete(ctx, "nothing", "here"); err != nil {
		t.Errorf("Delete missing: got %v, want nil", err)
	}
}

func TestPutRejectsInvalid(t *testing.T) {
	s := storetest.Open(t)
	reg := New(s.Client)
	ctx := storetest.Ctx(t)
	lease, err := reg.Put(ctx, inst("Catalog", "c1", "127.0.0.1:9001"), 0, 30*time.Second)
	if err == nil || !strings.HasPrefix(err.Error(), "service:") {
		t.Errorf("Put invalid: got (%x, %v), want a service: error", lease, err)
	}
	resp, err := s.Client.Get(ctx, registry.KeyPrefix, clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 0 {
		t.Errorf("records after invalid Put: got %d (err %v), want 0", len(resp.Kvs), err)
	}
	leases, err := s.Client.Leases(ctx)
	if err != nil || len(leases.Leases) != 0 {
		t.Errorf("leases after invalid Put: got %d (err %v), want 0", len(leases.Leases), err)
	}
}

func TestListSortsAndFilters(t *testing.T) {
	s := storetest.Open(t)
	reg := New(s.Client)
	ctx := storetest.Ctx(t)
	for _, in := range []registry.Instance{
		inst("catalog", "c2", "h:2"), inst("cat", "x1", "h:3"), inst("catalog", "c1", "h:1"), inst("orders", "o1", "h:4"),
	} {
		if _, err := reg.Put(ctx, in, 0, 30*time.Second); err != nil {
			t.Fatalf("Put %s/%s: %v", in.Service, in.ID, err)
		}
	}
	tests := []struct {
		service string
		want    []string
	}{
		{"", []string{"cat/x1", "catalog/c1", "catalog/c2", "orders/o1"}},
		{"catalog", []string{"catalog/c1", "catalog/c2"}},
		{"cat", []string{"cat/x1"}}, // a prefix of another name does not match it
		{"none", nil},
	}
	for _, tt := range tests {
		t.Run("service="+tt.service, func(t *testing.T) {
			list, err := reg.List(ctx, tt.service)
			if err != nil {
				t.Fatalf("List: got error %v, want nil", err)
			}
			var got []string
			for _, in := range list {
				got = append(got, in.Service+"/"+in.ID)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("List(%q): got %v, want %v", tt.service, got, tt.want)
			}
		})
	}
	// A record that is not JSON makes List fail, naming the key.
	if _, err := s.Client.Put(ctx, registry.Key("orders", "bad"), "not json"); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.List(ctx, "orders"); err == nil || !strings.Contains(err.Error(), registry.Key("orders", "bad")) {
		t.Errorf("List with a bad record: got %v, want an error naming %s", err, registry.Key("orders", "bad"))
	}
}

func TestInstanceExpiresWithoutKeepAlive(t *testing.T) {
	s := storetest.Open(t)
	reg := New(s.Client)
	ctx := storetest.Ctx(t)

	if _, err := reg.Put(ctx, inst("catalog", "short", "127.0.0.1:9001"), 0, time.Second); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if _, err := reg.Put(ctx, inst("catalog", "long", "127.0.0.1:9002"), 0, time.Minute); err != nil {
		t.Fatalf("Put: %v", err)
	}
	deadline := time.Now().Add(8 * time.Second)
	var last []string
	for {
		list, err := reg.List(ctx, "catalog")
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		last = last[:0]
		for _, in := range list {
			last = append(last, in.ID)
		}
		if reflect.DeepEqual(last, []string{"long"}) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 8s: got instances %v, want [long] (short should have expired with its 1s lease)", last)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("context ended; last seen %v", last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestMain fails the package when goroutines started by its tests (etcd,
// watches, streams, clients) outlive them.
func TestMain(m *testing.M) { storetest.Main(m) }

func TestLeaseServices(t *testing.T) {
	s := storetest.Open(t)
	reg := New(s.Client)
	ctx := storetest.Ctx(t)

	lease, err := reg.Put(ctx, inst("catalog", "c1", "127.0.0.1:9001"), 0, 30*time.Second)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if _, err := reg.PutProxy(ctx, registry.Proxy{Service: "catalog", ID: "c1", Outbound: "127.0.0.1:15001", Since: time.Now()}, lease, 30*time.Second); err != nil {
		t.Fatalf("PutProxy: %v", err)
	}
	if got, err := reg.LeaseServices(ctx, lease); err != nil || !slices.Equal(got, []string{"catalog"}) {
		t.Errorf("LeaseServices(catalog's lease) = %q, %v; want [catalog]", got, err)
	}
	// A record of another service on the same lease: both are named.
	if _, err := reg.Put(ctx, inst("billing", "b1", "127.0.0.1:9002"), lease, 30*time.Second); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if got, err := reg.LeaseServices(ctx, lease); err != nil || !slices.Equal(got, []string{"billing", "catalog"}) {
		t.Errorf("LeaseServices(shared lease) = %q, %v; want [billing catalog]", got, err)
	}
	empty, err := s.Client.Grant(ctx, 30)
	if err != nil {
		t.Fatalf("Grant: %v", err)
	}
	if got, err := reg.LeaseServices(ctx, int64(empty.ID)); err != nil || len(got) != 0 {
		t.Errorf("LeaseServices(a lease with no record) = %q, %v; want none", got, err)
	}
	if _, err := s.Client.Put(ctx, "/weft/tokens/x", "h", clientv3.WithLease(empty.ID)); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if got, err := reg.LeaseServices(ctx, int64(empty.ID)); err != nil || !slices.Equal(got, []string{""}) {
		t.Errorf("LeaseServices(a lease with another key) = %q, %v; want [\"\"]", got, err)
	}
	if _, err := reg.LeaseServices(ctx, 0x5eed); !errors.Is(err, registry.ErrLeaseNotFound) {
		t.Errorf("LeaseServices(unknown lease): got %v, want registry.ErrLeaseNotFound", err)
	}
}
