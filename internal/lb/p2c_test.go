package lb

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/endpoint"
	"github.com/weftmesh/weft/internal/request"
)

// behaviour is how a simulated instance answers: after latency, with
// status (0: a plain success).
type behaviour struct {
	latency time.Duration
	status  endpoint.Status
}

// sim runs requests through a balancer in simulated time: one arrives
// every gap; each attempt lasts its instance's latency and ends with its
// outcome. The balancer's clock and the attempts' times are the
// simulation's, so decay and in flight are as in a real run, without
// waiting.
type sim struct {
	now     int64
	eps     []*endpoint.Endpoint
	behave  []behaviour
	pending []pending
}

type pending struct {
	end int64
	a   endpoint.Attempt
	o   endpoint.Outcome
}

func newSim(eps []*endpoint.Endpoint, behave ...behaviour) *sim {
	return &sim{now: time.Now().UnixNano(), eps: eps, behave: behave}
}

// run sends n requests through b, one every gap, and counts the picks.
func (s *sim) run(b Balancer, n int, gap time.Duration) map[string]int {
	got := map[string]int{}
	for range n {
		s.now += int64(gap)
		s.finish()
		e := b.Pick(s.eps, request.None, nil)
		got[e.Instance]++
		bh := s.behave[slices.Index(s.eps, e)]
		a := e.BeginAt(time.Unix(0, s.now))
		s.pending = append(s.pending, pending{end: s.now + int64(bh.latency), a: a,
			o: endpoint.Outcome{Class: endpoint.Success, Latency: bh.latency, Status: bh.status}})
	}
	return got
}

// finish ends the attempts due by now, in the order they end.
func (s *sim) finish() {
	slices.SortFunc(s.pending, func(a, b pending) int { return int(a.end - b.end) })
	i := 0
	for ; i < len(s.pending) && s.pending[i].end <= s.now; i++ {
		s.pending[i].a.Done(s.pending[i].o)
	}
	s.pending = slices.Delete(s.pending, 0, i)
}

// warm gives endpoint i a history of successes of latency lat ending now.
func (s *sim) warm(i int, lat time.Duration) {
	a := s.eps[i].BeginAt(time.Unix(0, s.now-int64(lat)))
	a.Done(endpoint.Outcome{Class: endpoint.Success, Latency: lat})
}

func (s *sim) clock() int64 { return s.now }

const ms = time.Millisecond

// An instance ten times slower gets little of the traffic: one request a
// millisecond keeps about ten in flight, and the fast two stay cheaper.
func TestP2CAvoidsASlowInstance(t *testing.T) {
	s := newSim(set(3), behaviour{latency: 10 * ms}, behaviour{latency: 10 * ms}, behaviour{latency: 100 * ms})
	p := NewP2C(7)
	p.clock = s.clock
	got := s.run(p, 10000, ms)
	t.Logf("picks: %s", show(got))
	if got["i2"] >= 1000 {
		t.Errorf("picks of the 10x slower instance: got %d of 10000, want < 10%%", got["i2"])
	}
}

// An instance that answers 503 at once looks like the fastest to a plain
// peak EWMA; with the failure penalty it gets little traffic.
func TestP2CAvoidsAnInstanceFailingFast(t *testing.T) {
	run := func(b Balancer, clock *clock) map[string]int {
		s := newSim(set(3), behaviour{latency: 10 * ms}, behaviour{latency: 10 * ms},
			behaviour{latency: ms, status: endpoint.HTTPStatus(503)})
		s.warm(0, 10*ms)
		s.warm(1, 10*ms)
		s.warm(2, ms) // it was fast and healthy before it began to fail
		*clock = s.clock
		return s.run(b, 10000, ms)
	}
	p := NewP2C(7)
	got := run(p, &p.clock)
	t.Logf("with the penalty: %s", show(got))
	if got["i2"] >= 500 {
		t.Errorf("picks of the instance failing fast: got %d of 10000, want < 5%%", got["i2"])
	}
	plain := &plainP2C{rnd: newRand(7)}
	gotPlain := run(plain, &plain.clock)
	t.Logf("plain peak EWMA: %s", show(gotPlain))
	if gotPlain["i2"] < 3000 {
		t.Errorf("plain peak EWMA, picks of the instance failing fast: got %d of 10000, want > 30%% (the problem the penalty solves)", gotPlain["i2"])
	}
}

