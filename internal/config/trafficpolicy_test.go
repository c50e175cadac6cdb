package config

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const policyHead = "apiVersion: weftmesh.io/v1alpha1\nkind: TrafficPolicy\nmetadata:\n  name: catalog\nspec:\n"

// fullPolicy sets every field in force to a value that is not its
// default (those not enforced yet are refused: TestTrafficPolicyRefusesWhatIsNotEnforced).
const fullPolicy = policyHead + `  loadBalancer:
    policy: ring-hash
    hashOn: {header: x-user}
    locality: {enabled: true, label: topology.example.com/zone}
  timeouts: {request: 5s, perTry: 2s}
  retries:
    attempts: 4
    on: [connect-failure, "503", resource-exhausted, gateway-error]
    backoff: {base: 10ms, max: 1s}
    budget: {percent: 0, minPerSecond: 0, window: 1m}
  circuitBreaker:
    maxRequests: 200
    failureRatio: 0.5
    minRequests: 50
    window: 30s
    openFor: 1m
    halfOpenRequests: 1
  outlierDetection:
    consecutive5xx: 0
    consecutiveGatewayErrors: 3
    consecutiveConnectFailures: 2
    interval: 5s
    baseEjectionTime: 10s
    maxEjectionTime: 60s
    maxEjectionPercent: 50
    successRateMinHosts: 3
    successRateRequestVolume: 20
    successRateStdevFactor: 0
    panicThreshold: 0
  healthCheck: {enabled: false, interval: 2s, timeout: 500ms, healthyThreshold: 1, unhealthyThreshold: 5, jitter: 0}
  rateLimit:
    client: {requestsPerSecond: 100, burst: 20}
    server:
      requestsPerSecond: 1000
  fallback:
    headers: {content-type: application/json}
    body: '{"items": []}'
`

func TestTrafficPolicyDefaults(t *testing.T) {
	// A resource with an empty spec is every default, and so is a
	// section given empty.
	for _, spec := range []string{"  {}\n", "  retries: {}\n  timeouts: {}\n  hedging: null\n"} {
		rs, err := Parse([]byte(policyHead + spec))
		if err != nil {
			t.Fatalf("Parse %q: got error %v, want nil", spec, err)
		}
		got, err := DecodeTrafficPolicy(&rs[0])
		if err != nil {
			t.Fatalf("DecodeTrafficPolicy: %v", err)
		}
		if want := DefaultTrafficPolicy(); !reflect.DeepEqual(got, want) {
			t.Errorf("spec %q: got %+v, want the defaults %+v", spec, got, want)
		}
	}
	d := DefaultTrafficPolicy()
	if d.LoadBalancer.Policy != "peak-ewma" || d.Timeouts.Request != "15s" || d.Retries.Attempts != 3 ||
		d.Retries.MaxBufferedBody != 65536 || !d.HealthCheck.Enabled || d.Hedging != nil || d.Fallback != nil ||
		d.RateLimit.Client != nil || d.RateLimit.Server != nil || d.LoadBalancer.HashOn != nil {
		t.Errorf("DefaultTrafficPolicy: got %+v, want the documented defaults", d)
	}
	// The defaults pass validation themselves.
	if fe := validateTrafficPolicy([]byte(`{}`)); fe != nil {
		t.Errorf("validate {}: got %v, want nil", fe)
	}
	// Each call returns its own slices.
	d.Retries.On[0] = "changed"
	if DefaultTrafficPolicy().Retries.On[0] != RetryConnectFailure {
		t.Errorf("DefaultTrafficPolicy shares its retry list between calls")
	}
}

