package lb

import (
	"fmt"
	"strconv"
	"sync"

	"github.com/weftmesh/weft/internal/endpoint"
	"github.com/weftmesh/weft/internal/request"
)

// DefaultWeightLabel is the endpoint label Weighted reads weights from.
const DefaultWeightLabel = "weight"

// MaxWeight is the largest weight a label may give.
const MaxWeight = 10000

// Weighted is smooth weighted round robin, nginx's algorithm: each
// endpoint has a weight (its Label, default 1) and a current value; each
// Pick adds every candidate's weight to its current value, takes the
// candidate with the largest, and takes the sum of the candidates'
// weights off the one taken. Over any run of picks each endpoint gets its
// share exactly, spread out (weights 5, 1, 1 give a a b a c a a) rather
// than in bursts. Candidates are the untried endpoints of the best tier
// (ready, then deferred, then ejected), so the weights of those left out
// are shared among the rest.
//
// Weights are read when the endpoint set changes (by its identity: a
// set must not be changed in place once picked from, as a
// proxy.Cluster's never is). A Pick holds a lock for one pass over the
// set. Make one with NewWeighted per service; the zero value reads the
// "weight" label.
type Weighted struct {
	Label string // the label holding the weight ("": DefaultWeightLabel)
	clock clock

	mu      sync.Mutex
	key     **endpoint.Endpoint // the set the state is for: &set[0]
	n       int                 // and its length
	weight  []int64
	current []int64
}

var _ Balancer = (*Weighted)(nil)

// NewWeighted returns a Weighted that reads weights from label ("":
// DefaultWeightLabel).
func NewWeighted(label string) *Weighted { return &Weighted{Label: label} }

// Weight is the weight label gives e: 1 when the label is absent, else
// an integer from 1 to MaxWeight; anything else is an error naming the
// instance, the label and the value (Weighted then uses 1).
func Weight(e *endpoint.Endpoint, label string) (int, error) {
	v, ok := e.Labels[label]
	if !ok {
		return 1, nil
	}
	w, err := strconv.Atoi(v)
	if err != nil || w < 1 || w > MaxWeight {
		return 1, fmt.Errorf("lb: instance %s: label %s=%q: want a whole number from 1 to %d", e.Instance, label, v, MaxWeight)
	}
	return w, nil
}

// Pick returns the next endpoint by smooth weighted round robin among the
// untried endpoints of the best tier; nil when every endpoint was tried.
func (w *Weighted) Pick(set []*endpoint.Endpoint, _ request.View, tried []*endpoint.Endpoint) *endpoint.Endpoint {
	if len(set) == 0 {
		return nil
	}
	now := w.clock.now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.key != &set[0] || w.n != len(set) {
		w.reset(set)
	}
	v, t, n := census(set, tried, now)
	if n == 0 {
		return nil
	}
	best, total := -1, int64(0)
	for i, e := range set {
		if !v.in(e, tried, t) {
			continue
		}
		w.current[i] += w.weight[i]
		total += w.weight[i]
		if best < 0 || w.current[i] > w.current[best] {
			best = i
		}
	}
	w.current[best] -= total // census counted one: best >= 0
	return set[best]
}

// reset reads the weights of a new set and starts its round afresh.
func (w *Weighted) reset(set []*endpoint.Endpoint) {
	label := w.Label
	if label == "" {
		label = DefaultWeightLabel
	}
	w.key, w.n = &set[0], len(set)
	w.weight, w.current = resize(w.weight, len(set)), resize(w.current, len(set))
	for i, e := range set {
		wt, _ := Weight(e, label) // 1 when invalid; configuration reports it
		w.weight[i], w.current[i] = int64(wt), 0
	}
}

// resize is s with length n, reusing its array when large enough.
func resize(s []int64, n int) []int64 {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]int64, n)
}
