package stdhttp

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"time"

	"github.com/weftmesh/weft/internal/endpoint"
	"github.com/weftmesh/weft/internal/proxy/plan"
)

// trip is one attempt's round trip, as it ended.
type trip struct {
	resp  *http.Response
	err   error
	hedge bool
}

// hedgedTrip is roundTrip for a request the plan may hedge
// (plan.Call.HedgeAfter gave d): the first try goes to ep, and if it has
// not answered after d and the plan grants a hedge, a copy of the
// request goes to a second instance; the first answer wins and the other
// attempt is cancelled. It returns the answer (or the failure the plan
// is left with) and the instance it came from. body is r's (nil: none):
// the hedge gets it as kept, and only if the client has sent all of it
// by then. stop cancels the winner's attempt, once its response has
// been relayed.
func hedgedTrip(rt http.RoundTripper, r *http.Request, body *replayBody, k *plan.Call, ep *plan.Endpoint, d time.Duration) (resp *http.Response, from *plan.Endpoint, stop func(), err error) {
	ctx1, cancel1 := context.WithCancel(r.Context())
	ctx2, cancel2 := context.WithCancel(r.Context())
	stop = func() { cancel1(); cancel2() }
	done := make(chan trip, 2)
	t1 := k.TryTimeout() // (k is this goroutine's: the attempts read nothing of it)
	go func() {
		resp, err := roundTrip(rt, r.WithContext(ctx1), t1)
		done <- trip{resp: resp, err: err}
	}()
	timer := time.NewTimer(d)
	select {
	case t := <-done:
		timer.Stop()
		return t.resp, ep, stop, t.err
	case <-timer.C:
	}
	kept, whole := body.whole()
	var ep2 *plan.Endpoint
	if whole {
		ep2 = k.Hedge(d)
	}
	if ep2 == nil {
		t := <-done
		return t.resp, ep, stop, t.err
	}
	r2 := r.Clone(ctx2)
	if body != nil {
		r2.Body = io.NopCloser(bytes.NewReader(kept))
	}
	r2.URL.Host = ep2.Address
	t2 := k.HedgeTimeout()
	if t, pass := k.HedgeHopTimeout(); pass {
		r2.Header[timeoutKey] = []string{string(plan.AppendTimeoutHeader(nil, t))}
	}
	go func() {
		resp, err := roundTrip(rt, r2, t2)
		done <- trip{resp: resp, err: err, hedge: true}
	}()

	first := <-done
	if first.err != nil {
		// The first to end failed: the other may still answer.
		second := <-done
		if second.err != nil {
			// Both failed: the hedge is recorded, the first try's failure stands.
			primary, hedge := first, second
			if first.hedge {
				primary, hedge = second, first
			}
			k.HedgeLost(classOf(hedge.err))
			return nil, ep, stop, primary.err
		}
		if second.hedge {
			k.Failed(classOf(first.err), first.err)
			k.HedgeWon()
			return second.resp, ep2, stop, nil
		}
		k.HedgeLost(classOf(first.err))
		return second.resp, ep, stop, nil
	}
	// The first answer wins; the other attempt is cancelled and whatever
	// it brings is dropped.
	if first.hedge {
		cancel1()
		k.HedgeWon()
	} else {
		cancel2()
		k.HedgeLost(endpoint.Outrun)
	}
	go func() {
		if t := <-done; t.resp != nil {
			t.resp.Body.Close()
		}
	}()
	if first.hedge {
		return first.resp, ep2, stop, nil
	}
	return first.resp, ep, stop, nil
}
