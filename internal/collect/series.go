package collect

import (
	"fmt"
	"time"
)

// DefaultSeriesWindow is the window of a series when none is given: the
// whole hour the store keeps.
const DefaultSeriesWindow = Retention

// MaxPoints is the most points a series has (a step of one slot over
// the hour).
const MaxPoints = Slots

// Point is a service's figures over one step of a series, the step
// ending at Time (exclusive) and beginning Step before it.
type Point struct {
	Time time.Time `json:"time"`
	Golden
}

// SeriesList is the answer of GET /v1/stats/{service}/series: the
// service's figures step by step, oldest first, the last step ending
// with the current slot.
type SeriesList struct {
	Service string  `json:"service"`
	Window  string  `json:"window"`
	Step    string  `json:"step"`
	Points  []Point `json:"points"`
}

// ParseStep reads the step of a series over window ("" for a sixtieth
// of it, at least one slot). It must be from Resolution to the window;
// it is rounded up to whole slots.
func ParseStep(s string, window time.Duration) (time.Duration, error) {
	if s == "" {
		return roundWindow(window / 60), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("step %q: want a duration such as 1m or 10s", s)
	}
	if d < Resolution || d > window {
		return 0, fmt.Errorf("step %q: want 10s to the window (%s)", s, FormatWindow(window))
	}
	return roundWindow(d), nil
}

// ServiceSeries is a service's figures over the last window in steps of
// step (both rounded to whole slots; a last partial step is left out at
// the old end), oldest first, and ok false when the store holds nothing
// of the service. Each point is the sum of the service's instances over
// its step, as Service sums them over a window.
func (s *Store) ServiceSeries(name string, window, step time.Duration) (SeriesList, bool) {
	window, step = roundWindow(window), roundWindow(step)
	n := int(window / step)
	if n < 1 {
		n, step = 1, window
	}
	perStep := int64(step / Resolution)
	to := slotOf(s.cfg.Now())
	out := SeriesList{Service: name, Window: FormatWindow(window), Step: FormatWindow(step), Points: make([]Point, n)}
	aggs := make([]agg, n)
	s.mu.Lock()
	inst, ok := s.instances[name]
	for _, g := range inst {
		for i := range aggs {
			last := to - int64(n-1-i)*perStep
			g.sum(last-perStep+1, last, &aggs[i])
		}
	}
	s.mu.Unlock()
	for i := range aggs {
		last := to - int64(n-1-i)*perStep
		out.Points[i] = Point{Time: time.Unix(0, (last+1)*int64(Resolution)).UTC(), Golden: aggs[i].golden(step)}
	}
	return out, ok
}
