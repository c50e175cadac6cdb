package lb

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/endpoint"
	"github.com/weftmesh/weft/internal/request"
)

// keyView is a request carrying one header.
type keyView struct {
	request.View
	name  string
	value []byte
}

func (v *keyView) Header(name string) []byte {
	if strings.EqualFold(name, v.name) {
		return v.value
	}
	return nil
}

func withKey(name, value string) *keyView {
	return &keyView{View: request.None, name: name, value: []byte(value)}
}

// keys is a request whose header takes a new value at each look: k0, k1...
type keys struct {
	request.View
	n   int
	buf []byte
}

func (k *keys) Header(string) []byte {
	k.buf = strconv.AppendInt(append(k.buf[:0], 'k'), int64(k.n), 10)
	k.n++
	return k.buf
}

// prime gives every endpoint the same history: one success of lat ending
// now, so that balancers see them as equals.
func prime(eps []*endpoint.Endpoint, lat time.Duration) {
	now := time.Now()
	for _, e := range eps {
		a := e.BeginAt(now.Add(-lat))
		a.Done(endpoint.Outcome{Class: endpoint.Success, Latency: lat})
	}
}

// deferEp has e ask for a minute's peace (Retry-After), leaving its
// estimates as they are.
func deferEp(e *endpoint.Endpoint) {
	a := e.Begin()
	a.Done(endpoint.Outcome{Class: endpoint.Refused, RetryAfter: time.Minute})
}

// pick runs n picks and counts them by instance ("nil" for none).
func pick(b Balancer, eps []*endpoint.Endpoint, v request.View, tried []*endpoint.Endpoint, n int) map[string]int {
	got := map[string]int{}
	for range n {
		if e := b.Pick(eps, v, tried); e != nil {
			got[e.Instance]++
		} else {
			got["nil"]++
		}
	}
	return got
}

// only checks that every pick was one of want and each of want was picked.
func only(t *testing.T, got map[string]int, want ...string) {
	t.Helper()
	for k := range got {
		if !slices.Contains(want, k) {
			t.Errorf("picks: got %v, want only %v", show(got), want)
			return
		}
	}
	for _, k := range want {
		if got[k] == 0 {
			t.Errorf("picks: got %v, want each of %v at least once", show(got), want)
			return
		}
	}
}

// show prints counts in key order.
func show(m map[string]int) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var b strings.Builder
	for _, k := range ks {
		fmt.Fprintf(&b, "%s:%d ", k, m[k])
	}
	return strings.TrimSpace(b.String())
}

// policies are the balancers of this package under their names, each
// with a fixed seed, and the request view to pick for.
func policies() []struct {
	name string
	b    func() Balancer
	view func() request.View
} {
	none := func() request.View { return request.None }
	return []struct {
		name string
		b    func() Balancer
		view func() request.View
	}{
		{"p2c", func() Balancer { return NewP2C(1) }, none},
		{"least-request", func() Balancer { return NewLeastRequest(1) }, none},
		{"random", func() Balancer { return NewRandom(1) }, none},
		{"weighted", func() Balancer { return NewWeighted("") }, none},
		{"ring-hash", func() Balancer { return NewRingHash("x-key", 0, 1) }, func() request.View { return &keys{View: request.None} }},
		{"ring-hash without the header", func() Balancer { return NewRingHash("x-key", 0, 1) }, none},
	}
}
