package sidecar

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/push"
	"github.com/weftmesh/weft/internal/registry"
	"github.com/weftmesh/weft/internal/snapshot"
)

// A policy's hedging reads as when a hedge goes out and how many may.
// (TrafficPolicy validation refuses hedging until the data path enforces
// it, so this is checked on the compiled policy.)
func TestPolicyViewHedging(t *testing.T) {
	for _, tt := range []struct {
		h    snapshot.Hedging
		want string
	}{
		{snapshot.Hedging{}, ""},
		{snapshot.Hedging{Enabled: true, Delay: 20 * time.Millisecond, MaxPercent: 10}, "after 20ms, at most 10% of requests"},
		{snapshot.Hedging{Enabled: true, Percentile: 95, MaxPercent: 2.5}, "after p95, at most 2.5% of requests"},
	} {
		p := snapshot.DefaultPolicy()
		p.Hedging = tt.h
		if got := viewPolicy(&p).Hedging; got != tt.want {
			t.Errorf("hedging %+v: got %q, want %q", tt.h, got, tt.want)
		}
	}
}

// /config shows, per service, the breaker's live state here, and per
// endpoint whether a Retry-After defers it.
func TestConfigViewShowsBreakerAndDeferral(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(app.Close)
	s := startSidecar(t, nil)
	k, v := instanceRecord(t, registry.Instance{Service: "catalog", ID: "c1", Address: app.Listener.Addr().String(), Ready: true, Protocol: "http"})
	policy := `{"apiVersion":"weftmesh.io/v1alpha1","kind":"TrafficPolicy","metadata":{"name":"catalog"},
		"spec":{"circuitBreaker":{"failureRatio":0.5,"minRequests":100}}}`
	s.applyState(push.State{k: v, "/weft/config/TrafficPolicy/catalog": json.RawMessage(policy)}, 4)

	out, _, admin := s.Addrs()
	callVia(t, out, "catalog")

	var svc struct {
		Policy struct {
			Resource, Hedging, CircuitBreaker string
		}
		Breaker   string
		Endpoints []struct {
			Instance      string
			Attempts      uint64
			Deferred      bool
			DeferredUntil *time.Time
		}
	}
	eventually(t, "the deferral recorded in /config", func() (bool, string) {
		r, err := http.Get("http://" + admin + "/config")
		if err != nil {
			return false, err.Error()
		}
		defer r.Body.Close()
		var v struct {
			Services map[string]json.RawMessage
		}
		if err := json.NewDecoder(r.Body).Decode(&v); err != nil {
			return false, err.Error()
		}
		if err := json.Unmarshal(v.Services["catalog"], &svc); err != nil {
			return false, err.Error()
		}
		return len(svc.Endpoints) == 1 && svc.Endpoints[0].Deferred, fmt.Sprintf("%+v", svc)
	})
	if svc.Policy.Resource != "TrafficPolicy/catalog" || svc.Policy.CircuitBreaker == "" {
		t.Errorf("policy: got %+v, want TrafficPolicy/catalog with its circuit breaker", svc.Policy)
	}
	if svc.Breaker != "closed" {
		t.Errorf("breaker: got %q, want closed (one failure of the 100 requests it needs)", svc.Breaker)
	}
	ep := svc.Endpoints[0]
	if ep.DeferredUntil == nil || time.Until(*ep.DeferredUntil) < 20*time.Second {
		t.Errorf("deferredUntil: got %v, want about 30s from now", ep.DeferredUntil)
	}
}

// Without a circuit breaker, /config says no breaker state.
func TestConfigViewWithoutBreaker(t *testing.T) {
	s := startSidecar(t, nil)
	k, v := instanceRecord(t, registry.Instance{Service: "catalog", ID: "c1", Address: "127.0.0.1:1", Ready: true})
	s.applyState(push.State{k: v}, 2)
	_, _, admin := s.Addrs()
	resp, err := http.Get("http://" + admin + "/config")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var view struct {
		Services map[string]map[string]any
	}
	if err := json.NewDecoder(resp.Body).Decode(&view); err != nil {
		t.Fatalf("/config: %v", err)
	}
	cat, ok := view.Services["catalog"]
	if !ok {
		t.Fatalf("/config: got services %v, want catalog", view.Services)
	}
	if b, ok := cat["breaker"]; ok {
		t.Errorf("catalog without a policy: got breaker %v, want none", b)
	}
	if h, ok := cat["policy"].(map[string]any)["hedging"]; ok {
		t.Errorf("catalog without a policy: got hedging %v, want none", h)
	}
}
