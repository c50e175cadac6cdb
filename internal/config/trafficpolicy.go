package config

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// TrafficPolicy is the spec of a TrafficPolicy resource: how the mesh
// sends traffic to one service, the one its metadata.name names. Every
// field is optional; one left out has the mesh's default, the value
// DefaultTrafficPolicy holds, and so has a service with no TrafficPolicy.
//
// Durations are Go duration strings ("250ms", "15s"); percents are
// numbers from 0 to 100. DecodeTrafficPolicy reads a resource onto the
// defaults, so a decoded TrafficPolicy has every field filled; the
// sections that are off unless given (hashOn, rateLimit.client,
// rateLimit.server, hedging, fallback) are nil when absent.
type TrafficPolicy struct {
	LoadBalancer     LoadBalancerSpec     `json:"loadBalancer"`
	Timeouts         TimeoutsSpec         `json:"timeouts"`
	Retries          RetriesSpec          `json:"retries"`
	CircuitBreaker   CircuitBreakerSpec   `json:"circuitBreaker"`
	OutlierDetection OutlierDetectionSpec `json:"outlierDetection"`
	HealthCheck      HealthCheckSpec      `json:"healthCheck"`
	RateLimit        RateLimitsSpec       `json:"rateLimit"`
	Hedging          *HedgingSpec         `json:"hedging,omitempty"`
	Fallback         *FallbackSpec        `json:"fallback,omitempty"`
}

// LoadBalancerSpec chooses how an instance is picked for each request.
type LoadBalancerSpec struct {
	// Policy is one of LBPolicies; default LBPeakEWMA.
	Policy string `json:"policy"`
	// HashOn is what ring-hash hashes; required for ring-hash, refused
	// with any other policy.
	HashOn *HashOnSpec `json:"hashOn,omitempty"`
	// WeightLabel is the instance label holding its weight (weighted
	// only); default "weight".
	WeightLabel string       `json:"weightLabel"`
	Locality    LocalitySpec `json:"locality"`
}

// HashOnSpec names one request property to hash: exactly one field set.
type HashOnSpec struct {
	Header string `json:"header,omitempty"`
	Cookie string `json:"cookie,omitempty"`
	Source bool   `json:"source,omitempty"` // the calling instance's identity
}

// LocalitySpec prefers instances in the caller's own zone.
type LocalitySpec struct {
	Enabled bool   `json:"enabled"` // default false
	Label   string `json:"label"`   // the label holding the zone; default "zone"
}

// TimeoutsSpec bounds how long a request may take.
type TimeoutsSpec struct {
	Request string `json:"request"` // whole request, every try included; default 15s, 0 none
	PerTry  string `json:"perTry"`  // each try; default 0: only the request timeout
}

// RetriesSpec says when and how often a failed try is made again.
type RetriesSpec struct {
	// Attempts counts every try, the first included: default 3, 1 means
	// no retries, at most MaxRetryAttempts.
	Attempts int `json:"attempts"`
	// On lists what is worth a retry: RetryConditions, a status from 500
	// to 599, or a gRPC status code name in lower case with dashes.
	On      []string        `json:"on"`
	Backoff BackoffSpec     `json:"backoff"`
	Budget  RetryBudgetSpec `json:"budget"`
	// MaxBufferedBody is the largest request body kept for a retry, in
	// bytes; a request with a larger body is tried once. Default 65536.
	MaxBufferedBody int64 `json:"maxBufferedBody"`
}

// BackoffSpec is the wait before a retry: jittered, growing from Base to Max.
type BackoffSpec struct {
	Base string `json:"base"` // default 25ms
	Max  string `json:"max"`  // default 250ms
}

// RetryBudgetSpec caps retries to a share of the requests, so that
// retries cannot multiply the load on a service that is failing.
type RetryBudgetSpec struct {
	Percent      float64 `json:"percent"`      // retries as a share of requests; default 20
	MinPerSecond int     `json:"minPerSecond"` // retries always allowed per second; default 10
	Window       string  `json:"window"`       // over which requests are counted; default 10s
}

