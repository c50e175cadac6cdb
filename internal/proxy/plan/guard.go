package plan

import (
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"sync"
	"time"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/lb"
	"github.com/weftmesh/weft/internal/resilience"
	"github.com/weftmesh/weft/internal/snapshot"
)

// Reasons of the answers the resilience policy makes.
const (
	ReasonCircuitOpen = "circuit-open"
	ReasonRateLimited = "rate-limited"
)

// guard is a service's traffic policy made into the state the plan
// consults on every request: the balancer, the retry budget, the breaker,
// the client-side rate limit and the fallback answer. It carries over
// table updates while the service's policy stays the same, so a push that
// changes only endpoints keeps budgets, breaker state and balancer state.
type guard struct {
	policy   snapshot.Policy
	balancer lb.Balancer
	// subsets are the balancers of the route backends that are subsets
	// of the service (by ServiceSubset name).
	subsetMu sync.Mutex
	subsets  map[string]lb.Balancer
	budget   *resilience.RetryBudget
	backoff  resilience.Backoff
	breaker  *resilience.Breaker // nil: off
	limiter  *resilience.Limiter // nil: off
	// perSource: a bucket for each calling service (SourceHeader), on
	// the inbound (rateLimit.server.perSource); nil: off.
	perSource *resilience.KeyedLimiter
	fallback  *Fallback // nil: off
	hedge     *hedger   // nil: off
}

// Fallback is the answer a service's policy gives instead of the mesh's
// own error when it has no healthy instance or its circuit is open.
type Fallback struct {
	Status  int
	Headers http.Header
	Body    []byte
}

// balancerName maps a TrafficPolicy's loadBalancer.policy to package lb.
var balancerName = map[string]string{
	config.LBPeakEWMA:     lb.NameP2C,
	config.LBLeastRequest: lb.NameLeastRequest,
	config.LBRoundRobin:   lb.NameRoundRobin,
	config.LBRandom:       lb.NameRandom,
	config.LBWeighted:     lb.NameWeighted,
	config.LBRingHash:     lb.NameRingHash,
}

// newGuard builds the state of policy p for a caller in zone.
func newGuard(p snapshot.Policy, zone string) (*guard, error) {
	g := &guard{policy: p}
	bal, err := newBalancer(p.LoadBalancer)
	if err != nil {
		return nil, fmt.Errorf("loadBalancer: %w", err)
	}
	if l := p.LoadBalancer.Locality; l.Enabled && zone != "" {
		local, err := newBalancer(p.LoadBalancer)
		if err != nil {
			return nil, fmt.Errorf("loadBalancer: %w", err)
		}
		loc := lb.NewLocality(zone, local, bal)
		loc.Label = l.Label
		bal = loc
	}
	g.balancer = bal
	b := p.Retries.Budget
	if g.budget, err = resilience.NewRetryBudget(resilience.RetryBudgetOptions{Percent: b.Percent, MinPerSecond: float64(b.MinPerSecond), Window: b.Window}); err != nil {
		return nil, fmt.Errorf("retries.budget: %w", err)
	}
	g.backoff = resilience.Backoff{Base: p.Retries.Backoff.Base, Max: p.Retries.Backoff.Max}
	if cb := p.CircuitBreaker; cb.FailureRatio > 0 {
		o := resilience.BreakerOptions{FailureRatio: cb.FailureRatio, MinRequests: cb.MinRequests, Window: cb.Window,
			OpenFor: cb.OpenFor, HalfOpenRequests: cb.HalfOpenRequests}
		if g.breaker, err = resilience.NewBreaker(o, time.Now().UnixNano()); err != nil {
			return nil, fmt.Errorf("circuitBreaker: %w", err)
		}
	}
	if rl := p.RateLimit.Client; rl.Enabled {
		if g.limiter, err = resilience.NewLimiter(rl.RequestsPerSecond, rl.Burst); err != nil {
			return nil, fmt.Errorf("rateLimit.client: %w", err)
		}
	}
	if h := p.Hedging; h.Enabled {
		if g.hedge, err = newHedger(h); err != nil {
			return nil, fmt.Errorf("hedging: %w", err)
		}
	}
	if f := p.Fallback; f.Enabled {
		fb := &Fallback{Status: f.Status, Headers: http.Header{}, Body: []byte(f.Body)}
		for k, v := range f.Headers {
			fb.Headers.Set(k, v)
		}
		g.fallback = fb
	}
	return g, nil
}

// forMirror is g for a mirror's copies: the same policy, balancer and
// budget, and no breaker, rate limit, hedging or fallback, whose state
// real callers share (nil-safe).
func (g *guard) forMirror() *guard {
	if g == nil {
		return nil
	}
	return &guard{policy: g.policy, balancer: g.balancer, budget: g.budget, backoff: g.backoff}
}

