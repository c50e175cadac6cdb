package snapshot

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"strconv"
	"time"

	"github.com/weftmesh/weft/internal/config"
)

// Policy is how the mesh sends traffic to one service, every field
// filled: from the service's TrafficPolicy resource, with the mesh's
// defaults for what it leaves out, or DefaultPolicy when it has none.
// Its maps and slices are shared by the snapshots of one compile and
// must not be changed.
type Policy struct {
	// Resource is the TrafficPolicy it came from, "TrafficPolicy/NAME";
	// "" for the defaults.
	Resource string

	LoadBalancer     LoadBalancer
	Timeouts         Timeouts
	Retries          Retries
	CircuitBreaker   CircuitBreaker
	OutlierDetection OutlierDetection
	HealthCheck      HealthCheck
	RateLimit        RateLimits
	Hedging          Hedging
	Fallback         Fallback
}

// LoadBalancer picks an instance for each request.
type LoadBalancer struct {
	Policy      string // one of config.LBPolicies
	HashOn      HashOn // ring-hash only
	WeightLabel string // weighted only: the label holding an instance's weight
	Locality    Locality
}

// HashOn is what ring-hash hashes: one of the three is set.
type HashOn struct {
	Header string
	Cookie string
	Source bool // the calling instance
}

// Locality prefers instances in the caller's zone, read from Label.
type Locality struct {
	Enabled bool
	Label   string
}

// Timeouts bound a request; 0 is none.
type Timeouts struct {
	Request time.Duration // the whole request, every try included
	PerTry  time.Duration // each try (0: only Request bounds it)
}

// Retries says when and how often a failed try is made again.
type Retries struct {
	Attempts        int // every try, the first included; 1: no retries
	On              RetryOn
	Backoff         Backoff
	Budget          RetryBudget
	MaxBufferedBody int64 // bytes of request body kept for a retry
}

// Backoff is the wait before a retry, growing from Base to Max.
type Backoff struct {
	Base, Max time.Duration
}

// RetryBudget caps retries at Percent of the requests in Window, with
// MinPerSecond always allowed.
type RetryBudget struct {
	Percent      float64
	MinPerSecond int
	Window       time.Duration
}

// RetryOn is the set of failures worth a retry. The zero value retries
// on nothing. It is comparable and its lookups do not allocate.
type RetryOn struct {
	ConnectFailure bool // no connection could be made
	Reset          bool // the connection broke before a response
	RefusedStream  bool // HTTP/2 REFUSED_STREAM
	status         [2]uint64
	grpc           uint32
}

// Status reports whether an HTTP status is retried.
func (r RetryOn) Status(code int) bool {
	i := code - 500
	return i >= 0 && i < 100 && r.status[i/64]&(1<<(i%64)) != 0
}

// GRPC reports whether a gRPC status code is retried.
func (r RetryOn) GRPC(code int) bool {
	return code > 0 && code < 32 && r.grpc&(1<<code) != 0
}

// Conditions lists the set as retries.on spells it: connect-failure,
// reset, refused-stream, then statuses, then gRPC code names.
func (r RetryOn) Conditions() []string {
	var out []string
	for _, c := range []struct {
		on   bool
		name string
	}{{r.ConnectFailure, config.RetryConnectFailure}, {r.Reset, config.RetryReset}, {r.RefusedStream, config.RetryRefusedStream}} {
		if c.on {
			out = append(out, c.name)
		}
	}
	for s := 500; s < 600; s++ {
		if r.Status(s) {
			out = append(out, strconv.Itoa(s))
		}
	}
	for code := 1; code < 32; code++ {
		if r.GRPC(code) {
			out = append(out, config.GRPCCodeName(code))
		}
	}
	return out
}

// add puts one condition of retries.on in the set.
func (r *RetryOn) add(cond string) error {
	switch cond {
	case config.RetryConnectFailure:
		r.ConnectFailure = true
	case config.RetryReset:
		r.Reset = true
	case config.RetryRefusedStream:
		r.RefusedStream = true
	case config.Retry5xx:
		for s := 500; s < 600; s++ {
			r.addStatus(s)
		}
	case config.RetryGatewayError:
		r.addStatus(502)
		r.addStatus(503)
		r.addStatus(504)
	default:
		if s, ok := config.RetryStatus(cond); ok {
			r.addStatus(s)
		} else if c, ok := config.GRPCCode(cond); ok {
			r.grpc |= 1 << c
		} else {
			return fmt.Errorf("unknown retry condition %q", cond)
		}
	}
	return nil
}

// WithStatuses is r retrying the given 5xx statuses in place of its own
// (a route rule's retry.codes); its other conditions stay.
func (r RetryOn) WithStatuses(codes []int) RetryOn {
	r.status = [2]uint64{}
	for _, c := range codes {
		if c >= 500 && c < 600 {
			r.addStatus(c)
		}
	}
	return r
}