// plainP2C is P2C without the failure penalty, for comparison.
type plainP2C struct {
	rnd   *rand.Rand
	clock clock
}

func (p *plainP2C) Pick(set []*endpoint.Endpoint, _ request.View, tried []*endpoint.Endpoint) *endpoint.Endpoint {
	return pickTwo(set, tried, p.clock.now(), p.rnd, func(e *endpoint.Endpoint, now int64) float64 {
		return float64(e.PeakLatency(now)) * float64(e.InFlight()+1)
	})
}

// Once a failing instance heals, its estimates decay and it is tried
// again; being the fastest, it wins back the most traffic.
func TestP2CReturnsToAHealedInstance(t *testing.T) {
	s := newSim(set(3), behaviour{latency: 10 * ms}, behaviour{latency: 10 * ms},
		behaviour{latency: ms, status: endpoint.GRPCStatus(14)})
	s.warm(0, 10*ms)
	s.warm(1, 10*ms)
	s.warm(2, ms)
	p := NewP2C(7)
	p.clock = s.clock
	failing := s.run(p, 10000, ms)
	s.behave[2] = behaviour{latency: ms}
	s.run(p, 20000, ms)
	healed := s.run(p, 10000, ms)
	t.Logf("failing: %s; healed, 20 s on: %s", show(failing), show(healed))
	if healed["i2"] < 4000 {
		t.Errorf("picks of the healed, fastest instance: got %d of 10000, want > 40%%", healed["i2"])
	}
}

func TestP2CCost(t *testing.T) {
	now := time.Now()
	// ep is an endpoint whose history ends now: successes of lat, then
	// failures fast 503s, with inflight attempts open.
	ep := func(lat time.Duration, failures, inflight int) *endpoint.Endpoint {
		e := set(1)[0]
		a := e.BeginAt(now.Add(-lat))
		a.Done(endpoint.Outcome{Class: endpoint.Success, Latency: lat})
		for range failures {
			a := e.BeginAt(now.Add(-ms))
			a.Done(endpoint.Outcome{Class: endpoint.Success, Latency: ms, Status: endpoint.HTTPStatus(503)})
		}
		for range inflight {
			e.BeginAt(now)
		}
		return e
	}
	tests := []struct {
		name     string
		a, b     *endpoint.Endpoint
		wantCost [2]float64 // ms
		wantB    bool       // b is cheaper
	}{
		{"the faster wins", ep(10*ms, 0, 0), ep(20*ms, 0, 0), [2]float64{10, 20}, false},
		{"in flight weighs: 10ms with 2 in flight costs 30ms", ep(10*ms, 0, 2), ep(20*ms, 0, 0), [2]float64{30, 20}, true},
		{"one failure in eight costs 2.43x", ep(10*ms, 1, 0), ep(20*ms, 0, 0), [2]float64{10 * (1 + 10.0/7), 20}, true},
		{"a 10x faster instance failing half the time loses",
			ep(ms, 5, 0), ep(10*ms, 0, 0), [2]float64{1 + 10*(1-math.Pow(7.0/8, 5))/math.Pow(7.0/8, 5), 10}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := now.UnixNano()
			for i, e := range []*endpoint.Endpoint{tt.a, tt.b} {
				if got := peakCost(e, n) / float64(ms); math.Abs(got-tt.wantCost[i]) > 0.001*tt.wantCost[i] {
					t.Errorf("cost of endpoint %d: got %.3fms, want %.3fms", i, got, tt.wantCost[i])
				}
			}
			p := NewP2C(3)
			p.clock = func() int64 { return n }
			for range 20 { // two endpoints: every draw is the pair, in either order
				if e := p.Pick([]*endpoint.Endpoint{tt.a, tt.b}, request.None, nil); (e == tt.b) != tt.wantB {
					t.Fatalf("pick: got the second %v, want the second %v", e == tt.b, tt.wantB)
				}
			}
		})
	}
}

// LeastRequest never sends to the endpoint with many requests in flight
// while two idle ones are there, and splits between those.
func TestLeastRequestAvoidsTheBusyOne(t *testing.T) {
	eps := set(3)
	for range 10 {
		eps[2].Begin()
	}
	got := pick(NewLeastRequest(5), eps, request.None, nil, 10000)
	if got["i2"] != 0 || got["i0"] < 4000 || got["i1"] < 4000 {
		t.Errorf("picks with i2 busy (10 in flight): got %s, want i2:0 and over 4000 each for i0, i1", show(got))
	}
}