func TestTrafficPolicyDecodesOntoDefaults(t *testing.T) {
	rs, err := Parse([]byte(fullPolicy))
	if err != nil {
		t.Fatalf("Parse: got error %v, want nil", err)
	}
	p, err := DecodeTrafficPolicy(&rs[0])
	if err != nil {
		t.Fatalf("DecodeTrafficPolicy: %v", err)
	}
	// Zeros given stay zeros; fields left out keep their defaults.
	checks := []struct {
		name      string
		got, want any
	}{
		{"loadBalancer.hashOn", *p.LoadBalancer.HashOn, HashOnSpec{Header: "x-user"}},
		{"loadBalancer.weightLabel (default)", p.LoadBalancer.WeightLabel, "weight"},
		{"loadBalancer.locality", p.LoadBalancer.Locality, LocalitySpec{Enabled: true, Label: "topology.example.com/zone"}},
		{"retries.on", p.Retries.On, []string{"connect-failure", "503", "resource-exhausted", "gateway-error"}},
		{"retries.budget", p.Retries.Budget, RetryBudgetSpec{Percent: 0, MinPerSecond: 0, Window: "1m"}},
		{"retries.maxBufferedBody (default)", p.Retries.MaxBufferedBody, int64(65536)},
		{"outlierDetection.consecutive5xx", p.OutlierDetection.Consecutive5xx, 0},
		{"outlierDetection.successRateStdevFactor", p.OutlierDetection.SuccessRateStdevFactor, 0.0},
		{"healthCheck", p.HealthCheck, HealthCheckSpec{Interval: "2s", Timeout: "500ms", HealthyThreshold: 1, UnhealthyThreshold: 5}},
		{"rateLimit.client", *p.RateLimit.Client, RateLimitSpec{RequestsPerSecond: 100, Burst: 20}},
		{"rateLimit.server", p.RateLimit.Server.RequestsPerSecond, 1000.0},
		{"fallback (status default)", *p.Fallback, FallbackSpec{Status: 503, Headers: map[string]string{"content-type": "application/json"}, Body: `{"items": []}`}},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: got %+v, want %+v", c.name, c.got, c.want)
		}
	}
}

func TestTrafficPolicyAccepts(t *testing.T) {
	tests := []struct{ name, spec string }{
		{"no request timeout, any perTry", "  timeouts: {request: \"0\", perTry: 1h}\n"},
		{"perTry equal to request", "  timeouts: {request: 3s, perTry: 3s}\n"},
		{"request above the default perTry", "  timeouts: {request: 1ms}\n"},
		{"weighted with its label", "  loadBalancer: {policy: weighted, weightLabel: example.com/weight}\n"},
		{"one attempt, no conditions", "  retries: {attempts: 1, on: []}\n"},
		{"every kind of condition", "  retries: {on: [reset, refused-stream, 5xx, \"500\", \"599\", cancelled, deadline-exceeded, unauthenticated]}\n"},
		{"backoff max given above the default base", "  retries: {backoff: {max: 30ms}}\n"},
		{"fallback 200", "  fallback: {status: 200, body: ok}\n"},
		{"health check timeout equal to interval", "  healthCheck: {interval: 1s}\n"},
		{"failure ratio 1", "  circuitBreaker: {failureRatio: 1}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse([]byte(policyHead + tt.spec)); err != nil {
				t.Errorf("Parse: got error %v, want nil", err)
			}
		})
	}
}

