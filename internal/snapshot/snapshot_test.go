package snapshot

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/weftmesh/weft/internal/push"
	"github.com/weftmesh/weft/internal/registry"
)

func instance(t *testing.T, service, id, addr string, ready bool) (string, json.RawMessage) {
	t.Helper()
	b, err := json.Marshal(registry.Instance{Service: service, ID: id, Address: addr, Ready: ready, Protocol: "http"})
	if err != nil {
		t.Fatal(err)
	}
	return registry.Key(service, id), b
}

func TestCompile(t *testing.T) {
	st := push.State{}
	add := func(k string, v json.RawMessage) { st[k] = v }
	add(instance(t, "catalog", "c2", "10.0.0.2:15006", true))
	add(instance(t, "catalog", "c1", "10.0.0.1:15006", false))
	add(registry.ServiceKey("catalog"), json.RawMessage(`{"name":"catalog"}`))
	add(registry.ServiceKey("hello"), json.RawMessage(`{"name":"hello"}`))
	add("/weft/config/ExternalService/legacy", json.RawMessage(`{"apiVersion":"weftmesh.io/v1alpha1","kind":"ExternalService","metadata":{"name":"legacy"},"spec":{"protocol":"tcp","endpoints":[{"address":"10.0.0.7:3306"}]}}`))
	add(registry.Key("broken", "b1"), json.RawMessage(`{not json`))
	add(registry.ServiceKey("other"), json.RawMessage(`{"name":"elsewhere"}`))

	var c Compiler
	snap, problems := c.Compile(st, 7)
	if snap.Revision != 7 {
		t.Errorf("revision: got %d, want 7", snap.Revision)
	}
	if got, want := snap.Names(), []string{"catalog", "hello", "legacy"}; !slices.Equal(got, want) {
		t.Fatalf("services: got %v, want %v", got, want)
	}
	cat := snap.Services["catalog"]
	if len(cat.Endpoints) != 2 || cat.Endpoints[0].Address != "10.0.0.1:15006" {
		t.Fatalf("catalog endpoints: got %+v, want both, sorted by address", cat.Endpoints)
	}
	if r := cat.Ready(); len(r) != 1 || r[0].Instance != "c2" {
		t.Errorf("catalog ready: got %+v, want only c2", r)
	}
	if cat.Protocol != "http" {
		t.Errorf("catalog protocol: got %q, want http", cat.Protocol)
	}
	if h := snap.Services["hello"]; len(h.Endpoints) != 0 {
		t.Errorf("hello (a record, no instance): got %+v, want known with no endpoint", h)
	}
	lg := snap.Services["legacy"]
	if !lg.External || lg.Protocol != "tcp" || len(lg.Endpoints) != 1 || !lg.Endpoints[0].External || !lg.Endpoints[0].Ready {
		t.Errorf("legacy: got %+v, want one external tcp endpoint", lg)
	}
	if len(problems) != 2 || problems[0].Key != registry.Key("broken", "b1") || problems[1].Key != registry.ServiceKey("other") {
		t.Fatalf("problems: got %v, want the broken record and the misnamed service record", problems)
	}
	if _, ok := snap.Services["elsewhere"]; ok {
		t.Errorf("a service record under another name's key made a service")
	}
	if _, ok := snap.Services["broken"]; ok {
		t.Errorf("a malformed record made a service: %+v", snap.Services["broken"])
	}

	// The same state again: the broken record is not reported twice, and
	// unchanged records are not decoded again.
	before := c.cache[registry.Key("catalog", "c2")]
	snap2, problems := c.Compile(st, 8)
	if len(problems) != 0 {
		t.Errorf("problems on the second compile: got %v, want none (reported once)", problems)
	}
	if after := c.cache[registry.Key("catalog", "c2")]; &after.raw[0] != &before.raw[0] {
		t.Errorf("an unchanged record was decoded again")
	}
	if len(snap2.Services["catalog"].Endpoints) != 2 {
		t.Errorf("second compile lost endpoints: %+v", snap2.Services["catalog"])
	}

	// A record that changes is decoded again; one that goes is gone.
	add(instance(t, "catalog", "c1", "10.0.0.1:15006", true))
	delete(st, registry.ServiceKey("hello"))
	snap3, _ := c.Compile(st, 9)
	if len(snap3.Services["catalog"].Ready()) != 2 {
		t.Errorf("after c1 became ready: got %+v, want 2 ready", snap3.Services["catalog"].Ready())
	}
	if _, ok := snap3.Services["hello"]; ok {
		t.Errorf("hello after its record was removed: still known")
	}
}
