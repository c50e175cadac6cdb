package endpoint

import (
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Passive outlier detection, Envoy's model. The endpoints of one service
// form a Group, which holds the options and knows its members; an
// endpoint knows its group (SetMembers sets the pointer).
//
//	Done ──> consecutive counters (one atomic word) ──threshold──> Group.eject
//	Group.Tick(now), once per Interval ──> success rate of each member ──> Group.eject
//	Group.eject: at most MaxEjectionPercent of the members (at least one)
//	             out at once; each for BaseEjectionTime × its ejection
//	             count (decaying one step per clean Interval), at most
//	             MaxEjectionTime
//
// An outlier ejection is not the connect backoff (ConnectFailed): that
// one follows every connect failure, lasts 2 s doubling to 30 s, knows no
// group and no percentage, and ranks the endpoint last for balancers even
// in panic mode; an outlier ejection is lifted by panic mode (package lb).
// An endpoint in no group has only the connect backoff.

// Reason is why an endpoint was ejected as an outlier.
type Reason uint8

const (
	// ReasonNone: never ejected.
	ReasonNone Reason = iota
	// ReasonConsecutive5xx: Consecutive5xx server errors in a row.
	ReasonConsecutive5xx
	// ReasonGatewayErrors: ConsecutiveGatewayErrors gateway errors in a row.
	ReasonGatewayErrors
	// ReasonConnectFailure: ConsecutiveConnectFailures connect failures in a row.
	ReasonConnectFailure
	// ReasonSuccessRate: a success rate far below its group's.
	ReasonSuccessRate
	// NumReasons is the number of reasons, ReasonNone included: the
	// length of the arrays counting ejections by reason.
	NumReasons
)

var reasonNames = [NumReasons]string{"none", "consecutive-5xx", "gateway-errors", "connect-failure", "success-rate"}

func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Defaults of OutlierOptions (Envoy's, but for PanicThreshold, which is
// Envoy's healthy panic threshold).
const (
	DefaultConsecutive5xx             = 5
	DefaultConsecutiveGatewayErrors   = 5
	DefaultConsecutiveConnectFailures = 5
	DefaultInterval                   = 10 * time.Second
	DefaultBaseEjectionTime           = 30 * time.Second
	DefaultMaxEjectionTime            = 300 * time.Second
	DefaultMaxEjectionPercent         = 10
	DefaultSuccessRateMinHosts        = 5
	DefaultSuccessRateRequestVolume   = 100
	DefaultSuccessRateStdevFactor     = 1.9
	DefaultPanicThreshold             = 50
)

// MaxConsecutive bounds the consecutive thresholds (the counters saturate
// there).
const MaxConsecutive = 1<<fieldBits - 1

// OutlierOptions tune a Group's outlier detection. The zero value turns
// every detector off; DefaultOutlierOptions gives the documented
// defaults. A TrafficPolicy's spec.outlierDetection maps onto it field by
// field (the names in Validate's errors).
type OutlierOptions struct {
	// Consecutive5xx ejects after this many server errors in a row (any
	// HTTP 5xx; gRPC UNAVAILABLE, RESOURCE_EXHAUSTED, INTERNAL; and the
	// mesh's own connect failures, resets and timeouts, as Envoy counts
	// them). 0: off. Default 5.
	Consecutive5xx int
	// ConsecutiveGatewayErrors ejects after this many gateway errors in a
	// row (HTTP 502, 503, 504; gRPC UNAVAILABLE; connect failures, resets
	// and timeouts). 0: off. Default 5.
	ConsecutiveGatewayErrors int
	// ConsecutiveConnectFailures ejects after this many connect failures
	// in a row. 0: off. Default 5.
	ConsecutiveConnectFailures int
	// Interval is the success-rate period (Tick's) and the time after
	// which the ejection multiplier goes down one step. Default 10 s.
	Interval time.Duration
	// BaseEjectionTime is the first ejection's length; the n-th in a row
	// lasts n times as long. Default 30 s.
	BaseEjectionTime time.Duration
	// MaxEjectionTime caps an ejection. Default 300 s.
	MaxEjectionTime time.Duration
	// MaxEjectionPercent is the share of the group that may be ejected
	// at once, in percent; one endpoint may always be. Default 10.
	MaxEjectionPercent int
	// SuccessRateMinHosts is how many members must have
	// SuccessRateRequestVolume attempts in an Interval for the success
	// rate to be judged. 0: the success-rate detector is off. Default 5.
	SuccessRateMinHosts int
	// SuccessRateRequestVolume is the attempts a member needs in an
	// Interval to count in the success rate. Default 100.
	SuccessRateRequestVolume int
	// SuccessRateStdevFactor: a member whose success rate is below
	// mean − factor × stdev of the counted members' is ejected. Default 1.9.
	SuccessRateStdevFactor float64
	// PanicThreshold: when fewer than this percent of a set's endpoints
	// are eligible (ready, not ejected, not probe-down), balancers pick
	// among all of them as if none were ejected (package lb). 0: never.
	// Default 50.
	PanicThreshold int
}

// DefaultOutlierOptions returns the documented defaults.
func DefaultOutlierOptions() OutlierOptions {
	return OutlierOptions{
		Consecutive5xx:             DefaultConsecutive5xx,
		ConsecutiveGatewayErrors:   DefaultConsecutiveGatewayErrors,
		ConsecutiveConnectFailures: DefaultConsecutiveConnectFailures,
		Interval:                   DefaultInterval,
		BaseEjectionTime:           DefaultBaseEjectionTime,
		MaxEjectionTime:            DefaultMaxEjectionTime,
		MaxEjectionPercent:         DefaultMaxEjectionPercent,
		SuccessRateMinHosts:        DefaultSuccessRateMinHosts,
		SuccessRateRequestVolume:   DefaultSuccessRateRequestVolume,
		SuccessRateStdevFactor:     DefaultSuccessRateStdevFactor,
		PanicThreshold:             DefaultPanicThreshold,
	}
}

// Validate checks o, naming the first field that is wrong.
func (o OutlierOptions) Validate() error {
	const p = "outlierDetection."
	for _, c := range []struct {
		name string
		v    int
	}{{"consecutive5xx", o.Consecutive5xx}, {"consecutiveGatewayErrors", o.ConsecutiveGatewayErrors}, {"consecutiveConnectFailures", o.ConsecutiveConnectFailures}} {
		if c.v < 0 || c.v > MaxConsecutive {
			return fmt.Errorf("%s%s: %d must be between 0 (off) and %d", p, c.name, c.v, MaxConsecutive)
		}
	}
	switch {
	case o.Interval <= 0:
		return fmt.Errorf("%sinterval: %v must be positive", p, o.Interval)
	case o.BaseEjectionTime <= 0:
		return fmt.Errorf("%sbaseEjectionTime: %v must be positive", p, o.BaseEjectionTime)
	case o.MaxEjectionTime < o.BaseEjectionTime:
		return fmt.Errorf("%smaxEjectionTime: %v must be at least baseEjectionTime (%v)", p, o.MaxEjectionTime, o.BaseEjectionTime)
	case o.MaxEjectionPercent < 0 || o.MaxEjectionPercent > 100:
		return fmt.Errorf("%smaxEjectionPercent: %d must be between 0 and 100", p, o.MaxEjectionPercent)
	case o.SuccessRateMinHosts < 0:
		return fmt.Errorf("%ssuccessRateMinHosts: %d must not be negative (0: off)", p, o.SuccessRateMinHosts)
	case o.SuccessRateRequestVolume < 0:
		return fmt.Errorf("%ssuccessRateRequestVolume: %d must not be negative", p, o.SuccessRateRequestVolume)
	case !(o.SuccessRateStdevFactor >= 0) || math.IsInf(o.SuccessRateStdevFactor, 0):
		return fmt.Errorf("%ssuccessRateStdevFactor: %v must be a finite number, 0 or more", p, o.SuccessRateStdevFactor)
	case o.PanicThreshold < 0 || o.PanicThreshold > 100:
		return fmt.Errorf("%spanicThreshold: %d must be between 0 (never) and 100", p, o.PanicThreshold)
	}
	return nil
}

// Group is the endpoints of one service as outlier detection sees them:
// its options, its members, and its counts of ejections. The routing
// table (proxy/plan.Table) makes one per service (NewGroup), gives it the
// service's endpoints on every update (SetMembers), and the sidecar has
// it ticked every Interval. It runs no goroutine. Its methods are safe for concurrent use.
type Group struct {
	opts atomic.Pointer[OutlierOptions]

	mu      sync.Mutex
	members []*Endpoint
	marks   map[*Endpoint]mark // counters at the last Tick
	rates   []rated            // Tick's scratch space

	ejections [NumReasons]atomic.Uint64
	skipped   atomic.Uint64
}

// mark is a member's counters at the last Tick.
type mark struct{ attempts, errors uint64 }

// rated is a member's success rate over the last Interval.
type rated struct {
	e    *Endpoint
	rate float64
}

// NewGroup returns a group with options o and no members.
func NewGroup(o OutlierOptions) (*Group, error) {
	g := &Group{marks: map[*Endpoint]mark{}}
	if err := g.SetOptions(o); err != nil {
		return nil, err
	}
	return g, nil
}

// SetOptions validates o and swaps it in; members keep their state.
func (g *Group) SetOptions(o OutlierOptions) error {
	if err := o.Validate(); err != nil {
		return err
	}
	g.opts.Store(&o)
	return nil
}

// Options returns the group's options.
func (g *Group) Options() OutlierOptions { return *g.opts.Load() }

// PanicThreshold is the group's panic threshold, in percent.
func (g *Group) PanicThreshold() int { return g.opts.Load().PanicThreshold }

// SetMembers makes eps the group's members: each learns its group, and
// an endpoint no longer listed leaves it (unless it joined another). An
// endpoint's success rate is counted from the Tick after it joins.
func (g *Group) SetMembers(eps []*Endpoint) {
	g.mu.Lock()
	defer g.mu.Unlock()
	keep := make(map[*Endpoint]bool, len(eps))
	for _, e := range eps {
		keep[e] = true
	}
	for _, e := range g.members {
		if !keep[e] {
			e.group.CompareAndSwap(g, nil)
			delete(g.marks, e)
		}
	}
	for _, e := range eps {
		e.group.Store(g)
		if _, ok := g.marks[e]; !ok {
			g.marks[e] = mark{e.attempts.Load(), e.errors.Load()}
		}
	}
	g.members = slices.Clone(eps)
}

// Members returns a copy of the group's members.
func (g *Group) Members() []*Endpoint {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.members)
}

// Tick ends a success-rate Interval at now: every member with at least
// SuccessRateRequestVolume attempts since the last Tick counts, and when
// at least SuccessRateMinHosts do, those whose success rate is below
// mean − SuccessRateStdevFactor × stdev are ejected, lowest first, as
// MaxEjectionPercent allows. Call it every Interval (the sidecar ticks
// its table); the first Tick only starts the count.
func (g *Group) Tick(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	o := g.opts.Load()
	g.rates = g.rates[:0]
	for _, e := range g.members {
		a, er := e.attempts.Load(), e.errors.Load()
		m := g.marks[e]
		g.marks[e] = mark{a, er}
		da, de := a-m.attempts, min(er-m.errors, a-m.attempts)
		if o.SuccessRateMinHosts == 0 || da == 0 || da < uint64(o.SuccessRateRequestVolume) {
			continue
		}
		g.rates = append(g.rates, rated{e, 1 - float64(de)/float64(da)})
	}
	if o.SuccessRateMinHosts == 0 || len(g.rates) < o.SuccessRateMinHosts {
		return
	}
	var sum, sq float64
	for _, r := range g.rates {
		sum += r.rate
	}
	mean := sum / float64(len(g.rates))
	for _, r := range g.rates {
		sq += (r.rate - mean) * (r.rate - mean)
	}
	limit := mean - o.SuccessRateStdevFactor*math.Sqrt(sq/float64(len(g.rates)))
	slices.SortFunc(g.rates, func(a, b rated) int {
		switch {
		case a.rate < b.rate:
			return -1
		case a.rate > b.rate:
			return 1
		}
		return 0
	})
	t := now.UnixNano()
	for _, r := range g.rates {
		if r.rate >= limit {
			break
		}
		g.ejectLocked(r.e, ReasonSuccessRate, t)
	}
	clear(g.rates) // hold no endpoint between ticks
}

// GroupStats is a copy of a group's counters, for metrics.
type GroupStats struct {
	Members int
	// Ejected is how many members are ejected as outliers now.
	Ejected int
	// Ejections counts ejections by reason (index ReasonNone unused).
	Ejections [NumReasons]uint64
	// Skipped counts ejections MaxEjectionPercent did not allow.
	Skipped uint64
}

// Stats reads the group's counters at now.
func (g *Group) Stats(now time.Time) GroupStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := GroupStats{Members: len(g.members), Ejected: g.ejectedLocked(now.UnixNano()), Skipped: g.skipped.Load()}
	for i := range s.Ejections {
		s.Ejections[i] = g.ejections[i].Load()
	}
	return s
}

