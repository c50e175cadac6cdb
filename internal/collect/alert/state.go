package alert

import (
	"strconv"
	"time"

	"github.com/weftmesh/weft/internal/collect"
	"github.com/weftmesh/weft/internal/config"
)

// State is where a rule is.
type State string

// The states of a rule.
const (
	Inactive State = "inactive" // the condition does not hold (or there is no data)
	Pending  State = "pending"  // it holds, not yet for the rule's `for`
	Firing   State = "firing"   // it has held for `for`
	Resolved State = "resolved" // it fired, and no longer holds
)

// Transition is one change of a rule's state.
type Transition struct {
	Time time.Time `json:"time"`
	From State     `json:"from"`
	To   State     `json:"to"`
	// Value is the figure that made the change; nil when there was no data.
	Value *float64 `json:"value"`
}

// Status is a rule as GET /v1/alerts shows it.
type Status struct {
	Rule      string            `json:"rule"`
	Service   string            `json:"service,omitempty"`
	Edge      *config.AlertEdge `json:"edge,omitempty"`
	Metric    string            `json:"metric"`
	Op        string            `json:"op"`
	Threshold float64           `json:"threshold"` // p99 in seconds
	Window    string            `json:"window"`
	For       string            `json:"for"`
	Severity  string            `json:"severity"`
	Summary   string            `json:"summary,omitempty"`
	State     State             `json:"state"`
	Since     time.Time         `json:"since"`     // when the rule entered State
	Value     *float64          `json:"value"`     // at the last evaluation; nil: no data
	Evaluated time.Time         `json:"evaluated"` // the last evaluation
	History   []Transition      `json:"history"`   // oldest first, the last Config.History
}

// Target is "catalog" for a service, "web->catalog" for an edge.
func (s *Status) Target() string {
	if s.Edge != nil {
		return s.Edge.Source + "->" + s.Edge.Destination
	}
	return s.Service
}

// Condition reads as "successRate < 0.99" or "p99 > 250ms".
func (s *Status) Condition() string {
	op := ">"
	if s.Op == config.AlertBelow {
		op = "<"
	}
	return s.Metric + " " + op + " " + FormatValue(s.Metric, s.Threshold)
}

// FormatValue writes a figure of metric for people: a p99 as a
// duration, a rate with at most three decimals.
func FormatValue(metric string, v float64) string {
	switch metric {
	case config.AlertP99:
		return (time.Duration(v * float64(time.Second))).Round(time.Microsecond).String()
	case config.AlertReadyInstances:
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// ruleState is one rule's evaluation state.
type ruleState struct {
	alert     config.Alert
	state     State
	since     time.Time // entered state
	holding   time.Time // the condition has held since (pending, firing)
	last      reading
	evaluated time.Time
	history   []Transition // ring of the last cap entries once full
	next      int          // where the next entry goes once full
}

// step applies one evaluation at now and returns the notification to
// send, if the rule fired or resolved.
func (st *ruleState) step(now time.Time, r reading, keep int) (Notification, bool) {
	st.last, st.evaluated = r, now
	holds := r.ok && st.alert.Holds(r.value)
	switch st.state {
	case Inactive, Resolved:
		if !holds {
			return Notification{}, false
		}
		st.holding = now
		if st.alert.For > 0 {
			st.move(now, Pending, r, keep)
			return Notification{}, false
		}
		st.move(now, Firing, r, keep)
		return st.notification(), true
	case Pending:
		switch {
		case !holds:
			st.move(now, Inactive, r, keep)
		case now.Sub(st.holding) >= st.alert.For:
			st.move(now, Firing, r, keep)
			return st.notification(), true
		}
	case Firing:
		if !holds {
			st.move(now, Resolved, r, keep)
			return st.notification(), true
		}
	}
	return Notification{}, false
}

func (st *ruleState) move(now time.Time, to State, r reading, keep int) {
	tr := Transition{Time: now, From: st.state, To: to, Value: r.ptr()}
	if len(st.history) < keep {
		st.history = append(st.history, tr)
	} else {
		st.history[st.next] = tr
		st.next = (st.next + 1) % keep
	}
	st.state, st.since = to, now
}

func (r reading) ptr() *float64 {
	if !r.ok {
		return nil
	}
	v := r.value
	return &v
}

func (st *ruleState) status() Status {
	a := &st.alert
	s := Status{Rule: a.Name, Service: a.Service, Metric: a.Metric, Op: a.Op, Threshold: a.Threshold,
		Window: collect.FormatWindow(a.Window), For: collect.FormatWindow(a.For), Severity: a.Severity, Summary: a.Summary,
		State: st.state, Since: st.since, Value: st.last.ptr(), Evaluated: st.evaluated}
	if a.Service == "" {
		s.Edge = &config.AlertEdge{Source: a.Source, Destination: a.Destination}
	}
	s.History = make([]Transition, 0, len(st.history))
	s.History = append(s.History, st.history[st.next:]...)
	s.History = append(s.History, st.history[:st.next]...)
	return s
}
