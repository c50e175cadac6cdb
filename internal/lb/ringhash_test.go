package lb

import (
	"fmt"
	"testing"

	"github.com/weftmesh/weft/internal/endpoint"
	"github.com/weftmesh/weft/internal/request"
)

// owners maps keys k0..k(n-1) to the instance each picks from eps.
func owners(h *RingHash, eps, tried []*endpoint.Endpoint, n int) []string {
	out := make([]string, n)
	for i := range n {
		out[i] = h.Pick(eps, withKey("X-Key", fmt.Sprint("k", i)), tried).Instance
	}
	return out
}

// The same key goes to the same endpoint, every time and in every
// balancer (the ring depends only on the instances).
func TestRingHashIsStable(t *testing.T) {
	eps := set(5)
	a := owners(NewRingHash("x-key", 0, 1), eps, nil, 1000)
	again := owners(NewRingHash("x-key", 0, 2), eps, nil, 1000)
	h := NewRingHash("x-key", 0, 3)
	for range 5 {
		for i, o := range owners(h, eps, nil, 1000) {
			if o != a[i] || again[i] != a[i] {
				t.Fatalf("key k%d: got %s, then %s and %s, want the same each time", i, a[i], again[i], o)
			}
		}
	}
}

// Keys spread over the endpoints: with 100 points each, each of 3 gets
// 20% to 47% of 10,000 keys.
func TestRingHashSpreads(t *testing.T) {
	got := map[string]int{}
	for _, o := range owners(NewRingHash("x-key", 0, 1), set(3), nil, 10000) {
		got[o]++
	}
	for _, k := range []string{"i0", "i1", "i2"} {
		if got[k] < 2000 || got[k] > 4700 {
			t.Errorf("keys per endpoint: got %s, want 2000 to 4700 each", show(got))
			break
		}
	}
}

// When an endpoint leaves, only its keys move (about 1/n of them); when
// one joins, only keys it takes move.
func TestRingHashRemapsOnlyTheChangedShare(t *testing.T) {
	const n, keys = 5, 10000
	all := set(n)
	h := NewRingHash("x-key", 0, 1)
	before := owners(h, all, nil, keys)
	after := owners(h, append([]*endpoint.Endpoint{}, all[:n-1]...), nil, keys) // i4 leaves
	moved := 0
	for i := range keys {
		if before[i] != after[i] {
			moved++
			if before[i] != "i4" {
				t.Fatalf("key k%d moved from %s to %s, want only keys of i4 to move", i, before[i], after[i])
			}
		}
	}
	t.Logf("keys moved when 1 of %d left: %d of %d", n, moved, keys)
	if moved == 0 || moved >= 2*keys/n {
		t.Errorf("keys moved when 1 of %d left: got %d of %d, want some and fewer than %d (2/n)", n, moved, keys, 2*keys/n)
	}
	back := owners(h, all, nil, keys) // i4 returns
	for i := range keys {
		if back[i] != before[i] {
			t.Fatalf("key k%d after i4 returned: got %s, want %s again", i, back[i], before[i])
		}
	}
}

// When a key's endpoint is ejected, deferred or tried, the key goes on
// round the ring: to the same next endpoint every time, and back when it
// returns.
func TestRingHashFallsBackAlongTheRing(t *testing.T) {
	eps := set(5)
	h := NewRingHash("x-key", 0, 1)
	key := withKey("x-key", "user-42")
	owner := h.Pick(eps, key, nil)
	for _, how := range []string{"ejected", "deferred", "tried"} {
		t.Run(how, func(t *testing.T) {
			eps := set(5)
			owner := eps[indexOf(eps, owner.Instance)]
			var tried []*endpoint.Endpoint
			switch how {
			case "ejected":
				owner.ConnectFailed()
			case "deferred":
				deferEp(owner)
			case "tried":
				tried = []*endpoint.Endpoint{owner}
			}
			next := h.Pick(eps, key, tried)
			if next == owner || next == nil {
				t.Fatalf("owner %s %s: got %v, want another endpoint", owner.Instance, how, next)
			}
			for range 20 {
				if e := h.Pick(eps, key, tried); e != next {
					t.Fatalf("owner %s %s: got %s, then %s, want the same next endpoint", owner.Instance, how, next.Instance, e.Instance)
				}
			}
			if how == "ejected" {
				a := owner.Begin()
				a.Done(endpoint.Outcome{Class: endpoint.Success})
				if e := h.Pick(eps, key, nil); e != owner {
					t.Errorf("owner back in rotation: got %s, want %s", e.Instance, owner.Instance)
				}
			}
		})
	}
}