// subsetBalancer is the balancer of the service's subset name, made on
// first use with the policy's load balancer (without locality).
func (g *guard) subsetBalancer(name string) lb.Balancer {
	g.subsetMu.Lock()
	defer g.subsetMu.Unlock()
	if b, ok := g.subsets[name]; ok {
		return b
	}
	b, err := newBalancer(g.policy.LoadBalancer)
	if err != nil {
		b = &lb.RoundRobin{} // (newGuard built the same policy's balancer already)
	}
	if g.subsets == nil {
		g.subsets = map[string]lb.Balancer{}
	}
	g.subsets[name] = b
	return b
}

func newBalancer(p snapshot.LoadBalancer) (lb.Balancer, error) {
	name, ok := balancerName[p.Policy]
	if !ok {
		return nil, fmt.Errorf("%w %q", lb.ErrUnknown, p.Policy)
	}
	o := lb.Options{WeightLabel: p.WeightLabel}
	if name == lb.NameRingHash {
		o.HashHeader, o.HashCookie, o.HashSource = p.HashOn.Header, p.HashOn.Cookie, p.HashOn.Source
	}
	return lb.New(name, o)
}

// same reports whether g was built from policy p (maps compared by
// content: a push that changes nothing rebuilds nothing).
func (g *guard) same(p *snapshot.Policy) bool { return reflect.DeepEqual(&g.policy, p) }

// rateLimited is the answer to a request over the client-side limit.
func rateLimited(service string, retryAfter time.Duration) *MeshError {
	secs := max(int((retryAfter+time.Second-1)/time.Second), 1)
	return &MeshError{Status: http.StatusTooManyRequests, Reason: ReasonRateLimited, Service: service,
		RetryAfter: strconv.Itoa(secs),
		Message:    fmt.Sprintf("over the rate limit for service %q; retry after %ds", service, secs)}
}

// circuitOpen is the answer to a request while the breaker is open.
func circuitOpen(service string) *MeshError {
	return &MeshError{Status: http.StatusServiceUnavailable, Reason: ReasonCircuitOpen, Service: service,
		Message: fmt.Sprintf("the circuit of service %q is open: too many of its recent requests failed", service)}
}

// ServerLimited is c, the cluster of a sidecar's own app, under its
// service's server-side rate limits (rateLimit.server): rl for all
// callers together and perSource for each calling service (SourceHeader;
// requests that name none share one bucket). It is a copy sharing c's
// endpoint whose buckets answer 429 rate-limited past the limits; c's
// buckets are kept while the limits stay the same; both off: no limit.
func (c *Cluster) ServerLimited(rl, perSource snapshot.RateLimit) (*Cluster, error) {
	if c.guard != nil && c.guard.policy.RateLimit.Server == rl && c.guard.policy.RateLimit.ServerPerSource == perSource ||
		c.guard == nil && !rl.Enabled && !perSource.Enabled {
		return c, nil
	}
	n := *c
	n.guard = nil
	if !rl.Enabled && !perSource.Enabled {
		return &n, nil
	}
	g := &guard{}
	g.policy.RateLimit.Server, g.policy.RateLimit.ServerPerSource = rl, perSource
	if rl.Enabled {
		l, err := resilience.NewLimiter(rl.RequestsPerSecond, rl.Burst)
		if err != nil {
			return nil, fmt.Errorf("rateLimit.server: %w", err)
		}
		g.limiter = l
	}
	if perSource.Enabled {
		o := resilience.DefaultKeyedLimiterOptions()
		o.Rate, o.Burst = perSource.RequestsPerSecond, perSource.Burst
		l, err := resilience.NewKeyedLimiter(o)
		if err != nil {
			return nil, fmt.Errorf("rateLimit.server.perSource: %w", err)
		}
		g.perSource = l
	}
	n.guard = g
	return &n, nil
}

// retryAllowed asks the retry budget for one retry (nil guard or budget:
// always).
func (g *guard) retryAllowed(m *ServiceMetrics) bool {
	if g == nil || g.budget == nil || g.budget.TryRetry(time.Now().UnixNano()) {
		return true
	}
	m.budgetExhausted()
	return false
}

// BreakerState is the state of the service's circuit breaker at now, for
// metrics and /config; ok false when the service has none.
func (c *Cluster) BreakerState(now time.Time) (state string, ok bool) {
	if c.guard == nil || c.guard.breaker == nil {
		return "", false
	}
	s, _ := c.guard.breaker.State(now.UnixNano())
	return s.String(), true
}