// CircuitBreakerSpec limits what one endpoint is sent, and stops sending
// to it for a while when too many requests to it fail.
type CircuitBreakerSpec struct {
	MaxConnections     int     `json:"maxConnections"`     // HTTP/1.1 and TCP, per endpoint; default 0, unlimited
	MaxPendingRequests int     `json:"maxPendingRequests"` // waiting for one of those, per endpoint; default 0, unlimited
	MaxRequests        int     `json:"maxRequests"`        // in flight; default 0, unlimited
	FailureRatio       float64 `json:"failureRatio"`       // 0 to 1 opens the breaker; default 0, off
	MinRequests        int     `json:"minRequests"`        // in the window before the ratio counts; default 20
	Window             string  `json:"window"`             // default 10s
	OpenFor            string  `json:"openFor"`            // default 30s
	HalfOpenRequests   int     `json:"halfOpenRequests"`   // trial requests after OpenFor; default 5
}

// OutlierDetectionSpec ejects endpoints that fail, from what traffic
// shows, for a time that grows each time the same endpoint is ejected.
type OutlierDetectionSpec struct {
	Consecutive5xx             int     `json:"consecutive5xx"`             // default 5; 0 off
	ConsecutiveGatewayErrors   int     `json:"consecutiveGatewayErrors"`   // 502, 503, 504; default 5; 0 off
	ConsecutiveConnectFailures int     `json:"consecutiveConnectFailures"` // default 5; 0 off
	Interval                   string  `json:"interval"`                   // between success-rate sweeps; default 10s
	BaseEjectionTime           string  `json:"baseEjectionTime"`           // default 30s
	MaxEjectionTime            string  `json:"maxEjectionTime"`            // default 300s
	MaxEjectionPercent         float64 `json:"maxEjectionPercent"`         // default 10
	SuccessRateMinHosts        int     `json:"successRateMinHosts"`        // default 5
	SuccessRateRequestVolume   int     `json:"successRateRequestVolume"`   // per endpoint per interval; default 100
	SuccessRateStdevFactor     float64 `json:"successRateStdevFactor"`     // default 1.9; 0 off
	PanicThreshold             float64 `json:"panicThreshold"`             // percent healthy below which all are used; default 50; 0 off
}

// HealthCheckSpec is how a sidecar checks the endpoints it sends to.
type HealthCheckSpec struct {
	Enabled            bool    `json:"enabled"`            // default true
	Interval           string  `json:"interval"`           // default 5s
	Timeout            string  `json:"timeout"`            // default 1s, at most Interval
	HealthyThreshold   int     `json:"healthyThreshold"`   // default 2
	UnhealthyThreshold int     `json:"unhealthyThreshold"` // default 3
	Jitter             float64 `json:"jitter"`             // percent of Interval; default 10
}

// RateLimitsSpec holds the token buckets of a service; each is off unless given.
type RateLimitsSpec struct {
	// Client limits what each consumer's sidecar sends to the service.
	Client *RateLimitSpec `json:"client,omitempty"`
	// Server limits what the service's own sidecars let in.
	Server *ServerRateLimitSpec `json:"server,omitempty"`
}

// RateLimitSpec is a token bucket.
type RateLimitSpec struct {
	RequestsPerSecond float64 `json:"requestsPerSecond"`
	// Burst is the bucket's size; 0 or absent: RequestsPerSecond rounded
	// up (at least 1).
	Burst int `json:"burst,omitempty"`
}

// ServerRateLimitSpec limits a service's inbound traffic in all and, with
// PerSource, for each calling service.
type ServerRateLimitSpec struct {
	RequestsPerSecond float64        `json:"requestsPerSecond,omitempty"` // 0: no overall limit
	Burst             int            `json:"burst,omitempty"`
	PerSource         *RateLimitSpec `json:"perSource,omitempty"`
}

// HedgingSpec sends a second try, to another endpoint, when the first
// has not answered after Delay, or after the given percentile of recent
// latency; the first answer wins.
type HedgingSpec struct {
	Delay      string  `json:"delay,omitempty"`
	Percentile int     `json:"percentile,omitempty"` // 90, 95 or 99
	MaxPercent float64 `json:"maxPercent"`           // hedges as a share of requests; default 10
}

// UnmarshalJSON reads a hedging section onto its defaults.
func (h *HedgingSpec) UnmarshalJSON(b []byte) error {
	type plain HedgingSpec
	p := plain{MaxPercent: 10}
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*h = HedgingSpec(p)
	return nil
}

// FallbackSpec is the answer the mesh gives instead of its own error
// when the service has no healthy endpoint or its circuit is open.
type FallbackSpec struct {
	Status  int               `json:"status"` // default 503
	Headers map[string]string `json:"headers,omitempty"`
	Body    string            `json:"body,omitempty"`
}

