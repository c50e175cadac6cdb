package lb

import (
	"fmt"
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/endpoint"
	"github.com/weftmesh/weft/internal/request"
)

// weighted is endpoints i0, i1... with the given weight labels ("": none).
func weighted(labels ...string) []*endpoint.Endpoint {
	var eps []*endpoint.Endpoint
	for i, w := range labels {
		var l map[string]string
		if w != "" {
			l = map[string]string{"weight": w}
		}
		eps = append(eps, endpoint.New("catalog", fmt.Sprint("i", i), fmt.Sprintf("10.0.0.%d:80", i), l))
	}
	return eps
}

// sequence is the instances of n picks, in order.
func sequence(b Balancer, eps, tried []*endpoint.Endpoint, n int) string {
	var s []string
	for range n {
		s = append(s, b.Pick(eps, request.None, tried).Instance)
	}
	return strings.Join(s, " ")
}

func TestWeighted(t *testing.T) {
	tests := []struct {
		name    string
		weights []string
		eject   []int
		tried   []int
		picks   int
		want    string // the sequence of picks
	}{
		// nginx's example (ngx_http_upstream_round_robin.c): weights 5, 1, 1
		// give a a b a c a a, not a a a a a b c.
		{name: "smooth: 5, 1, 1", weights: []string{"5", "1", "1"}, picks: 14,
			want: "i0 i0 i1 i0 i2 i0 i0 i0 i0 i1 i0 i2 i0 i0"},
		{name: "no label is weight 1", weights: []string{"", "", "2"}, picks: 8, want: "i2 i0 i1 i2 i2 i0 i1 i2"},
		{name: "an invalid label is weight 1", weights: []string{"0", "x", "2"}, picks: 4, want: "i2 i0 i1 i2"},
		{name: "an ejected one's share goes to the rest", weights: []string{"1", "1", "8"}, eject: []int{2}, picks: 4,
			want: "i0 i1 i0 i1"},
		{name: "a tried one's too", weights: []string{"1", "3", "8"}, tried: []int{2}, picks: 8,
			want: "i1 i0 i1 i1 i1 i0 i1 i1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eps := weighted(tt.weights...)
			for _, i := range tt.eject {
				eps[i].ConnectFailed()
			}
			var tried []*endpoint.Endpoint
			for _, i := range tt.tried {
				tried = append(tried, eps[i])
			}
			if got := sequence(NewWeighted(""), eps, tried, tt.picks); got != tt.want {
				t.Errorf("picks: got %s, want %s", got, tt.want)
			}
		})
	}
}

// Weights 1 and 3 give exactly 1000 and 3000 of 4000 picks (well within
// 2%), each run of four picks holding one of i0.
func TestWeightedShares(t *testing.T) {
	eps := weighted("1", "3")
	w := NewWeighted("")
	got := pick(w, eps, request.None, nil, 4000)
	if got["i0"] != 1000 || got["i1"] != 3000 {
		t.Errorf("picks with weights 1:3: got %s, want i0:1000 i1:3000", show(got))
	}
}

// A new set (a new routing table) is read afresh: its weights, not the
// old state.
func TestWeightedReadsANewSet(t *testing.T) {
	w := NewWeighted("")
	sequence(w, weighted("1", "9"), nil, 5)
	if got, want := sequence(w, weighted("3", "1"), nil, 4), "i0 i0 i1 i0"; got != want {
		t.Errorf("picks from a new set: got %s, want %s", got, want)
	}
}

func TestWeightedLabel(t *testing.T) {
	e := endpoint.New("catalog", "i0", "10.0.0.1:80", map[string]string{"lb-weight": "4"})
	w := NewWeighted("lb-weight")
	other := endpoint.New("catalog", "i1", "10.0.0.2:80", map[string]string{"weight": "9"}) // not the label read
	got := pick(w, []*endpoint.Endpoint{e, other}, request.None, nil, 500)
	if got["i0"] != 400 || got["i1"] != 100 {
		t.Errorf("picks with lb-weight=4 against none: got %s, want i0:400 i1:100", show(got))
	}
}

func TestWeight(t *testing.T) {
	tests := []struct {
		label   string // "": none
		want    int
		wantErr string
	}{
		{"", 1, ""},
		{"1", 1, ""},
		{"250", 250, ""},
		{"10000", 10000, ""},
		{"0", 1, `lb: instance i0: label weight="0": want a whole number from 1 to 10000`},
		{"-3", 1, `label weight="-3"`},
		{"1.5", 1, `label weight="1.5"`},
		{"heavy", 1, `label weight="heavy"`},
		{"10001", 1, `label weight="10001"`},
	}
	for _, tt := range tests {
		e := weighted(tt.label)[0]
		got, err := Weight(e, DefaultWeightLabel)
		if got != tt.want {
			t.Errorf("Weight of label %q: got %d, want %d", tt.label, got, tt.want)
		}
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("Weight of label %q: got error %v, want none", tt.label, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("Weight of label %q: got error %v, want one with %q", tt.label, err, tt.wantErr)
		}
	}
}