// ejectedLocked counts the members ejected at now.
func (g *Group) ejectedLocked(now int64) int {
	n := 0
	for _, m := range g.members {
		if m.OutlierEjected(now) {
			n++
		}
	}
	return n
}

// eject ejects e (a member) for reason at now, if MaxEjectionPercent
// allows; it reports whether it did.
func (g *Group) eject(e *Endpoint, reason Reason, now int64) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.ejectLocked(e, reason, now)
}

func (g *Group) ejectLocked(e *Endpoint, reason Reason, now int64) bool {
	if e.group.Load() != g || e.OutlierEjected(now) {
		return false
	}
	o := g.opts.Load()
	if g.ejectedLocked(now) >= max(1, len(g.members)*o.MaxEjectionPercent/100) {
		g.skipped.Add(1)
		return false
	}
	// The multiplier goes down one step per Interval since the last
	// ejection ended, then up one for this one; it stops where the
	// ejection reaches MaxEjectionTime.
	mult := int64(e.multiplier.Load())
	if end := e.outlierUntil.Load(); end > 0 && now > end {
		mult = max(0, mult-(now-end)/int64(o.Interval))
	}
	top := int64((o.MaxEjectionTime + o.BaseEjectionTime - 1) / o.BaseEjectionTime)
	mult = min(mult+1, top)
	d := min(time.Duration(mult)*o.BaseEjectionTime, o.MaxEjectionTime)
	e.multiplier.Store(int32(mult))
	e.outlierUntil.Store(now + int64(d))
	e.reason.Store(uint32(reason))
	e.ejections[reason].Add(1)
	g.ejections[reason].Add(1)
	return true
}

