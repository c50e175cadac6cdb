package snapshot

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/push"
	"github.com/weftmesh/weft/internal/registry"
)

func TestDefaultPolicy(t *testing.T) {
	p := DefaultPolicy()
	checks := []struct {
		name      string
		got, want any
	}{
		{"resource", p.Resource, ""},
		{"loadBalancer", p.LoadBalancer, LoadBalancer{Policy: "peak-ewma", WeightLabel: "weight", Locality: Locality{Label: "zone"}}},
		{"timeouts", p.Timeouts, Timeouts{Request: 15 * time.Second}},
		{"retries.attempts", p.Retries.Attempts, 3},
		{"retries.on", p.Retries.On.Conditions(), []string{"connect-failure", "reset", "refused-stream", "502", "503", "504", "unavailable"}},
		{"retries.backoff", p.Retries.Backoff, Backoff{Base: 25 * time.Millisecond, Max: 250 * time.Millisecond}},
		{"retries.budget", p.Retries.Budget, RetryBudget{Percent: 20, MinPerSecond: 10, Window: 10 * time.Second}},
		{"retries.maxBufferedBody", p.Retries.MaxBufferedBody, int64(65536)},
		{"circuitBreaker", p.CircuitBreaker, CircuitBreaker{MinRequests: 20, Window: 10 * time.Second, OpenFor: 30 * time.Second, HalfOpenRequests: 5}},
		{"outlierDetection", p.OutlierDetection, OutlierDetection{Consecutive5xx: 5, ConsecutiveGatewayErrors: 5,
			ConsecutiveConnectFailures: 5, Interval: 10 * time.Second, BaseEjectionTime: 30 * time.Second,
			MaxEjectionTime: 300 * time.Second, MaxEjectionPercent: 10, SuccessRateMinHosts: 5,
			SuccessRateRequestVolume: 100, SuccessRateStdevFactor: 1.9, PanicThreshold: 50}},
		{"healthCheck", p.HealthCheck, HealthCheck{Enabled: true, Interval: 5 * time.Second, Timeout: time.Second,
			HealthyThreshold: 2, UnhealthyThreshold: 3, Jitter: 10}},
		{"rateLimit", p.RateLimit, RateLimits{}},
		{"hedging", p.Hedging, Hedging{}},
		{"fallback", p.Fallback, Fallback{}},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: got %+v, want %+v", c.name, c.got, c.want)
		}
	}
}

func TestRetryOn(t *testing.T) {
	var r RetryOn
	for _, c := range []string{"reset", "gateway-error", "599", "deadline-exceeded", "unavailable"} {
		if err := r.add(c); err != nil {
			t.Fatalf("add(%q): %v", c, err)
		}
	}
	for code, want := range map[int]bool{499: false, 500: false, 501: false, 502: true, 503: true, 504: true, 505: false,
		563: false, 564: false, 599: true, 600: false, 0: false, -1: false} {
		if got := r.Status(code); got != want {
			t.Errorf("Status(%d): got %v, want %v", code, got, want)
		}
	}
	for code, want := range map[int]bool{0: false, 4: true, 13: false, 14: true, 16: false, 40: false, -3: false} {
		if got := r.GRPC(code); got != want {
			t.Errorf("GRPC(%d): got %v, want %v", code, got, want)
		}
	}
	if r.ConnectFailure || !r.Reset || r.RefusedStream {
		t.Errorf("transport conditions: got %+v, want only reset", r)
	}
	if got, want := r.Conditions(), []string{"reset", "502", "503", "504", "599", "deadline-exceeded", "unavailable"}; !slices.Equal(got, want) {
		t.Errorf("Conditions: got %v, want %v", got, want)
	}
	var all RetryOn
	if err := all.add("5xx"); err != nil || !all.Status(500) || !all.Status(563) || !all.Status(564) || !all.Status(599) {
		t.Errorf("5xx: got %+v, %v; want every status from 500 to 599", all, err)
	}
	if err := all.add("teapot"); err == nil {
		t.Errorf("add(teapot): got nil, want an error")
	}
}

