package cli

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/registry"
)

// A service stays listed after its last instance, with none, until
// `weft delete service NAME`, which is refused while instances remain.
func TestDeleteServiceForgetsAKnownName(t *testing.T) {
	cp := startControl(t)
	ctx := context.Background()
	c := api.NewClient(cp)
	if _, err := c.Register(ctx, api.RegisterRequest{Instance: registry.Instance{
		Service: "hello", ID: "hello-1", Address: "127.0.0.1:1", Ready: true}}); err != nil {
		t.Fatalf("register: %v", err)
	}
	_, errOut, err := weft(t, "delete", "service", "hello", "--control", cp)
	if err == nil || !strings.Contains(err.Error()+errOut, "1 registered instance") {
		t.Fatalf("delete service with an instance: got err %v (stderr %q), want a refusal naming the instance count", err, errOut)
	}
	if err := c.Deregister(ctx, "hello", "hello-1"); err != nil {
		t.Fatalf("deregister: %v", err)
	}
	out, _, err := weft(t, "get", "services", "--control", cp)
	if err != nil || !strings.Contains(out, "hello") {
		t.Fatalf("get services after the last instance left: got %q, %v, want hello still listed", out, err)
	}
	out, _, err = weft(t, "delete", "service", "hello", "--control", cp)
	if err != nil || strings.TrimSpace(out) != "service/hello deleted" {
		t.Fatalf("delete service: got %q, %v, want \"service/hello deleted\"", out, err)
	}
	if out, _, _ := weft(t, "get", "services", "--control", cp); strings.Contains(out, "hello") {
		t.Errorf("get services after delete: got %q, want no hello", out)
	}
	_, _, err = weft(t, "delete", "service/hello", "--control", cp)
	if err == nil || !errors.Is(err, api.ErrNotFound) && !strings.Contains(err.Error(), "not found") {
		t.Errorf("delete service twice: got %v, want not found", err)
	}
}