// UnmarshalJSON reads a fallback section onto its defaults.
func (f *FallbackSpec) UnmarshalJSON(b []byte) error {
	type plain FallbackSpec
	p := plain{Status: 503}
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*f = FallbackSpec(p)
	return nil
}

// Load balancing policies.
const (
	LBPeakEWMA     = "peak-ewma" // power of two choices over a peak-EWMA latency estimate
	LBLeastRequest = "least-request"
	LBRoundRobin   = "round-robin"
	LBRandom       = "random"
	LBWeighted     = "weighted"
	LBRingHash     = "ring-hash"
)

// LBPolicies lists the load balancing policies, the default first.
var LBPolicies = []string{LBPeakEWMA, LBLeastRequest, LBRoundRobin, LBRandom, LBWeighted, LBRingHash}

// Retry conditions other than status codes and gRPC code names.
const (
	RetryConnectFailure = "connect-failure" // no connection could be made
	RetryReset          = "reset"           // the connection broke before a response
	RetryRefusedStream  = "refused-stream"  // HTTP/2 REFUSED_STREAM: the server did not start it
	Retry5xx            = "5xx"             // any status from 500 to 599
	RetryGatewayError   = "gateway-error"   // 502, 503 or 504
)

// RetryConditions lists the named retry conditions that are not status
// codes or gRPC code names.
var RetryConditions = []string{RetryConnectFailure, RetryReset, RetryRefusedStream, Retry5xx, RetryGatewayError}

// grpcCodeNames are gRPC's status code names in lower case with dashes,
// indexed by code; OK (0) is no failure and is not listed.
var grpcCodeNames = [...]string{1: "cancelled", 2: "unknown", 3: "invalid-argument", 4: "deadline-exceeded",
	5: "not-found", 6: "already-exists", 7: "permission-denied", 8: "resource-exhausted",
	9: "failed-precondition", 10: "aborted", 11: "out-of-range", 12: "unimplemented", 13: "internal",
	14: "unavailable", 15: "data-loss", 16: "unauthenticated"}

// GRPCCode returns the gRPC status code of a retry condition that names
// one ("unavailable" is 14).
func GRPCCode(name string) (code int, ok bool) {
	for c, n := range grpcCodeNames {
		if n != "" && n == name {
			return c, true
		}
	}
	return 0, false
}

// GRPCCodeName is the retry condition of a gRPC status code (14 is
// "unavailable"), or "" for OK and codes gRPC does not define.
func GRPCCodeName(code int) string {
	if code < 0 || code >= len(grpcCodeNames) {
		return ""
	}
	return grpcCodeNames[code]
}

// RetryStatus returns the HTTP status of a retry condition that is one
// ("503"); only statuses from 500 to 599 are retry conditions.
func RetryStatus(cond string) (status int, ok bool) {
	if len(cond) != 3 {
		return 0, false
	}
	n, err := strconv.Atoi(cond)
	return n, err == nil && n >= 500 && n <= 599
}

// Bounds of TrafficPolicy fields that are not plain ranges.
const (
	MaxRetryAttempts   = 10
	MaxBufferedBody    = 64 << 20 // bytes a request may keep for retries
	MaxFallbackBody    = 64 << 10
	DefaultWeightLabel = "weight"
	DefaultZoneLabel   = "zone"
)

// DefaultTrafficPolicy is the policy of a service that has no
// TrafficPolicy, and what every field left out of one takes.
func DefaultTrafficPolicy() TrafficPolicy {
	return TrafficPolicy{
		LoadBalancer: LoadBalancerSpec{Policy: LBPeakEWMA, WeightLabel: DefaultWeightLabel,
			Locality: LocalitySpec{Label: DefaultZoneLabel}},
		Timeouts: TimeoutsSpec{Request: "15s", PerTry: "0s"},
		Retries: RetriesSpec{Attempts: 3,
			On:              []string{RetryConnectFailure, RetryReset, RetryRefusedStream, "502", "503", "504", "unavailable"},
			Backoff:         BackoffSpec{Base: "25ms", Max: "250ms"},
			Budget:          RetryBudgetSpec{Percent: 20, MinPerSecond: 10, Window: "10s"},
			MaxBufferedBody: 65536},
		CircuitBreaker: CircuitBreakerSpec{MinRequests: 20, Window: "10s", OpenFor: "30s", HalfOpenRequests: 5},
		OutlierDetection: OutlierDetectionSpec{Consecutive5xx: 5, ConsecutiveGatewayErrors: 5,
			ConsecutiveConnectFailures: 5, Interval: "10s", BaseEjectionTime: "30s", MaxEjectionTime: "300s",
			MaxEjectionPercent: 10, SuccessRateMinHosts: 5, SuccessRateRequestVolume: 100,
			SuccessRateStdevFactor: 1.9, PanicThreshold: 50},
		HealthCheck: HealthCheckSpec{Enabled: true, Interval: "5s", Timeout: "1s", HealthyThreshold: 2,
			UnhealthyThreshold: 3, Jitter: 10},
	}
}

