package lb

import (
	"fmt"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/request"
)

// BenchmarkPick is one Pick of each policy on 3 and 100 endpoints in
// rotation, nothing tried (go test -bench Pick -benchmem ./internal/lb/).
func BenchmarkPick(b *testing.B) {
	all := append(policies(), struct {
		name string
		b    func() Balancer
		view func() request.View
	}{"round-robin", func() Balancer { return &RoundRobin{} }, func() request.View { return request.None }})
	for _, p := range all {
		for _, n := range []int{3, 100} {
			b.Run(fmt.Sprintf("%s/%d", p.name, n), func(b *testing.B) {
				eps := set(n)
				prime(eps, 10*time.Millisecond)
				bal := p.b()
				view := request.View(withKey("x-key", "user-42"))
				if p.name == "ring-hash without the header" || p.name == "round-robin" {
					view = request.None
				}
				bal.Pick(eps, view, nil)
				b.ReportAllocs()
				for b.Loop() {
					bal.Pick(eps, view, nil)
				}
			})
		}
	}
}

// BenchmarkLocalityPick is Locality over P2C, half the endpoints in the
// caller's zone.
func BenchmarkLocalityPick(b *testing.B) {
	for _, n := range []int{4, 100} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			eps := zoned(n/2, n/2)
			prime(eps, 10*time.Millisecond)
			l := NewLocality("a", NewP2C(1), NewP2C(2))
			l.Pick(eps, request.None, nil)
			b.ReportAllocs()
			for b.Loop() {
				l.Pick(eps, request.None, nil)
			}
		})
	}
}