func TestTrafficPolicyErrorsNameTheField(t *testing.T) {
	tests := []struct {
		name, spec string
		field      string // exact FieldError.Field
		msg        string // substring of the message
		line       int    // 0: not checked
	}{
		{"unknown policy", "  loadBalancer:\n    policy: fastest\n", "spec.loadBalancer.policy",
			`unknown policy "fastest" (known: peak-ewma, least-request, round-robin, random, weighted, ring-hash)`, 7},
		{"policy not a string", "  loadBalancer: {policy: 3}\n", "spec.loadBalancer.policy", "must be a string", 6},
		{"unknown section", "  retry: {attempts: 2}\n", "spec.retry", `unknown field "retry" (known here: circuitBreaker, fallback, healthCheck, hedging`, 6},
		{"unknown field in a section", "  retries:\n    attempts: 2\n    perTry: 1s\n", "spec.retries.perTry", `unknown field "perTry"`, 8},
		{"ring-hash without hashOn", "  loadBalancer: {policy: ring-hash}\n", "spec.loadBalancer.hashOn", "required with policy ring-hash", 6},
		{"hashOn without ring-hash", "  loadBalancer:\n    hashOn: {header: x-user}\n", "spec.loadBalancer.hashOn", "only to policy ring-hash, not peak-ewma", 7},
		{"hashOn with two", "  loadBalancer: {policy: ring-hash, hashOn: {header: a, cookie: b}}\n", "spec.loadBalancer.hashOn", "exactly one", 0},
		{"hashOn source false", "  loadBalancer: {policy: ring-hash, hashOn: {source: false}}\n", "spec.loadBalancer.hashOn", "exactly one", 0},
		{"hashOn bad header", "  loadBalancer: {policy: ring-hash, hashOn: {header: \"x user\"}}\n", "spec.loadBalancer.hashOn.header", `"x user" is not a header name`, 0},
		{"hashOn unknown field", "  loadBalancer: {policy: ring-hash, hashOn: {query: q}}\n", "spec.loadBalancer.hashOn.query", `unknown field "query" (known here: cookie, header, source)`, 0},
		{"weightLabel without weighted", "  loadBalancer: {weightLabel: w}\n", "spec.loadBalancer.weightLabel", "only to policy weighted", 0},
		{"weightLabel not a label", "  loadBalancer: {policy: weighted, weightLabel: \"a b\"}\n", "spec.loadBalancer.weightLabel", "not a label key", 0},
		{"locality label bad", "  loadBalancer: {locality: {enabled: true, label: -zone}}\n", "spec.loadBalancer.locality.label", "not a label key", 0},
		{"locality enabled not a bool", "  loadBalancer: {locality: {enabled: yes please}}\n", "spec.loadBalancer.locality.enabled", "must be true or false", 0},
		{"negative request timeout", "  timeouts:\n    request: -1s\n", "spec.timeouts.request", `"-1s" must not be negative`, 7},
		{"timeout without a unit", "  timeouts: {request: \"15\"}\n", "spec.timeouts.request", `"15" is not a duration`, 0},
		{"timeout as a number", "  timeouts: {request: 0}\n", "spec.timeouts.request", "must be a string, got the number 0", 0},
		{"perTry above the default request", "  timeouts: {perTry: 20s}\n", "spec.timeouts.perTry",
			`"20s" must not be above spec.timeouts.request (15s, the default)`, 6},
		{"perTry above request", "  timeouts: {request: 1s, perTry: 2s}\n", "spec.timeouts.perTry",
			`"2s" must not be above spec.timeouts.request (1s)`, 0},
		{"attempts zero", "  retries: {attempts: 0}\n", "spec.retries.attempts", "0 must be between 1 and 10", 0},
		{"attempts eleven", "  retries:\n    attempts: 11\n", "spec.retries.attempts", "11 must be between 1 and 10", 7},
		{"attempts a fraction", "  retries: {attempts: 2.5}\n", "spec.retries.attempts", "must be a whole number", 0},
		{"retries on nothing", "  retries: {on: []}\n", "spec.retries.on", "at least one condition", 0},
		{"status not 5xx", "  retries:\n    on: [reset, \"404\"]\n", "spec.retries.on[1]", "status 404 is not retried: a status must be from 500 to 599", 7},
		{"unknown condition", "  retries: {on: [teapot]}\n", "spec.retries.on[0]", `unknown condition "teapot" (known: a status from 500 to 599, connect-failure`, 0},
		{"upper-case gRPC name", "  retries: {on: [UNAVAILABLE]}\n", "spec.retries.on[0]", `unknown condition "UNAVAILABLE"`, 0},
		{"status as a number", "  retries: {on: [503]}\n", "spec.retries.on[0]", "must be a string, got the number 503 (quote it", 0},
		{"condition twice", "  retries: {on: [reset, \"503\", reset]}\n", "spec.retries.on[2]", `"reset" is given twice (first at spec.retries.on[0])`, 0},
		{"backoff base zero", "  retries: {backoff: {base: 0s}}\n", "spec.retries.backoff.base", `"0s" must be more than 0`, 0},
		{"backoff base above the default max", "  retries: {backoff: {base: 1s}}\n", "spec.retries.backoff.base",
			`"1s" must not be above spec.retries.backoff.max (250ms, the default)`, 0},
		{"backoff max below the default base", "  retries: {backoff: {max: 10ms}}\n", "spec.retries.backoff.max",
			`"10ms" must not be below spec.retries.backoff.base (25ms, the default)`, 0},
		{"budget percent", "  retries:\n    budget:\n      percent: 150\n", "spec.retries.budget.percent", "150 must be between 0 and 100", 8},
		{"budget negative min", "  retries: {budget: {minPerSecond: -1}}\n", "spec.retries.budget.minPerSecond", "-1 must be at least 0", 0},
		{"budget window zero", "  retries: {budget: {window: 0s}}\n", "spec.retries.budget.window", "must be more than 0", 0},
		{"buffered body too big", "  retries: {maxBufferedBody: 1000000000}\n", "spec.retries.maxBufferedBody", "must be between 0 and 67108864", 0},
		{"negative max connections", "  circuitBreaker: {maxConnections: -1}\n", "spec.circuitBreaker.maxConnections", "-1 must be at least 0", 0},
		{"pending without connections", "  circuitBreaker: {maxPendingRequests: 10}\n", "spec.circuitBreaker.maxPendingRequests",
			"bounds the requests waiting for a connection under maxConnections, which is not set", 0},
		{"failure ratio as a percent", "  circuitBreaker: {failureRatio: 50}\n", "spec.circuitBreaker.failureRatio", "50 must be between 0 and 1", 0},
		{"no half-open requests", "  circuitBreaker: {halfOpenRequests: 0}\n", "spec.circuitBreaker.halfOpenRequests", "0 must be at least 1", 0},
		{"open for nothing", "  circuitBreaker: {openFor: 0s}\n", "spec.circuitBreaker.openFor", "must be more than 0", 0},
		{"negative consecutive", "  outlierDetection: {consecutiveGatewayErrors: -2}\n", "spec.outlierDetection.consecutiveGatewayErrors", "-2 must be at least 0", 0},
		{"ejection base above max", "  outlierDetection: {baseEjectionTime: 10m, maxEjectionTime: 1m}\n", "spec.outlierDetection.baseEjectionTime",
			`"10m" must not be above spec.outlierDetection.maxEjectionTime (1m)`, 0},
		{"ejection percent", "  outlierDetection: {maxEjectionPercent: 101}\n", "spec.outlierDetection.maxEjectionPercent", "101 must be between 0 and 100", 0},
		{"panic threshold", "  outlierDetection: {panicThreshold: -1}\n", "spec.outlierDetection.panicThreshold", "-1 must be between 0 and 100", 0},
		{"health timeout above interval", "  healthCheck: {interval: 500ms}\n", "spec.healthCheck.interval",
			`"500ms" must not be below spec.healthCheck.timeout (1s, the default)`, 0},
		{"health threshold", "  healthCheck: {unhealthyThreshold: 0}\n", "spec.healthCheck.unhealthyThreshold", "0 must be at least 1", 0},
		{"health jitter", "  healthCheck: {jitter: 200}\n", "spec.healthCheck.jitter", "200 must be between 0 and 100", 0},
		{"client limit without a rate", "  rateLimit:\n    client: {burst: 5}\n", "spec.rateLimit.client.requestsPerSecond", "0 must be more than 0", 7},
		{"negative burst", "  rateLimit: {client: {requestsPerSecond: 1, burst: -1}}\n", "spec.rateLimit.client.burst", "-1 must be at least 0", 0},
		{"empty server limit", "  rateLimit: {server: {}}\n", "spec.rateLimit.server", "requestsPerSecond, perSource or both", 0},
		{"per-source without a rate", "  rateLimit: {server: {perSource: {}}}\n", "spec.rateLimit.server.perSource.requestsPerSecond", "must be more than 0", 0},
		{"hedging both", "  hedging: {delay: 10ms, percentile: 99}\n", "spec.hedging", "delay or percentile, not both", 0},
		{"hedging neither", "  hedging: {maxPercent: 5}\n", "spec.hedging", "must give delay or percentile", 0},
		{"hedging percentile", "  hedging: {percentile: 50}\n", "spec.hedging.percentile", "50 must be 90, 95 or 99", 0},
		{"hedging negative delay", "  hedging: {delay: -5ms}\n", "spec.hedging.delay", "must not be negative", 0},
		{"hedging maxPercent zero", "  hedging: {delay: 5ms, maxPercent: 0}\n", "spec.hedging.maxPercent", "leave hedging out", 0},
		{"fallback status", "  fallback: {status: 99}\n", "spec.fallback.status", "99 must be a status from 200 to 599", 0},
		{"fallback header name", "  fallback: {headers: {\"bad header\": x}}\n", `spec.fallback.headers["bad header"]`, "not a header name", 0},
		{"fallback header value", "  fallback: {headers: {x-a: \"a\\r\\nb\"}}\n", `spec.fallback.headers["x-a"]`, "CR, LF or NUL", 0},
		{"fallback body too big", "  fallback: {body: " + strings.Repeat("a", MaxFallbackBody+1) + "}\n", "spec.fallback.body", "at most 65536", 0},
		{"spec.service is not a field", "  service: catalog\n", "spec.service", `unknown field "service"`, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := Parse([]byte(policyHead + tt.spec))
			if err == nil {
				t.Fatalf("Parse: got %d resources and no error, want an error on %s", len(rs), tt.field)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Parse: got error %T %q, want a *FieldError", err, err)
			}
			if fe.Ref != "TrafficPolicy/catalog" || fe.Field != tt.field {
				t.Errorf("got %s: %s, want TrafficPolicy/catalog: %s (%v)", fe.Ref, fe.Field, tt.field, err)
			}
			if !strings.Contains(fe.Msg, tt.msg) {
				t.Errorf("Msg: got %q, want it to contain %q", fe.Msg, tt.msg)
			}
			if tt.line != 0 && fe.Line != tt.line {
				t.Errorf("Line: got %d, want %d (%v)", fe.Line, tt.line, err)
			}
			// The same spec built in code is refused the same way.
			r := Resource{APIVersion: APIVersion, Kind: "TrafficPolicy", Metadata: Metadata{Name: "catalog"}}
			if r.Spec, err = specJSON(policyHead + tt.spec); err != nil {
				t.Fatalf("spec as JSON: %v", err)
			}
			if err := r.Validate(); !errors.As(err, &fe) || fe.Field != tt.field {
				t.Errorf("Validate: got %v, want an error on %s", err, tt.field)
			}
		})
	}
}