func indexOf(eps []*endpoint.Endpoint, instance string) int {
	for i, e := range eps {
		if e.Instance == instance {
			return i
		}
	}
	return -1
}

// Without the header (or with it empty) requests spread at random.
func TestRingHashWithoutTheKeyIsRandom(t *testing.T) {
	for _, v := range []request.View{request.None, withKey("x-key", "")} {
		got := pick(NewRingHash("x-key", 0, 1), set(3), v, nil, 3000)
		for _, k := range []string{"i0", "i1", "i2"} {
			if got[k] < 800 {
				t.Errorf("picks without a key: got %s, want over 800 each", show(got))
				break
			}
		}
	}
}

// A new set gets a new ring: picks come from it, never from the old one.
func TestRingHashRebuildsForANewSet(t *testing.T) {
	h := NewRingHash("x-key", 10, 1)
	old := set(3)
	owners(h, old, nil, 100)
	fresh := []*endpoint.Endpoint{endpoint.New("catalog", "j0", "10.0.1.0:80", nil), endpoint.New("catalog", "j1", "10.0.1.1:80", nil)}
	got := map[string]int{}
	for _, o := range owners(h, fresh, nil, 1000) {
		got[o]++
	}
	only(t, got, "j0", "j1")
	if rg := h.ring.Load(); len(rg.points) != 2*10 {
		t.Errorf("points on the new ring: got %d, want 20 (2 endpoints × 10)", len(rg.points))
	}
}

// cookieView carries a Cookie field and a client address.
type cookieView struct {
	request.View
	cookie, source string
}

func (v cookieView) Cookie(name string) []byte { return request.CookieValue([]byte(v.cookie), name) }
func (v cookieView) Source() []byte            { return []byte(v.source) }

// Hashing on a cookie or on the source: the same value goes to the same
// endpoint, as a header does, and different values spread.
func TestRingHashOnCookieAndSource(t *testing.T) {
	eps := set(5)
	for _, c := range []struct {
		name string
		opts Options
		view func(i int) request.View
	}{
		{"cookie", Options{HashCookie: "session", Seed: 1}, func(i int) request.View {
			return cookieView{View: request.None, cookie: fmt.Sprintf("theme=dark; session=s%d; lang=en", i)}
		}},
		{"source", Options{HashSource: true, Seed: 1}, func(i int) request.View {
			return cookieView{View: request.None, source: fmt.Sprintf("10.0.%d.%d", i/250, i%250)}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, err := New(NameRingHash, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]int{}
			for i := range 1000 {
				first := b.Pick(eps, c.view(i), nil).Instance
				for range 3 {
					if again := b.Pick(eps, c.view(i), nil).Instance; again != first {
						t.Fatalf("value %d went to %s, then %s", i, first, again)
					}
				}
				seen[first]++
			}
			if len(seen) != 5 {
				t.Errorf("1000 values went to %v, want all 5 endpoints", seen)
			}
			// A request without the cookie (or address) goes anywhere.
			got := pick(b, eps, cookieView{View: request.None, cookie: "theme=dark"}, nil, 2500)
			if len(got) != 5 {
				t.Errorf("requests without the key went to %s, want every endpoint", show(got))
			}
		})
	}
	if _, err := New(NameRingHash, Options{HashHeader: "x", HashSource: true}); err == nil {
		t.Error("ring-hash on a header and the source: no error")
	}
}