func TestNewPolicy(t *testing.T) {
	rs, err := config.Parse([]byte(`apiVersion: weftmesh.io/v1alpha1
kind: TrafficPolicy
metadata: {name: catalog}
spec:
  loadBalancer: {policy: ring-hash, hashOn: {header: x-user}}
  timeouts: {request: "0", perTry: 2s}
  retries: {attempts: 1, on: [], budget: {percent: 0}}
  rateLimit:
    client: {requestsPerSecond: 2.5}
  fallback: {status: 200, headers: {x-degraded: "1"}, body: "[]"}
`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	spec, err := config.DecodeTrafficPolicy(&rs[0])
	if err != nil {
		t.Fatal(err)
	}
	// Fields validation refuses until the data path enforces them still
	// convert.
	spec.LoadBalancer.HashOn = &config.HashOnSpec{Cookie: "session"}
	spec.RateLimit.Server = &config.ServerRateLimitSpec{PerSource: &config.RateLimitSpec{RequestsPerSecond: 100, Burst: 7}}
	spec.Hedging = &config.HedgingSpec{Delay: "30ms", MaxPercent: 10}
	p, err := NewPolicy(spec)
	if err != nil {
		t.Fatalf("NewPolicy: %v", err)
	}
	d := DefaultPolicy()
	checks := []struct {
		name      string
		got, want any
	}{
		{"hashOn", p.LoadBalancer.HashOn, HashOn{Cookie: "session"}},
		{"timeouts", p.Timeouts, Timeouts{Request: 0, PerTry: 2 * time.Second}},
		{"retries.attempts", p.Retries.Attempts, 1},
		{"retries.on", p.Retries.On, RetryOn{}},
		{"retries.budget", p.Retries.Budget, RetryBudget{Percent: 0, MinPerSecond: 10, Window: 10 * time.Second}},
		{"client limit, burst the rate rounded up", p.RateLimit.Client, RateLimit{Enabled: true, RequestsPerSecond: 2.5, Burst: 3}},
		{"no overall server limit", p.RateLimit.Server, RateLimit{}},
		{"per-source limit", p.RateLimit.ServerPerSource, RateLimit{Enabled: true, RequestsPerSecond: 100, Burst: 7}},
		{"hedging", p.Hedging, Hedging{Enabled: true, Delay: 30 * time.Millisecond, MaxPercent: 10}},
		{"fallback", p.Fallback, Fallback{Enabled: true, Status: 200, Headers: map[string]string{"x-degraded": "1"}, Body: "[]"}},
		{"untouched sections keep the defaults", p.OutlierDetection, d.OutlierDetection},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: got %+v, want %+v", c.name, c.got, c.want)
		}
	}

	// A spec that skipped validation fails to convert, naming the field.
	bad := config.DefaultTrafficPolicy()
	bad.Retries.Backoff.Max = "soon"
	if _, err := NewPolicy(bad); err == nil || !strings.Contains(err.Error(), "spec.retries.backoff.max") {
		t.Errorf("NewPolicy with a bad duration: got %v, want an error naming spec.retries.backoff.max", err)
	}
	bad = config.DefaultTrafficPolicy()
	bad.Retries.On = append(bad.Retries.On, "teapot")
	if _, err := NewPolicy(bad); err == nil || !strings.Contains(err.Error(), "spec.retries.on") {
		t.Errorf("NewPolicy with a bad condition: got %v, want an error naming spec.retries.on", err)
	}
}

func policyResource(name, spec string) json.RawMessage {
	return json.RawMessage(`{"apiVersion":"weftmesh.io/v1alpha1","kind":"TrafficPolicy","metadata":{"name":"` + name + `"},"spec":` + spec + `}`)
}

func TestCompilePolicies(t *testing.T) {
	st := push.State{}
	add := func(k string, v json.RawMessage) { st[k] = v }
	add(instance(t, "catalog", "c1", "10.0.0.1:15006", true))
	add(instance(t, "cart", "k1", "10.0.0.2:15006", true))
	add(registry.ServiceKey("billing"), json.RawMessage(`{"name":"billing"}`))
	add(config.Key("TrafficPolicy", "catalog"), policyResource("catalog", `{"timeouts":{"request":"2s"},"retries":{"attempts":2}}`))
	// Not valid: a stored resource is checked again and its service keeps the defaults.
	add(config.Key("TrafficPolicy", "cart"), policyResource("cart", `{"retries":{"attempts":50}}`))
	// No such service yet: applies once it appears.
	add(config.Key("TrafficPolicy", "search"), policyResource("search", `{"loadBalancer":{"policy":"round-robin"}}`))
	// Under another name's key.
	add(config.Key("TrafficPolicy", "billing"), policyResource("catalog", `{}`))

	var c Compiler
	snap, problems := c.Compile(st, 1)
	var keys []string
	for _, p := range problems {
		keys = append(keys, p.Key)
	}
	if want := []string{config.Key("TrafficPolicy", "billing"), config.Key("TrafficPolicy", "cart")}; !slices.Equal(keys, want) {
		t.Fatalf("problems: got %v, want %v", problems, want)
	}
	if !strings.Contains(problems[1].Error(), "spec.retries.attempts") {
		t.Errorf("problem of cart: got %q, want it to name spec.retries.attempts", problems[1])
	}
	cat := snap.Services["catalog"].Policy
	if cat.Resource != "TrafficPolicy/catalog" || cat.Timeouts.Request != 2*time.Second || cat.Retries.Attempts != 2 {
		t.Errorf("catalog: got %+v, want its TrafficPolicy (request 2s, 2 attempts)", cat)
	}
	if cat.Retries.Budget != DefaultPolicy().Retries.Budget || cat.LoadBalancer.Policy != "peak-ewma" {
		t.Errorf("catalog: fields left out: got %+v, want the defaults", cat)
	}
	for _, name := range []string{"cart", "billing"} {
		if got := snap.Services[name].Policy; !reflect.DeepEqual(got, DefaultPolicy()) {
			t.Errorf("%s: got %+v, want DefaultPolicy", name, got)
		}
	}
	if _, ok := snap.Services["search"]; ok {
		t.Errorf("a TrafficPolicy made a service: got %+v", snap.Services["search"])
	}

	// The same state again: nothing reported twice, nothing decoded again.
	before := c.cache[config.Key("TrafficPolicy", "catalog")]
	if _, problems := c.Compile(st, 2); len(problems) != 0 {
		t.Errorf("problems on the second compile: got %v, want none (reported once)", problems)
	}
	if after := c.cache[config.Key("TrafficPolicy", "catalog")]; &after.raw[0] != &before.raw[0] {
		t.Errorf("an unchanged TrafficPolicy was decoded again")
	}

	// search appears and gets its policy; cart's is fixed; catalog's goes.
	add(instance(t, "search", "s1", "10.0.0.3:15006", true))
	add(config.Key("TrafficPolicy", "cart"), policyResource("cart", `{"retries":{"attempts":5}}`))
	delete(st, config.Key("TrafficPolicy", "catalog"))
	snap, problems = c.Compile(st, 3)
	if len(problems) != 0 {
		t.Errorf("problems: got %v, want none", problems)
	}
	if got := snap.Services["search"].Policy; got.Resource != "TrafficPolicy/search" || got.LoadBalancer.Policy != "round-robin" {
		t.Errorf("search once it exists: got %+v, want its round-robin TrafficPolicy", got)
	}
	if got := snap.Services["cart"].Policy.Retries.Attempts; got != 5 {
		t.Errorf("cart after its policy was fixed: got %d attempts, want 5", got)
	}
	if got := snap.Services["catalog"].Policy; !reflect.DeepEqual(got, DefaultPolicy()) {
		t.Errorf("catalog after its policy was deleted: got %+v, want DefaultPolicy", got)
	}
}