// specJSON reads the spec of a YAML resource as JSON, as the store keeps it.
func specJSON(doc string) ([]byte, error) {
	ds, err := documents([]byte(doc))
	if err != nil {
		return nil, err
	}
	for i := 0; i+1 < len(ds[0].node.Content); i += 2 {
		if ds[0].node.Content[i].Value == "spec" {
			v, err := nodeValue(ds[0].node.Content[i+1])
			if err != nil {
				return nil, err
			}
			return json.Marshal(v)
		}
	}
	return nil, errors.New("no spec")
}

func TestRetryConditionLookups(t *testing.T) {
	if c, ok := GRPCCode("unavailable"); !ok || c != 14 {
		t.Errorf("GRPCCode(unavailable): got (%d, %v), want (14, true)", c, ok)
	}
	if c, ok := GRPCCode("deadline-exceeded"); !ok || c != 4 {
		t.Errorf("GRPCCode(deadline-exceeded): got (%d, %v), want (4, true)", c, ok)
	}
	for _, bad := range []string{"", "ok", "UNAVAILABLE", "deadline_exceeded"} {
		if _, ok := GRPCCode(bad); ok {
			t.Errorf("GRPCCode(%q): got ok, want not a code name", bad)
		}
	}
	for cond, want := range map[string]bool{"500": true, "599": true, "503": true, "499": false, "600": false, "0503": false, "+50": false, "5xx": false} {
		if _, ok := RetryStatus(cond); ok != want {
			t.Errorf("RetryStatus(%q): got %v, want %v", cond, ok, want)
		}
	}
}

