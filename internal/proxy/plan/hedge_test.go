package plan

import (
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/endpoint"
	"github.com/weftmesh/weft/internal/request"
	"github.com/weftmesh/weft/internal/snapshot"
)

// methodView is a request with a method, no body and no header.
type methodView struct {
	request.View
	method string
	grpc   bool
}

func (v methodView) Method() []byte       { return []byte(v.method) }
func (v methodView) Header(string) []byte { return nil }
func (v methodView) Replayable() bool     { return request.Safe(v.Method()) }
func (v methodView) GRPC() bool           { return v.grpc }

func hedging(delay time.Duration, percentile int, maxPercent float64) snapshot.Policy {
	return policy(func(p *snapshot.Policy) {
		p.Hedging = snapshot.Hedging{Enabled: true, Delay: delay, Percentile: percentile, MaxPercent: maxPercent}
		p.Retries.Budget = snapshot.RetryBudget{Percent: 100, MinPerSecond: 1000, Window: 10 * time.Second}
	})
}

// Which requests are hedged, and after how long.
func TestHedgeAfter(t *testing.T) {
	c := tableWith(t, hedging(20*time.Millisecond, 0, 100), 3)
	for _, v := range []struct {
		view   methodView
		resend bool
		want   bool
	}{
		{methodView{method: "GET"}, true, true},
		{methodView{method: "PUT"}, true, true},
		{methodView{method: "POST"}, true, false},
		{methodView{method: "POST", grpc: true}, true, true},
		{methodView{method: "GET"}, false, false}, // the engine cannot send it again
	} {
		var k Call
		k.Init(c, v.view, time.Now())
		if k.Next() == nil {
			t.Fatal("no endpoint")
		}
		d, ok := k.HedgeAfter(v.resend)
		if ok != v.want || ok && d != 20*time.Millisecond {
			t.Errorf("%s grpc=%t resend=%t: HedgeAfter %v %t, want %t after 20ms", v.view.method, v.view.grpc, v.resend, d, ok, v.want)
		}
		k.Cancelled()
	}
	// One instance: nowhere to hedge to.
	one := tableWith(t, hedging(20*time.Millisecond, 0, 100), 1)
	var k Call
	k.Init(one, methodView{method: "GET"}, time.Now())
	k.Next()
	if _, ok := k.HedgeAfter(true); ok {
		t.Error("a service with one instance hedges")
	}
	k.Cancelled()
	// A percentile delay waits for samples: the p90 of 100 answers.
	pc := tableWith(t, hedging(0, 90, 100), 3)
	for i := range 100 {
		var k Call
		k.Init(pc, methodView{method: "GET"}, time.Now())
		k.Next()
		if i == 0 {
			if _, ok := k.HedgeAfter(true); ok {
				t.Error("a percentile delay with no samples hedges")
			}
		}
		k.att = k.Endpoint().BeginAt(time.Now().Add(-time.Duration(i+1) * time.Millisecond)) // an answer after i+1 ms
		k.OK()
	}
	k.Init(pc, methodView{method: "GET"}, time.Now())
	k.Next()
	if d, ok := k.HedgeAfter(true); !ok || d < 80*time.Millisecond || d > 100*time.Millisecond {
		t.Errorf("p90 of answers after 1..100 ms: hedge after %v %t, want about 90ms", d, ok)
	}
	k.Cancelled()
}

// A hedge races the first try; the loser is recorded Outrun and nothing
// stays in flight, whichever wins; Endpoint is the winner's.
func TestHedgeRace(t *testing.T) {
	c := tableWith(t, hedging(time.Millisecond, 0, 100), 3)
	for _, hedgeWins := range []bool{true, false} {
		var k Call
		k.Init(c, methodView{method: "GET"}, time.Now())
		first := k.Next()
		if _, ok := k.HedgeAfter(true); !ok {
			t.Fatal("not hedged")
		}
		second := k.Hedge(time.Millisecond)
		if second == nil || second == first || !k.Racing() || k.Attempts() != 2 {
			t.Fatalf("Hedge: %v (first %v), racing %t, attempts %d", second, first, k.Racing(), k.Attempts())
		}
		if first.InFlight() != 1 || second.InFlight() != 1 {
			t.Fatalf("in flight while racing: %d and %d, want 1 each", first.InFlight(), second.InFlight())
		}
		want := first
		if hedgeWins {
			k.HedgeWon()
			want = second
		} else {
			k.HedgeLost(endpoint.Outrun)
		}
		if k.Endpoint() != want || k.Racing() {
			t.Errorf("hedge wins %t: current endpoint %v, racing %t, want %v", hedgeWins, k.Endpoint().Instance, k.Racing(), want.Instance)
		}
		k.OK()
		if first.InFlight() != 0 || second.InFlight() != 0 {
			t.Errorf("hedge wins %t: in flight after the race %d and %d, want 0", hedgeWins, first.InFlight(), second.InFlight())
		}
		if _, ok := k.HedgeAfter(true); ok {
			t.Error("a second hedge offered")
		}
	}
}

// hedging.maxPercent bounds the hedges to a share of requests.
func TestHedgeShare(t *testing.T) {
	c := tableWith(t, hedging(time.Millisecond, 0, 10), 3)
	granted := 0
	for range 1000 {
		var k Call
		k.Init(c, methodView{method: "GET"}, time.Now())
		k.Next()
		if _, ok := k.HedgeAfter(true); ok && k.Hedge(time.Millisecond) != nil {
			granted++
			k.HedgeLost(endpoint.Outrun)
		}
		k.OK()
	}
	if granted < 90 || granted > 100 {
		t.Errorf("%d of 1000 requests hedged, want 10%% (maxPercent), and no more", granted)
	}
}