// The consecutive counters of an endpoint share one word, three fields
// of fieldBits bits that saturate at MaxConsecutive.
const (
	fieldBits = 21
	fieldMask = 1<<fieldBits - 1

	f5xx     = 0
	fGateway = 1
	fConnect = 2

	b5xx     = 1 << f5xx
	bGateway = 1 << fGateway
	bConnect = 1 << fConnect
	bAll     = b5xx | bGateway | bConnect
)

func field(w uint64, f int) int { return int(w >> (f * fieldBits) & fieldMask) }

// tally zeroes the consecutive counters in clr, then adds one to those
// in inc; it returns the new word.
func (e *Endpoint) tally(inc, clr uint8) uint64 {
	for {
		old := e.consec.Load()
		next := old
		for f := range 3 {
			sh := f * fieldBits
			if clr&(1<<f) != 0 {
				next &^= fieldMask << sh
			}
			if inc&(1<<f) != 0 && next>>sh&fieldMask < fieldMask {
				next += 1 << sh
			}
		}
		if next == old || e.consec.CompareAndSwap(old, next) {
			return next
		}
	}
}

// answered counts an answer with status s that ended at end.
func (e *Endpoint) answered(end int64, s Status) {
	if s.ServerError() {
		inc := uint8(b5xx)
		if s.GatewayError() {
			inc |= bGateway
		}
		e.outlierFailure(end, inc, bConnect)
		return
	}
	if e.consec.Load() != 0 { // a healthy endpoint's word stays zero: no write
		e.tally(0, bAll)
	}
}

