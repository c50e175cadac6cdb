package lb

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	tests := []struct {
		name     string
		opts     Options
		wantType string
		wantErr  string // "": none
	}{
		{name: "default", wantType: "*lb.P2C"},
		{name: "p2c", wantType: "*lb.P2C"},
		{name: "round-robin", wantType: "*lb.RoundRobin"},
		{name: "least-request", wantType: "*lb.LeastRequest"},
		{name: "random", wantType: "*lb.Random"},
		{name: "weighted", wantType: "*lb.Weighted"},
		{name: "weighted", opts: Options{WeightLabel: "lb weight"}, wantErr: `lb: weighted: weight label "lb weight" has white space`},
		{name: "ring-hash", opts: Options{HashHeader: "x-user"}, wantType: "*lb.RingHash"},
		{name: "ring-hash", wantErr: "lb: ring-hash: hash on one of a header, a cookie or the source (0 given)"},
		{name: "ring-hash", opts: Options{HashHeader: "x user:"}, wantErr: `lb: ring-hash: hash header "x user:" is not a header name`},
		{name: "ring-hash", opts: Options{HashHeader: "x-user", VirtualNodes: -1}, wantErr: "lb: ring-hash: virtual nodes -1: want 0 (the default, 100) to 10000"},
		{name: "ring-hash", opts: Options{HashHeader: "x-user", VirtualNodes: 10001}, wantErr: "virtual nodes 10001"},
		{name: "maglev", wantErr: `lb: unknown balancer "maglev": want one of default, p2c, round-robin, least-request, random, weighted, ring-hash`},
		{name: "", wantErr: `lb: unknown balancer "": want one of`},
		{name: "P2C", wantErr: `unknown balancer "P2C"`},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %+v", tt.name, tt.opts), func(t *testing.T) {
			b, err := New(tt.name, tt.opts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("New: got %T, %v, want an error with %q", b, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: got error %v, want a %s", err, tt.wantType)
			}
			if got := fmt.Sprintf("%T", b); got != tt.wantType {
				t.Errorf("New: got %s, want %s", got, tt.wantType)
			}
		})
	}
	t.Run("unknown is ErrUnknown", func(t *testing.T) {
		if _, err := New("maglev", Options{}); !errors.Is(err, ErrUnknown) {
			t.Errorf("New(maglev): got %v, want ErrUnknown", err)
		}
	})
	t.Run("each call a fresh balancer", func(t *testing.T) {
		a, _ := New("weighted", Options{})
		b, _ := New("weighted", Options{})
		if a == b {
			t.Errorf("two New calls: got the same balancer, want two")
		}
	})
	t.Run("options reach the balancer", func(t *testing.T) {
		b, _ := New("ring-hash", Options{HashHeader: "x-user", VirtualNodes: 7, Seed: 5})
		if h := b.(*RingHash); h.Header != "x-user" || h.vnodes() != 7 {
			t.Errorf("ring-hash: got header %q, %d points, want x-user, 7", h.Header, h.vnodes())
		}
		w, _ := New("weighted", Options{WeightLabel: "w"})
		if got := w.(*Weighted).Label; got != "w" {
			t.Errorf("weighted label: got %q, want w", got)
		}
	})
}