// With the same seed, two balancers make the same picks.
func TestSeedRepeats(t *testing.T) {
	eps := set(10)
	prime(eps, 10*ms)
	a, b := NewRandom(42), NewRandom(42)
	for i := range 100 {
		if x, y := a.Pick(eps, request.None, nil), b.Pick(eps, request.None, nil); x != y {
			t.Fatalf("pick %d: got %s and %s, want the same", i, x.Instance, y.Instance)
		}
	}
}

// An endpoint with no sample yet, or none for the decay time, is priced
// at the latency of the one it is drawn with: a new instance gets traffic
// at once, and one that lost its traffic to a slow spell is tried again
// once its estimate is stale, not only once it has decayed below the
// others'.
func TestP2CTriesStaleEndpoints(t *testing.T) {
	start := time.Now()
	fast := endpoint.New("svc", "fast", "a:1", nil)
	a := fast.BeginAt(start)
	a.Done(endpoint.Outcome{Class: endpoint.Success, Latency: time.Millisecond})
	fresh := endpoint.New("svc", "new", "b:1", nil)
	p := NewP2C(7)
	at := start.Add(2 * time.Millisecond).UnixNano()
	p.clock = func() int64 { return at }
	set := []*endpoint.Endpoint{fast, fresh}
	// Two endpoints: every draw is the pair. Equal prices: the first drawn
	// wins, so both are picked.
	picked := map[*endpoint.Endpoint]int{}
	for range 40 {
		picked[p.Pick(set, request.None, nil)]++
	}
	if picked[fresh] == 0 || picked[fast] == 0 {
		t.Errorf("a new endpoint beside a sampled 1ms one: picks %v, want both picked", picked)
	}

	// A slow spell: 200ms answers raise the estimate at once.
	slow := fresh.BeginAt(start)
	slow.Done(endpoint.Outcome{Class: endpoint.Success, Latency: 200 * time.Millisecond})
	at = start.Add(time.Second).UnixNano()
	for range 40 {
		if e := p.Pick(set, request.None, nil); e != fast {
			t.Fatalf("1s after a 200ms answer: picked %s, want the fast endpoint", e.Instance)
		}
	}
	// After the decay time with no sample it is stale, and tried again.
	at = start.Add(endpoint.DefaultDecay + time.Second).UnixNano()
	fa := fast.BeginAt(time.Unix(0, at))
	fa.Done(endpoint.Outcome{Class: endpoint.Success, Latency: time.Millisecond}) // the fast one stays fresh
	got := 0
	for range 40 {
		if p.Pick(set, request.None, nil) == fresh {
			got++
		}
	}
	if got == 0 {
		t.Errorf("an endpoint with no sample for the decay time: never picked, want it tried again")
	}
}

// An instance whose requests have been in flight longer than its
// estimate says is priced by their age: it stops getting traffic before
// the first slow answer comes back.
func TestP2CPricesPendingAge(t *testing.T) {
	start := time.Now()
	a := endpoint.New("svc", "a", "a:1", nil)
	b := endpoint.New("svc", "b", "b:1", nil)
	for _, e := range []*endpoint.Endpoint{a, b} {
		at := e.BeginAt(start)
		at.Done(endpoint.Outcome{Class: endpoint.Success, Latency: time.Millisecond})
	}
	hung := b.BeginAt(start.Add(2 * time.Millisecond)) // b turned slow: this one does not come back
	defer hung.Done(endpoint.Outcome{Class: endpoint.Cancelled})
	p := NewP2C(5)
	at := start.Add(500 * time.Millisecond).UnixNano()
	p.clock = func() int64 { return at }
	busy := a.BeginAt(time.Unix(0, at)) // as many in flight on a, just begun: only the age tells them apart
	defer busy.Done(endpoint.Outcome{Class: endpoint.Cancelled})
	if age := b.PendingAge(at); age < 497*time.Millisecond || age > 499*time.Millisecond {
		t.Fatalf("PendingAge: %s, want 498ms", age)
	}
	for range 40 {
		if e := p.Pick([]*endpoint.Endpoint{a, b}, request.None, nil); e != a {
			t.Fatalf("b has had a request in flight for 498ms against a 1ms estimate: picked b, want a")
		}
	}
}
