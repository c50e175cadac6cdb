package lb

import (
	"testing"

	"github.com/weftmesh/weft/internal/request"
)

// Random is even: each of three gets a third of 30,000 picks, give or
// take 10% (the standard deviation is about 0.8%).
func TestRandomIsEven(t *testing.T) {
	eps := set(3)
	got := pick(NewRandom(9), eps, request.None, nil, 30000)
	for _, k := range []string{"i0", "i1", "i2"} {
		if got[k] < 9000 || got[k] > 11000 {
			t.Errorf("picks: got %s, want 9000 to 11000 each", show(got))
			break
		}
	}
}

// When some are tried, the rest are as likely as each other.
func TestRandomIsEvenOverTheRest(t *testing.T) {
	eps := set(4)
	got := pick(NewRandom(9), eps, request.None, eps[:1], 30000)
	for _, k := range []string{"i1", "i2", "i3"} {
		if got[k] < 9000 || got[k] > 11000 {
			t.Errorf("picks with i0 tried: got %s, want 9000 to 11000 for each of i1, i2, i3", show(got))
			break
		}
	}
}
