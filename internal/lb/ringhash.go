package lb

import (
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/weftmesh/weft/internal/endpoint"
	"github.com/weftmesh/weft/internal/request"
)

// DefaultVirtualNodes is how many points each endpoint has on a ring.
const DefaultVirtualNodes = 100

// MaxVirtualNodes bounds the points per endpoint.
const MaxVirtualNodes = 10000

// RingHash is consistent hashing on a request header, a cookie or the
// client's address: each endpoint has VirtualNodes points on a ring of
// 64-bit hashes (placed by its instance id, or its address when it has
// none), and a request goes to the owner of the first point at or after
// the hash of its key: its Header value, else its Cookie's value, else,
// with Source, the address of the client that sent it (in a sidecar's
// outbound listener, its app: each calling instance sticks to one). The same value
// goes to the same endpoint while the set holds it; when an endpoint
// leaves, only the values it owned move (about 1/n of them).
//
// When the owner is tried, ejected or deferred (Retry-After), the request
// goes on round the ring to the next untried endpoint of the best tier
// (ready, then deferred, then ejected), the same one for the same value.
// A request without the key (or with it empty) goes to a random
// endpoint, as Random.
//
// The ring is built when the endpoint set changes (by its identity: a set
// must not be changed in place once picked from, as a proxy.Cluster's
// never is) and shared by concurrent Picks; the build is the only
// allocation. Hashes are FNV-1a with a 64-bit finaliser. Make one with
// NewRingHash per service.
type RingHash struct {
	Header       string // the request header hashed
	Cookie       string // or, when Header is empty, the cookie hashed
	Source       bool   // or, when both are empty, the client's address
	VirtualNodes int    // points per endpoint (0: DefaultVirtualNodes)
	rnd          *rand.Rand
	clock        clock

	ring  atomic.Pointer[ring]
	build sync.Mutex // one build at a time
}

var _ Balancer = (*RingHash)(nil)

// NewRingHash returns a RingHash on header with vnodes points per
// endpoint (0: DefaultVirtualNodes); its random choices for requests
// without the header follow seed (0: a random seed).
func NewRingHash(header string, vnodes int, seed uint64) *RingHash {
	return &RingHash{Header: header, VirtualNodes: vnodes, rnd: newRand(seed)}
}

// ring is the ring of one endpoint set.
type ring struct {
	key    **endpoint.Endpoint // &set[0]
	n      int                 // len(set)
	points []point             // sorted by hash
}

// point is one virtual node: a hash and its endpoint's index in the set.
type point struct {
	hash uint64
	idx  int32
}

// Pick returns the endpoint owning the request's header value on the
// ring, or the next usable one round it; nil when every endpoint was
// tried.
func (h *RingHash) Pick(set []*endpoint.Endpoint, r request.View, tried []*endpoint.Endpoint) *endpoint.Endpoint {
	now := h.clock.now()
	key := h.key(r)
	if len(key) == 0 || len(set) == 0 {
		return pickRandom(set, tried, now, h.rnd)
	}
	rg := h.ringFor(set)
	i := rg.search(hashBytes(key))
	if e := set[rg.points[i].idx]; usable(e, tried, now) {
		return e
	}
	v, t, n := census(set, tried, now)
	if n == 0 {
		return nil
	}
	for k := range rg.points {
		e := set[rg.points[(i+k)%len(rg.points)].idx]
		if v.in(e, tried, t) {
			return e
		}
	}
	return nil // not reached: every endpoint has points
}

// key is what the request is hashed by.
func (h *RingHash) key(r request.View) []byte {
	switch {
	case r == nil:
		return nil
	case h.Header != "":
		return r.Header(h.Header)
	case h.Cookie != "":
		return r.Cookie(h.Cookie)
	case h.Source:
		return r.Source()
	}
	return nil
}

// ringFor is the ring of set, built if the one held is another set's.
func (h *RingHash) ringFor(set []*endpoint.Endpoint) *ring {
	if rg := h.ring.Load(); rg != nil && rg.key == &set[0] && rg.n == len(set) {
		return rg
	}
	h.build.Lock()
	defer h.build.Unlock()
	if rg := h.ring.Load(); rg != nil && rg.key == &set[0] && rg.n == len(set) {
		return rg // built while this Pick waited
	}
	rg := buildRing(set, h.vnodes())
	h.ring.Store(rg)
	return rg
}

func (h *RingHash) vnodes() int {
	if h.VirtualNodes > 0 {
		return min(h.VirtualNodes, MaxVirtualNodes)
	}
	return DefaultVirtualNodes
}

// buildRing places vnodes points for each endpoint of set. An endpoint's
// points depend only on its name, so the others stay where they are when
// it comes or goes.
func buildRing(set []*endpoint.Endpoint, vnodes int) *ring {
	pts := make([]point, 0, len(set)*vnodes)
	for i, e := range set {
		name := e.Instance
		if name == "" {
			name = e.Address
		}
		base := hashString(name)
		for v := range vnodes {
			pts = append(pts, point{hash: mix(base + uint64(v+1)*0x9e3779b97f4a7c15), idx: int32(i)})
		}
	}
	slices.SortFunc(pts, func(a, b point) int {
		switch {
		case a.hash < b.hash:
			return -1
		case a.hash > b.hash:
			return 1
		}
		return int(a.idx - b.idx)
	})
	return &ring{key: &set[0], n: len(set), points: pts}
}

// search is the index of the first point at or after h, round the ring.
func (rg *ring) search(h uint64) int {
	lo, hi := 0, len(rg.points)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if rg.points[m].hash < h {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == len(rg.points) {
		return 0
	}
	return lo
}

// FNV-1a, 64 bits.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func hashBytes(b []byte) uint64 {
	h := uint64(fnvOffset)
	for _, c := range b {
		h = (h ^ uint64(c)) * fnvPrime
	}
	return mix(h)
}

func hashString(s string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * fnvPrime
	}
	return mix(h)
}

// mix is MurmurHash3's 64-bit finaliser: FNV alone leaves similar inputs
// (i1, i2; keys differing in one byte) close on the ring.
func mix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