// DecodeTrafficPolicy reads the spec of a TrafficPolicy onto the
// defaults: every field the resource leaves out has its default value.
// It does not validate: call Validate on a resource that did not come
// through Parse or the store.
func DecodeTrafficPolicy(r *Resource) (TrafficPolicy, error) {
	p := DefaultTrafficPolicy()
	if err := json.Unmarshal(r.Spec, &p); err != nil {
		return DefaultTrafficPolicy(), fmt.Errorf("decode %s: %w", r.Ref(), err)
	}
	return p, nil
}

// given tells which fields a spec sets, for checks that involve two
// fields, one of which may have its default.
type given map[string]any

// has reports whether the spec sets the field at the path of JSON names.
func (g given) has(path ...string) bool {
	var v any = map[string]any(g)
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return false
		}
		if v, ok = m[k]; !ok || v == nil {
			return false
		}
	}
	return true
}

func validateTrafficPolicy(spec json.RawMessage) *FieldError {
	p := DefaultTrafficPolicy()
	if fe := decodeSpec(spec, &p); fe != nil {
		return fe
	}
	var g given
	if fe := decodeSpec(spec, &g); fe != nil {
		return fe
	}
	for _, check := range []func(*TrafficPolicy, given) *FieldError{
		checkLoadBalancer, checkTimeouts, checkRetries, checkCircuitBreaker, checkOutlierDetection,
		checkHealthCheck, checkRateLimit, checkHedging, checkFallback,
	} {
		if fe := check(&p, g); fe != nil {
			return fe
		}
	}
	return nil
}

func checkLoadBalancer(p *TrafficPolicy, g given) *FieldError {
	lb := &p.LoadBalancer
	if !slices.Contains(LBPolicies, lb.Policy) {
		return &FieldError{Field: "spec.loadBalancer.policy",
			Msg: fmt.Sprintf("unknown policy %q (known: %s)", lb.Policy, strings.Join(LBPolicies, ", "))}
	}
	switch {
	case lb.Policy == LBRingHash && lb.HashOn == nil:
		return &FieldError{Field: "spec.loadBalancer.hashOn", Msg: "is required with policy ring-hash (header, cookie or source)"}
	case lb.Policy != LBRingHash && lb.HashOn != nil:
		return &FieldError{Field: "spec.loadBalancer.hashOn", Msg: fmt.Sprintf("applies only to policy ring-hash, not %s", lb.Policy)}
	case lb.HashOn != nil:
		h := lb.HashOn
		n := 0
		for _, set := range []bool{h.Header != "", h.Cookie != "", h.Source} {
			if set {
				n++
			}
		}
		if n != 1 {
			return &FieldError{Field: "spec.loadBalancer.hashOn", Msg: "must give exactly one of header, cookie or source: true"}
		}
		if h.Header != "" && !httpguts.ValidHeaderFieldName(h.Header) {
			return &FieldError{Field: "spec.loadBalancer.hashOn.header", Msg: fmt.Sprintf("%q is not a header name", h.Header)}
		}
		if h.Cookie != "" && !httpguts.ValidHeaderFieldName(h.Cookie) {
			return &FieldError{Field: "spec.loadBalancer.hashOn.cookie", Msg: fmt.Sprintf("%q is not a cookie name", h.Cookie)}
		}
	}
	if g.has("loadBalancer", "weightLabel") {
		if lb.Policy != LBWeighted {
			return &FieldError{Field: "spec.loadBalancer.weightLabel", Msg: fmt.Sprintf("applies only to policy weighted, not %s", lb.Policy)}
		}
		if msg := LabelKeyError(lb.WeightLabel); msg != "" {
			return &FieldError{Field: "spec.loadBalancer.weightLabel", Msg: fmt.Sprintf("%q is not a label key: %s", lb.WeightLabel, msg)}
		}
	}
	if msg := LabelKeyError(lb.Locality.Label); msg != "" {
		return &FieldError{Field: "spec.loadBalancer.locality.label", Msg: fmt.Sprintf("%q is not a label key: %s", lb.Locality.Label, msg)}
	}
	return nil
}