// outlierFailure counts a failure for outlier detection: the consecutive
// counters in inc go up (those in clr go back to zero), and one that
// reaches its threshold asks the group to eject e.
func (e *Endpoint) outlierFailure(end int64, inc, clr uint8) {
	e.errors.Add(1)
	w := e.tally(inc, clr)
	g := e.group.Load()
	if g == nil {
		return
	}
	o := g.opts.Load()
	reason := ReasonNone
	switch {
	case o.ConsecutiveConnectFailures > 0 && field(w, fConnect) >= o.ConsecutiveConnectFailures:
		reason = ReasonConnectFailure
	case o.ConsecutiveGatewayErrors > 0 && field(w, fGateway) >= o.ConsecutiveGatewayErrors:
		reason = ReasonGatewayErrors
	case o.Consecutive5xx > 0 && field(w, f5xx) >= o.Consecutive5xx:
		reason = ReasonConsecutive5xx
	default:
		return
	}
	e.tally(0, bAll) // each detector counts afresh after an ejection, made or refused
	if !e.OutlierEjected(end) {
		g.eject(e, reason, end)
	}
}

// Group is the group e is a member of (nil: none).
func (e *Endpoint) Group() *Group { return e.group.Load() }

// OutlierEjected reports whether e is ejected as an outlier at now (unix
// nanoseconds).
func (e *Endpoint) OutlierEjected(now int64) bool { return e.outlierUntil.Load() > now }