func (r *RetryOn) addStatus(s int) { i := s - 500; r.status[i/64] |= 1 << (i % 64) }

// CircuitBreaker limits what one endpoint is sent (0: unlimited) and
// opens, sending it nothing for OpenFor, when FailureRatio of at least
// MinRequests in Window failed (FailureRatio 0: never).
type CircuitBreaker struct {
	MaxConnections     int
	MaxPendingRequests int
	MaxRequests        int
	FailureRatio       float64
	MinRequests        int
	Window             time.Duration
	OpenFor            time.Duration
	HalfOpenRequests   int
}

// OutlierDetection ejects endpoints that fail (a count of 0 is off).
type OutlierDetection struct {
	Consecutive5xx             int
	ConsecutiveGatewayErrors   int
	ConsecutiveConnectFailures int
	Interval                   time.Duration
	BaseEjectionTime           time.Duration
	MaxEjectionTime            time.Duration
	MaxEjectionPercent         float64
	SuccessRateMinHosts        int
	SuccessRateRequestVolume   int
	SuccessRateStdevFactor     float64 // 0: success-rate ejection off
	PanicThreshold             float64 // percent healthy below which every endpoint is used; 0: off
}

// HealthCheck is how a sidecar checks the endpoints it sends to.
type HealthCheck struct {
	Enabled            bool
	Interval           time.Duration
	Timeout            time.Duration
	HealthyThreshold   int
	UnhealthyThreshold int
	Jitter             float64 // percent of Interval
}

// RateLimits are the token buckets of a service.
type RateLimits struct {
	Client          RateLimit // outbound, in each consumer's sidecar
	Server          RateLimit // inbound, in the service's sidecars, all sources together
	ServerPerSource RateLimit // inbound, for each calling service
}

// RateLimit is a token bucket; off unless Enabled.
type RateLimit struct {
	Enabled           bool
	RequestsPerSecond float64
	Burst             int
}

// Hedging sends a second try when the first has not answered after Delay,
// or after the Percentile of recent latency when Delay is 0.
type Hedging struct {
	Enabled    bool
	Delay      time.Duration
	Percentile int
	MaxPercent float64 // hedges as a share of requests
}

// Fallback is the answer given instead of the mesh's own error when no
// instance is healthy or the circuit is open.
type Fallback struct {
	Enabled bool
	Status  int
	Headers map[string]string
	Body    string
}

// DefaultPolicy is the policy of a service with no TrafficPolicy.
func DefaultPolicy() Policy {
	p, err := NewPolicy(config.DefaultTrafficPolicy())
	if err != nil {
		panic("snapshot: the default traffic policy does not compile: " + err.Error()) // a bug, caught by the tests
	}
	return p
}

