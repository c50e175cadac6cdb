package collect

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

var _ Query = (*Store)(nil)

// DefaultWindow is the window of weft stat and /v1/stats when none is given.
const DefaultWindow = time.Minute

// ParseWindow reads a window ("1m", "90s"; "" for DefaultWindow). It
// must be from Resolution to Retention; it is rounded up to whole slots.
func ParseWindow(s string) (time.Duration, error) {
	if s == "" {
		return DefaultWindow, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("window %q: want a duration such as 1m or 30s", s)
	}
	if d < Resolution || d > Retention {
		return 0, fmt.Errorf("window %q: want 10s to 1h", s)
	}
	return roundWindow(d), nil
}

// roundWindow is d in whole slots, from one to Slots.
func roundWindow(d time.Duration) time.Duration {
	n := (d + Resolution - 1) / Resolution
	return min(max(n, 1), Slots) * Resolution
}

// FormatWindow writes a window as ParseWindow reads it: 1m, 90s, 1h.
func FormatWindow(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// ServiceList is the answer of GET /v1/stats and /v1/stats/{service}.
type ServiceList struct {
	Window   string         `json:"window"`
	Services []ServiceStats `json:"services"`
}

// EdgeList is the answer of GET /v1/stats?edges=true.
type EdgeList struct {
	Window string      `json:"window"`
	Edges  []EdgeStats `json:"edges"`
}

// InstanceStats are one instance's figures, as its sidecar counted the
// requests it received.
type InstanceStats struct {
	Instance string `json:"instance"`
	Golden
	Histogram
}

// Histogram is the merged latency histogram the quantiles come from:
// counts per bucket (not cumulative) in the order of Bounds, the last
// for answers slower than every bound.
type Histogram struct {
	Buckets []uint64 `json:"buckets"`
}

// ServiceStats are a service's figures and its instances'.
type ServiceStats struct {
	Service string `json:"service"`
	Golden
	Histogram
	Instances []InstanceStats `json:"instances"`
}

// EdgeStats are the figures of the calls from one service to another.
type EdgeStats struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	Golden
	Histogram
}

// span is the slot numbers a window covers, ending with the current one,
// and the window's length in whole slots.
func (s *Store) span(window time.Duration) (from, to int64, length time.Duration) {
	length = roundWindow(window)
	to = slotOf(s.cfg.Now())
	return to - int64(length/Resolution) + 1, to, length
}

// Service implements Query: the sum of the service's instances.
func (s *Store) Service(name string, window time.Duration) Golden {
	st, _ := s.ServiceStats(name, window)
	return st.Golden
}

// Instance is one instance's figures over the last window.
func (s *Store) Instance(service, instance string, window time.Duration) Golden {
	from, to, length := s.span(window)
	var a agg
	s.mu.Lock()
	if g := s.instances[service][instance]; g != nil {
		g.sum(from, to, &a)
	}
	s.mu.Unlock()
	return a.golden(length)
}

// Edge implements Query.
func (s *Store) Edge(source, destination string, window time.Duration) Golden {
	from, to, length := s.span(window)
	var a agg
	s.mu.Lock()
	if g := s.edges[source][destination]; g != nil {
		g.sum(from, to, &a)
	}
	s.mu.Unlock()
	return a.golden(length)
}

// ServiceStats is a service's figures and its instances', ok false when
// the store holds nothing of it (no instance reported in the last hour).
func (s *Store) ServiceStats(name string, window time.Duration) (ServiceStats, bool) {
	from, to, length := s.span(window)
	s.mu.Lock()
	defer s.mu.Unlock()
	inst, ok := s.instances[name]
	if !ok {
		var none agg
		return ServiceStats{Service: name, Golden: none.golden(length), Histogram: none.histogram(), Instances: []InstanceStats{}}, false
	}
	return serviceStats(name, inst, from, to, length), true
}

// Services is every service the store holds, by name.
func (s *Store) Services(window time.Duration) []ServiceStats {
	from, to, length := s.span(window)
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ServiceStats, 0, len(s.instances))
	for name, inst := range s.instances {
		out = append(out, serviceStats(name, inst, from, to, length))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Service < out[j].Service })
	return out
}

func serviceStats(name string, inst map[string]*ring, from, to int64, length time.Duration) ServiceStats {
	st := ServiceStats{Service: name, Instances: make([]InstanceStats, 0, len(inst))}
	var total agg
	for id, g := range inst {
		var a agg
		g.sum(from, to, &a)
		total.add(&a)
		st.Instances = append(st.Instances, InstanceStats{Instance: id, Golden: a.golden(length), Histogram: a.histogram()})
	}
	sort.Slice(st.Instances, func(i, j int) bool { return st.Instances[i].Instance < st.Instances[j].Instance })
	st.Golden, st.Histogram = total.golden(length), total.histogram()
	return st
}

// Edges is every edge the store holds, by source and destination.
func (s *Store) Edges(window time.Duration) []EdgeStats {
	from, to, length := s.span(window)
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []EdgeStats
	for src, inner := range s.edges {
		for dst, g := range inner {
			var a agg
			g.sum(from, to, &a)
			out = append(out, EdgeStats{Source: src, Destination: dst, Golden: a.golden(length), Histogram: a.histogram()})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Source != out[j].Source {
			return out[i].Source < out[j].Source
		}
		return out[i].Destination < out[j].Destination
	})
	if out == nil {
		out = []EdgeStats{}
	}
	return out
}

func (a *agg) histogram() Histogram {
	return Histogram{Buckets: append([]uint64(nil), a.buckets[:]...)}
}

func (a *agg) add(b *agg) {
	a.requests += b.requests
	a.failures += b.failures
	for i := range a.buckets {
		a.buckets[i] += b.buckets[i]
	}
}
