package lb

import (
	"sync"
	"sync/atomic"

	"github.com/weftmesh/weft/internal/endpoint"
	"github.com/weftmesh/weft/internal/request"
)

// DefaultZoneLabel is the endpoint label Locality reads zones from.
const DefaultZoneLabel = "zone"

// DefaultMinReady is the share of a zone's endpoints that must be ready
// for Locality to keep a request in the zone.
const DefaultMinReady = 0.5

// Locality wraps a policy to prefer endpoints in the caller's zone: a
// request goes to Local's pick among the endpoints whose Label is Zone,
// and spills over to All's pick among every endpoint when the zone is
// unhealthy or overloaded:
//
//   - no endpoint of the zone is ready and untried, or fewer than
//     MinReady of them are (ejected, deferred or tried);
//   - Overload is set and the zone's ready endpoints have that many
//     attempts in flight on average.
//
// Local and All are two balancers of the same policy (their state is per
// set: the zone's, the whole one). With no Zone, or no endpoint in it,
// every request goes to All. The zone's endpoints are found when the set
// changes (by identity, as RingHash); Pick allocates nothing else.
type Locality struct {
	Zone     string  // the caller's zone ("": no preference)
	Label    string  // the label holding an endpoint's zone ("": DefaultZoneLabel)
	MinReady float64 // share of the zone that must be ready (0: DefaultMinReady)
	Overload float64 // mean in flight per ready endpoint that spills (0: never)
	Local    Balancer
	All      Balancer
	clock    clock

	zone  atomic.Pointer[zoneSet]
	build sync.Mutex
}

var _ Balancer = (*Locality)(nil)

// NewLocality returns a Locality for a caller in zone, picking with
// local in the zone and all when it spills over.
func NewLocality(zone string, local, all Balancer) *Locality {
	return &Locality{Zone: zone, Local: local, All: all}
}

// zoneSet is the endpoints of one set in the zone.
type zoneSet struct {
	key **endpoint.Endpoint
	n   int
	eps []*endpoint.Endpoint
}

// Pick returns Local's pick in the zone, or All's when the zone is
// unhealthy or overloaded.
func (l *Locality) Pick(set []*endpoint.Endpoint, r request.View, tried []*endpoint.Endpoint) *endpoint.Endpoint {
	if l.Zone == "" || len(set) == 0 {
		return l.All.Pick(set, r, tried)
	}
	local := l.zoneOf(set)
	if len(local) == 0 || l.spill(local, tried, l.clock.now()) {
		return l.All.Pick(set, r, tried)
	}
	return l.Local.Pick(local, r, tried)
}

// spill reports whether the zone's endpoints are too few ready, or too
// busy, to keep the request.
func (l *Locality) spill(local, tried []*endpoint.Endpoint, now int64) bool {
	ready, inflight := 0, 0
	for _, e := range local {
		if usable(e, tried, now) {
			ready++
			inflight += e.InFlight()
		}
	}
	minReady := l.MinReady
	if minReady <= 0 {
		minReady = DefaultMinReady
	}
	switch {
	case ready == 0, float64(ready) < minReady*float64(len(local)):
		return true
	case l.Overload > 0:
		return float64(inflight) >= l.Overload*float64(ready)
	}
	return false
}

// zoneOf is the endpoints of set in the zone, found again when the set
// changes.
func (l *Locality) zoneOf(set []*endpoint.Endpoint) []*endpoint.Endpoint {
	if z := l.zone.Load(); z != nil && z.key == &set[0] && z.n == len(set) {
		return z.eps
	}
	l.build.Lock()
	defer l.build.Unlock()
	if z := l.zone.Load(); z != nil && z.key == &set[0] && z.n == len(set) {
		return z.eps
	}
	label := l.Label
	if label == "" {
		label = DefaultZoneLabel
	}
	z := &zoneSet{key: &set[0], n: len(set)}
	for _, e := range set {
		if e.Labels[label] == l.Zone {
			z.eps = append(z.eps, e)
		}
	}
	l.zone.Store(z)
	return z.eps
}
