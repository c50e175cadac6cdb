package regstore

import (
	"errors"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/store/storetest"
)

// A service's record is written with its first instance, outlives its
// last one, and is removed only on purpose once no instance is left.
func TestServiceRecordOutlivesInstances(t *testing.T) {
	s := storetest.Open(t)
	reg := New(s.Client)
	ctx := storetest.Ctx(t)

	if _, err := reg.Put(ctx, inst("hello", "h1", "127.0.0.1:9001"), 0, 30*time.Second); err != nil {
		t.Fatalf("Put h1: %v", err)
	}
	if _, err := reg.Put(ctx, inst("hello", "h2", "127.0.0.1:9002"), 0, 30*time.Second); err != nil {
		t.Fatalf("Put h2: %v", err)
	}
	svcs, err := reg.Services(ctx)
	if err != nil || len(svcs) != 1 || svcs[0].Name != "hello" {
		t.Fatalf("Services: got (%+v, %v), want [hello]", svcs, err)
	}

	err = reg.ForgetService(ctx, "hello")
	if !errors.Is(err, ErrServiceInUse) {
		t.Fatalf("ForgetService with 2 instances: got %v, want ErrServiceInUse", err)
	}
	for _, id := range []string{"h1", "h2"} {
		if err := reg.Delete(ctx, "hello", id); err != nil {
			t.Fatalf("Delete %s: %v", id, err)
		}
	}
	if svcs, _ := reg.Services(ctx); len(svcs) != 1 {
		t.Fatalf("Services after the last instance left: got %+v, want hello still known", svcs)
	}
	if err := reg.ForgetService(ctx, "hello"); err != nil {
		t.Fatalf("ForgetService with no instance: got %v, want nil", err)
	}
	if svcs, _ := reg.Services(ctx); len(svcs) != 0 {
		t.Fatalf("Services after forget: got %+v, want none", svcs)
	}
	if err := reg.ForgetService(ctx, "hello"); !errors.Is(err, ErrServiceNotFound) {
		t.Fatalf("ForgetService twice: got %v, want ErrServiceNotFound", err)
	}
}