func TestTrafficPolicyKindWords(t *testing.T) {
	for _, w := range []string{"TrafficPolicy", "trafficpolicy", "trafficpolicies", "TrafficPolicies", "tp", "TP"} {
		if k, ok := KindFor(w); !ok || k != "TrafficPolicy" {
			t.Errorf("KindFor(%q): got (%q, %v), want (TrafficPolicy, true)", w, k, ok)
		}
	}
	for _, w := range []string{"trafficpolicys", "traffic", "policy", "tps"} {
		if k, ok := KindFor(w); ok {
			t.Errorf("KindFor(%q): got %q, want no kind", w, k)
		}
	}
	ids, err := ParseIDs([]byte("kind: tp\nmetadata: {name: catalog}\n"))
	if err != nil || len(ids) != 1 || ids[0] != (ID{"TrafficPolicy", "catalog"}) {
		t.Errorf("ParseIDs: got %v, %v; want TrafficPolicy/catalog", ids, err)
	}
}

// Every example in the user documentation is a valid TrafficPolicy: a
// whole resource, or a spec under a head naming the service.
func TestTrafficPolicyDocExamples(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "traffic-policy.md"))
	if err != nil {
		t.Fatalf("read the docs: %v", err)
	}
	blocks := strings.Split(string(b), "```yaml\n")[1:]
	if len(blocks) < 10 {
		t.Fatalf("got %d YAML examples in docs/traffic-policy.md, want one per section", len(blocks))
	}
	for i, blk := range blocks {
		blk, _, _ = strings.Cut(blk, "```")
		doc := blk
		if strings.HasPrefix(blk, "spec:") {
			doc = "apiVersion: weftmesh.io/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: catalog}\n" + blk
		}
		if _, err := Parse([]byte(doc)); err != nil {
			t.Errorf("example %d:\n%s\ngot error %v, want a valid TrafficPolicy", i+1, blk, err)
		}
	}
}