func checkTimeouts(p *TrafficPolicy, g given) *FieldError {
	req, fe := duration("spec.timeouts.request", p.Timeouts.Request, false)
	if fe != nil {
		return fe
	}
	try, fe := duration("spec.timeouts.perTry", p.Timeouts.PerTry, false)
	if fe != nil {
		return fe
	}
	if req > 0 {
		return ordered(g, "spec.timeouts.perTry", p.Timeouts.PerTry, try, "spec.timeouts.request", p.Timeouts.Request, req)
	}
	return nil
}

// ordered refuses a value of low above that of high, naming the field
// the spec gave (low when it gave both) and saying when the other one is
// the default.
func ordered(g given, low, lowS string, lowV time.Duration, high, highS string, highV time.Duration) *FieldError {
	if lowV <= highV {
		return nil
	}
	if g.has(fieldPath(low)...) {
		return &FieldError{Field: low, Msg: fmt.Sprintf("%q must not be above %s (%s%s)", lowS, high, highS, defaultNote(g, high))}
	}
	return &FieldError{Field: high, Msg: fmt.Sprintf("%q must not be below %s (%s%s)", highS, low, lowS, defaultNote(g, low))}
}

func defaultNote(g given, field string) string {
	if g.has(fieldPath(field)...) {
		return ""
	}
	return ", the default"
}

// fieldPath splits spec.a.b into its JSON names a, b.
func fieldPath(field string) []string {
	return strings.Split(strings.TrimPrefix(field, "spec."), ".")
}

func checkRetries(p *TrafficPolicy, g given) *FieldError {
	r := &p.Retries
	if fe := between("spec.retries.attempts", float64(r.Attempts), 1, MaxRetryAttempts); fe != nil {
		return fe
	}
	if len(r.On) == 0 && r.Attempts > 1 {
		return &FieldError{Field: "spec.retries.on", Msg: "must name at least one condition (attempts: 1 turns retries off)"}
	}
	seen := map[string]int{}
	for i, c := range r.On {
		field := fmt.Sprintf("spec.retries.on[%d]", i)
		if first, dup := seen[c]; dup {
			return &FieldError{Field: field, Msg: fmt.Sprintf("%q is given twice (first at spec.retries.on[%d])", c, first)}
		}
		seen[c] = i
		if fe := checkRetryCondition(field, c); fe != nil {
			return fe
		}
	}
	base, fe := duration("spec.retries.backoff.base", r.Backoff.Base, true)
	if fe != nil {
		return fe
	}
	mx, fe := duration("spec.retries.backoff.max", r.Backoff.Max, true)
	if fe != nil {
		return fe
	}
	if fe := ordered(g, "spec.retries.backoff.base", r.Backoff.Base, base, "spec.retries.backoff.max", r.Backoff.Max, mx); fe != nil {
		return fe
	}
	if fe := between("spec.retries.budget.percent", r.Budget.Percent, 0, 100); fe != nil {
		return fe
	}
	if fe := atLeast("spec.retries.budget.minPerSecond", float64(r.Budget.MinPerSecond), 0); fe != nil {
		return fe
	}
	if _, fe := duration("spec.retries.budget.window", r.Budget.Window, true); fe != nil {
		return fe
	}
	return between("spec.retries.maxBufferedBody", float64(r.MaxBufferedBody), 0, MaxBufferedBody)
}

// checkRetryCondition checks one entry of retries.on.
func checkRetryCondition(field, c string) *FieldError {
	if slices.Contains(RetryConditions, c) {
		return nil
	}
	if _, ok := GRPCCode(c); ok {
		return nil
	}
	if _, err := strconv.Atoi(c); err == nil {
		if _, ok := RetryStatus(c); !ok {
			return &FieldError{Field: field, Msg: fmt.Sprintf("status %s is not retried: a status must be from 500 to 599", c)}
		}
		return nil
	}
	names := slices.Clone(RetryConditions)
	for _, n := range grpcCodeNames {
		if n != "" {
			names = append(names, n)
		}
	}
	return &FieldError{Field: field, Msg: fmt.Sprintf("unknown condition %q (known: a status from 500 to 599, %s)", c, strings.Join(names, ", "))}
}