// NewPolicy turns a decoded TrafficPolicy spec (config.DecodeTrafficPolicy:
// every field filled) into typed values. An error names the field that
// does not convert; a validated spec has none.
func NewPolicy(s config.TrafficPolicy) (Policy, error) {
	c := converter{}
	p := Policy{
		LoadBalancer: LoadBalancer{Policy: s.LoadBalancer.Policy, WeightLabel: s.LoadBalancer.WeightLabel,
			Locality: Locality{Enabled: s.LoadBalancer.Locality.Enabled, Label: s.LoadBalancer.Locality.Label}},
		Timeouts: Timeouts{Request: c.dur("timeouts.request", s.Timeouts.Request),
			PerTry: c.dur("timeouts.perTry", s.Timeouts.PerTry)},
		Retries: Retries{Attempts: s.Retries.Attempts,
			Backoff: Backoff{Base: c.dur("retries.backoff.base", s.Retries.Backoff.Base),
				Max: c.dur("retries.backoff.max", s.Retries.Backoff.Max)},
			Budget: RetryBudget{Percent: s.Retries.Budget.Percent, MinPerSecond: s.Retries.Budget.MinPerSecond,
				Window: c.dur("retries.budget.window", s.Retries.Budget.Window)},
			MaxBufferedBody: s.Retries.MaxBufferedBody},
		CircuitBreaker: CircuitBreaker{MaxConnections: s.CircuitBreaker.MaxConnections,
			MaxPendingRequests: s.CircuitBreaker.MaxPendingRequests, MaxRequests: s.CircuitBreaker.MaxRequests,
			FailureRatio: s.CircuitBreaker.FailureRatio, MinRequests: s.CircuitBreaker.MinRequests,
			Window:           c.dur("circuitBreaker.window", s.CircuitBreaker.Window),
			OpenFor:          c.dur("circuitBreaker.openFor", s.CircuitBreaker.OpenFor),
			HalfOpenRequests: s.CircuitBreaker.HalfOpenRequests},
		OutlierDetection: OutlierDetection{Consecutive5xx: s.OutlierDetection.Consecutive5xx,
			ConsecutiveGatewayErrors:   s.OutlierDetection.ConsecutiveGatewayErrors,
			ConsecutiveConnectFailures: s.OutlierDetection.ConsecutiveConnectFailures,
			Interval:                   c.dur("outlierDetection.interval", s.OutlierDetection.Interval),
			BaseEjectionTime:           c.dur("outlierDetection.baseEjectionTime", s.OutlierDetection.BaseEjectionTime),
			MaxEjectionTime:            c.dur("outlierDetection.maxEjectionTime", s.OutlierDetection.MaxEjectionTime),
			MaxEjectionPercent:         s.OutlierDetection.MaxEjectionPercent,
			SuccessRateMinHosts:        s.OutlierDetection.SuccessRateMinHosts,
			SuccessRateRequestVolume:   s.OutlierDetection.SuccessRateRequestVolume,
			SuccessRateStdevFactor:     s.OutlierDetection.SuccessRateStdevFactor,
			PanicThreshold:             s.OutlierDetection.PanicThreshold},
		HealthCheck: HealthCheck{Enabled: s.HealthCheck.Enabled,
			Interval:         c.dur("healthCheck.interval", s.HealthCheck.Interval),
			Timeout:          c.dur("healthCheck.timeout", s.HealthCheck.Timeout),
			HealthyThreshold: s.HealthCheck.HealthyThreshold, UnhealthyThreshold: s.HealthCheck.UnhealthyThreshold,
			Jitter: s.HealthCheck.Jitter},
	}
	if h := s.LoadBalancer.HashOn; h != nil {
		p.LoadBalancer.HashOn = HashOn{Header: h.Header, Cookie: h.Cookie, Source: h.Source}
	}
	for _, cond := range s.Retries.On {
		if err := p.Retries.On.add(cond); err != nil {
			c.fail("retries.on", err)
		}
	}
	if rl := s.RateLimit.Client; rl != nil {
		p.RateLimit.Client = bucket(rl.RequestsPerSecond, rl.Burst)
	}
	if rl := s.RateLimit.Server; rl != nil {
		if rl.RequestsPerSecond > 0 {
			p.RateLimit.Server = bucket(rl.RequestsPerSecond, rl.Burst)
		}
		if ps := rl.PerSource; ps != nil {
			p.RateLimit.ServerPerSource = bucket(ps.RequestsPerSecond, ps.Burst)
		}
	}
	if h := s.Hedging; h != nil {
		p.Hedging = Hedging{Enabled: true, Percentile: h.Percentile, MaxPercent: h.MaxPercent}
		if h.Delay != "" {
			p.Hedging.Delay = c.dur("hedging.delay", h.Delay)
		}
	}
	if f := s.Fallback; f != nil {
		p.Fallback = Fallback{Enabled: true, Status: f.Status, Headers: maps.Clone(f.Headers), Body: f.Body}
	}
	if c.err != nil {
		return Policy{}, c.err
	}
	return p, nil
}

// bucket is an enabled token bucket; a burst of 0 is the rate rounded up.
func bucket(rps float64, burst int) RateLimit {
	if burst <= 0 {
		burst = max(1, int(math.Ceil(rps)))
	}
	return RateLimit{Enabled: true, RequestsPerSecond: rps, Burst: burst}
}

// converter parses fields, keeping the first error.
type converter struct{ err error }

func (c *converter) fail(field string, err error) {
	if c.err == nil {
		c.err = fmt.Errorf("spec.%s: %w", field, err)
	}
}

func (c *converter) dur(field, s string) time.Duration {
	d, err := time.ParseDuration(s)
	if err == nil && d < 0 {
		err = errors.New("negative")
	}
	if err != nil {
		c.fail(field, err)
	}
	return d
}

// policyKind is the kind of TrafficPolicy resources, as keyed in etcd.
const policyKind = "TrafficPolicy"

// policyRecord is a decoded TrafficPolicy: the service it is for and its
// typed values.
type policyRecord struct {
	service string
	policy  Policy
}

// decodePolicy reads a stored TrafficPolicy: validated again, since the
// store may hold one written by an older or newer control plane, and
// compiled to typed values.
func decodePolicy(key string, raw []byte) (policyRecord, error) {
	r, err := config.Decode(raw, 0)
	if err != nil {
		return policyRecord{}, fmt.Errorf("malformed resource: %w", err)
	}
	if r.Kind != policyKind || key != config.Key(policyKind, r.Metadata.Name) {
		return policyRecord{}, fmt.Errorf("resource %s is not the TrafficPolicy of its key", r.Ref())
	}
	if err := r.Validate(); err != nil {
		return policyRecord{}, fmt.Errorf("invalid TrafficPolicy: %w", err)
	}
	spec, err := config.DecodeTrafficPolicy(&r)
	if err != nil {
		return policyRecord{}, err
	}
	p, err := NewPolicy(spec)
	if err != nil {
		return policyRecord{}, fmt.Errorf("compile %s: %w", r.Ref(), err)
	}
	p.Resource = r.Ref()
	return policyRecord{service: r.Metadata.Name, policy: p}, nil
}
