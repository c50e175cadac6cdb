package traces

import (
	"cmp"
	"slices"
	"strings"
	"time"
)

// Span is one span as the API gives it.
type Span struct {
	TraceID      string `json:"traceId"`
	SpanID       string `json:"spanId"`
	ParentSpanID string `json:"parentSpanId,omitempty"`
	// ParentMissing is true when the span has a parent that the store
	// does not hold (not received, or not yet): the span is shown as a root.
	ParentMissing bool   `json:"parentMissing,omitempty"`
	Name          string `json:"name"`
	// Kind is server, client, internal, producer, consumer or unspecified.
	Kind    string    `json:"kind"`
	Service string    `json:"service"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	// Duration is End - Start in nanoseconds.
	Duration time.Duration `json:"duration"`
	// Status is unset, ok or error.
	Status            string      `json:"status"`
	StatusMessage     string      `json:"statusMessage,omitempty"`
	Attributes        []Attribute `json:"attributes,omitempty"`
	DroppedAttributes int         `json:"droppedAttributes,omitempty"`
	Events            []Event     `json:"events,omitempty"`
	DroppedEvents     int         `json:"droppedEvents,omitempty"`
}

// Attribute is one attribute of a span or event, its value as text.
type Attribute struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Event is something that happened during a span.
type Event struct {
	Time       time.Time   `json:"time"`
	Name       string      `json:"name"`
	Attributes []Attribute `json:"attributes,omitempty"`
}

// Summary is one trace in a list.
type Summary struct {
	TraceID string `json:"traceId"`
	// RootService and RootName are the root span's; when the root has
	// not come (HasRoot false), the earliest span's.
	RootService string   `json:"rootService"`
	RootName    string   `json:"rootName"`
	HasRoot     bool     `json:"hasRoot"`
	Spans       int      `json:"spans"`
	Services    []string `json:"services"`
	// Errors counts the spans whose status is error.
	Errors int       `json:"errors"`
	Start  time.Time `json:"start"`
	// Duration is the root span's, or without one the trace's whole
	// extent, first start to last end.
	Duration time.Duration `json:"duration"`
}

// Node is a span and the spans it is the parent of, sorted by start.
type Node struct {
	Span
	Children []*Node `json:"children,omitempty"`
	idx      int     // in the trace's spans
}

// Tree is one trace as a tree of spans.
type Tree struct {
	Summary
	// Roots are the spans without a parent in the trace: the root span,
	// and any whose parent the store does not hold; sorted by start.
	Roots []*Node `json:"roots"`
}

// Filter selects traces for List.
type Filter struct {
	// Service keeps the traces with a span of this service ("": any).
	Service string
	// MinDuration keeps the traces at least this long (see Summary.Duration).
	MinDuration time.Duration
	// Limit is the most traces returned (0: DefaultLimit).
	Limit int
}

// DefaultLimit is how many traces List returns when the Filter says no limit.
const DefaultLimit = 20

// List returns the traces that match f, newest (latest start) first.
func (s *Store) List(f Filter) []Summary {
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	s.mu.Lock()
	var out []Summary
	for t := s.newest; t != nil; t = t.prev {
		if f.Service != "" && !slices.Contains(t.services, f.Service) {
			continue
		}
		if t.duration() < f.MinDuration {
			continue
		}
		out = append(out, t.summary())
	}
	s.mu.Unlock()
	slices.SortStableFunc(out, func(a, b Summary) int { return b.Start.Compare(a.Start) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

// Trace returns the trace of id (32 hex digits) as a span tree, and
// whether the store holds it.
func (s *Store) Trace(id string) (Tree, bool, error) {
	tid, err := ParseTraceID(strings.ToLower(id))
	if err != nil {
		return Tree{}, false, err
	}
	s.mu.Lock()
	t := s.byID[tid]
	if t == nil {
		s.mu.Unlock()
		return Tree{}, false, nil
	}
	sum := t.summary()
	nodes := make([]Node, len(t.spans))
	index := make(map[spanID]int, len(t.spans))
	for i := range t.spans {
		nodes[i].Span, nodes[i].idx = t.spans[i].api(), i
		index[t.spans[i].spanID] = i
	}
	parent := make([]int, len(t.spans)) // -1: a root
	for i := range t.spans {
		p, ok := index[t.spans[i].parentID]
		if !t.spans[i].hasParent || !ok || p == i {
			p = -1
			nodes[i].ParentMissing = t.spans[i].hasParent
		}
		parent[i] = p
	}
	s.mu.Unlock()

	tree := Tree{Summary: sum}
	for i, p := range parent {
		if p < 0 {
			tree.Roots = append(tree.Roots, &nodes[i])
		} else {
			nodes[p].Children = append(nodes[p].Children, &nodes[i])
		}
	}
	tree.Roots = breakCycles(nodes, parent, tree.Roots)
	byStart := func(a, b *Node) int {
		return cmp.Or(a.Start.Compare(b.Start), b.End.Compare(a.End), strings.Compare(a.SpanID, b.SpanID))
	}
	slices.SortFunc(tree.Roots, byStart)
	for i := range nodes {
		slices.SortFunc(nodes[i].Children, byStart)
	}
	return tree, true, nil
}

// breakCycles makes a root of a span in each loop of parents (ids that
// name each other), which no root reaches, and returns the roots.
func breakCycles(nodes []Node, parent []int, roots []*Node) []*Node {
	seen := make([]bool, len(nodes))
	var visit func(n *Node)
	visit = func(n *Node) {
		for _, c := range n.Children {
			i := c.idx
			if !seen[i] {
				seen[i] = true
				visit(c)
			}
		}
	}
	for _, r := range roots {
		seen[r.idx] = true
		visit(r)
	}
	for i := range nodes {
		if seen[i] {
			continue
		}
		p := parent[i]
		nodes[p].Children = slices.DeleteFunc(nodes[p].Children, func(c *Node) bool { return c == &nodes[i] })
		nodes[i].ParentMissing = true
		roots = append(roots, &nodes[i])
		seen[i] = true
		visit(&nodes[i])
	}
	return roots
}

func (t *trace) duration() time.Duration {
	if t.root >= 0 {
		r := &t.spans[t.root]
		return time.Duration(r.end - r.start)
	}
	return time.Duration(t.end - t.start)
}

func (t *trace) summary() Summary {
	s := Summary{
		TraceID:  t.id.String(),
		Spans:    len(t.spans),
		Services: slices.Sorted(slices.Values(t.services)),
		Errors:   t.errors,
		Start:    time.Unix(0, t.start).UTC(),
		Duration: t.duration(),
	}
	first := t.root
	if first >= 0 {
		s.HasRoot = true
	} else {
		first = 0
		for i := range t.spans {
			if t.spans[i].start < t.spans[first].start {
				first = i
			}
		}
	}
	s.RootService, s.RootName = t.spans[first].service, t.spans[first].name
	return s
}

var kindNames = [...]string{"unspecified", "internal", "server", "client", "producer", "consumer"}

var statusNames = [...]string{statusUnset: "unset", statusOK: "ok", statusError: "error"}

func (sp *span) api() Span {
	out := Span{
		TraceID:           sp.traceID.String(),
		SpanID:            sp.spanID.String(),
		Name:              sp.name,
		Kind:              kindNames[sp.kind],
		Service:           sp.service,
		Start:             time.Unix(0, sp.start).UTC(),
		End:               time.Unix(0, sp.end).UTC(),
		Duration:          time.Duration(sp.end - sp.start),
		Status:            statusNames[sp.status],
		StatusMessage:     sp.statusMessage,
		Attributes:        slices.Clone(sp.attrs),
		DroppedAttributes: sp.droppedAttributes,
		DroppedEvents:     sp.droppedEvents,
	}
	if sp.hasParent {
		out.ParentSpanID = sp.parentID.String()
	}
	for _, e := range sp.events {
		out.Events = append(out.Events, Event{Time: time.Unix(0, e.at).UTC(), Name: e.name, Attributes: slices.Clone(e.attrs)})
	}
	return out
}