func checkCircuitBreaker(p *TrafficPolicy, _ given) *FieldError {
	cb := &p.CircuitBreaker
	for _, f := range []struct {
		name string
		v    int
		min  float64
	}{
		{"maxConnections", cb.MaxConnections, 0}, {"maxPendingRequests", cb.MaxPendingRequests, 0},
		{"maxRequests", cb.MaxRequests, 0}, {"minRequests", cb.MinRequests, 1}, {"halfOpenRequests", cb.HalfOpenRequests, 1},
	} {
		if fe := atLeast("spec.circuitBreaker."+f.name, float64(f.v), f.min); fe != nil {
			return fe
		}
	}
	if cb.MaxPendingRequests > 0 && cb.MaxConnections == 0 {
		return &FieldError{Field: "spec.circuitBreaker.maxPendingRequests",
			Msg: "bounds the requests waiting for a connection under maxConnections, which is not set"}
	}
	if fe := between("spec.circuitBreaker.failureRatio", cb.FailureRatio, 0, 1); fe != nil {
		return fe
	}
	if _, fe := duration("spec.circuitBreaker.window", cb.Window, true); fe != nil {
		return fe
	}
	_, fe := duration("spec.circuitBreaker.openFor", cb.OpenFor, true)
	return fe
}

func checkOutlierDetection(p *TrafficPolicy, g given) *FieldError {
	od := &p.OutlierDetection
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"consecutive5xx", float64(od.Consecutive5xx)}, {"consecutiveGatewayErrors", float64(od.ConsecutiveGatewayErrors)},
		{"consecutiveConnectFailures", float64(od.ConsecutiveConnectFailures)}, {"successRateMinHosts", float64(od.SuccessRateMinHosts)},
		{"successRateRequestVolume", float64(od.SuccessRateRequestVolume)}, {"successRateStdevFactor", od.SuccessRateStdevFactor},
	} {
		if fe := atLeast("spec.outlierDetection."+f.name, f.v, 0); fe != nil {
			return fe
		}
	}
	if _, fe := duration("spec.outlierDetection.interval", od.Interval, true); fe != nil {
		return fe
	}
	base, fe := duration("spec.outlierDetection.baseEjectionTime", od.BaseEjectionTime, true)
	if fe != nil {
		return fe
	}
	mx, fe := duration("spec.outlierDetection.maxEjectionTime", od.MaxEjectionTime, true)
	if fe != nil {
		return fe
	}
	if fe := ordered(g, "spec.outlierDetection.baseEjectionTime", od.BaseEjectionTime, base,
		"spec.outlierDetection.maxEjectionTime", od.MaxEjectionTime, mx); fe != nil {
		return fe
	}
	if fe := between("spec.outlierDetection.maxEjectionPercent", od.MaxEjectionPercent, 0, 100); fe != nil {
		return fe
	}
	return between("spec.outlierDetection.panicThreshold", od.PanicThreshold, 0, 100)
}

func checkHealthCheck(p *TrafficPolicy, g given) *FieldError {
	hc := &p.HealthCheck
	interval, fe := duration("spec.healthCheck.interval", hc.Interval, true)
	if fe != nil {
		return fe
	}
	timeout, fe := duration("spec.healthCheck.timeout", hc.Timeout, true)
	if fe != nil {
		return fe
	}
	if fe := ordered(g, "spec.healthCheck.timeout", hc.Timeout, timeout, "spec.healthCheck.interval", hc.Interval, interval); fe != nil {
		return fe
	}
	if fe := atLeast("spec.healthCheck.healthyThreshold", float64(hc.HealthyThreshold), 1); fe != nil {
		return fe
	}
	if fe := atLeast("spec.healthCheck.unhealthyThreshold", float64(hc.UnhealthyThreshold), 1); fe != nil {
		return fe
	}
	return between("spec.healthCheck.jitter", hc.Jitter, 0, 100)
}

func checkRateLimit(p *TrafficPolicy, _ given) *FieldError {
	if c := p.RateLimit.Client; c != nil {
		if fe := checkBucket("spec.rateLimit.client", c.RequestsPerSecond, c.Burst); fe != nil {
			return fe
		}
	}
	s := p.RateLimit.Server
	if s == nil {
		return nil
	}
	if s.RequestsPerSecond == 0 && s.PerSource == nil {
		return &FieldError{Field: "spec.rateLimit.server", Msg: "must give requestsPerSecond, perSource or both"}
	}
	if s.RequestsPerSecond != 0 || s.Burst != 0 {
		if fe := checkBucket("spec.rateLimit.server", s.RequestsPerSecond, s.Burst); fe != nil {
			return fe
		}
	}
	if ps := s.PerSource; ps != nil {
		return checkBucket("spec.rateLimit.server.perSource", ps.RequestsPerSecond, ps.Burst)
	}
	return nil
}

// checkBucket checks a token bucket at path.
func checkBucket(path string, rps float64, burst int) *FieldError {
	if rps <= 0 {
		return &FieldError{Field: path + ".requestsPerSecond", Msg: fmt.Sprintf("%s must be more than 0", num(rps))}
	}
	return atLeast(path+".burst", float64(burst), 0)
}

func checkHedging(p *TrafficPolicy, _ given) *FieldError {
	h := p.Hedging
	if h == nil {
		return nil
	}
	switch {
	case h.Delay != "" && h.Percentile != 0:
		return &FieldError{Field: "spec.hedging", Msg: "must give delay or percentile, not both"}
	case h.Delay == "" && h.Percentile == 0:
		return &FieldError{Field: "spec.hedging", Msg: "must give delay or percentile"}
	case h.Delay != "":
		if _, fe := duration("spec.hedging.delay", h.Delay, true); fe != nil {
			return fe
		}
	case !slices.Contains([]int{90, 95, 99}, h.Percentile):
		return &FieldError{Field: "spec.hedging.percentile", Msg: fmt.Sprintf("%d must be 90, 95 or 99", h.Percentile)}
	}
	if h.MaxPercent <= 0 {
		return &FieldError{Field: "spec.hedging.maxPercent", Msg: fmt.Sprintf("%s must be more than 0 (leave hedging out to turn it off)", num(h.MaxPercent))}
	}
	return between("spec.hedging.maxPercent", h.MaxPercent, 0, 100)
}

func checkFallback(p *TrafficPolicy, _ given) *FieldError {
	f := p.Fallback
	if f == nil {
		return nil
	}
	if f.Status < 200 || f.Status > 599 {
		return &FieldError{Field: "spec.fallback.status", Msg: fmt.Sprintf("%d must be a status from 200 to 599", f.Status)}
	}
	for _, k := range sortedKeys(f.Headers) {
		field := fmt.Sprintf("spec.fallback.headers[%q]", k)
		if !httpguts.ValidHeaderFieldName(k) {
			return &FieldError{Field: field, Msg: fmt.Sprintf("%q is not a header name", k)}
		}
		if strings.ContainsAny(f.Headers[k], "\r\n\x00") {
			return &FieldError{Field: field, Msg: "a header value must not hold CR, LF or NUL"}
		}
	}
	if len(f.Body) > MaxFallbackBody {
		return &FieldError{Field: "spec.fallback.body", Msg: fmt.Sprintf("is %d bytes, at most %d", len(f.Body), MaxFallbackBody)}
	}
	return nil
}

// duration parses the duration s at field, refusing a negative one, and
// zero too when positive.
func duration(field, s string, positive bool) (time.Duration, *FieldError) {
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return 0, &FieldError{Field: field, Msg: fmt.Sprintf("%q is not a duration (a number and a unit, as in \"250ms\" or \"15s\")", s)}
	case d < 0:
		return 0, &FieldError{Field: field, Msg: fmt.Sprintf("%q must not be negative", s)}
	case d == 0 && positive:
		return 0, &FieldError{Field: field, Msg: fmt.Sprintf("%q must be more than 0", s)}
	}
	return d, nil
}

func between(field string, v, lo, hi float64) *FieldError {
	if v < lo || v > hi || math.IsNaN(v) {
		return &FieldError{Field: field, Msg: fmt.Sprintf("%s must be between %s and %s", num(v), num(lo), num(hi))}
	}
	return nil
}

func atLeast(field string, v, lo float64) *FieldError {
	if v < lo || math.IsNaN(v) {
		return &FieldError{Field: field, Msg: fmt.Sprintf("%s must be at least %s", num(v), num(lo))}
	}
	return nil
}

func num(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
