package http1

import (
	"errors"
	"os"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/internal/endpoint"
	"github.com/weftmesh/weft/internal/proxy/plan"
)

// longAgo is a read deadline in the past: it wakes a blocked read at once.
var longAgo = time.Unix(1, 0)

// race is the wait for the response to a request the plan may hedge
// (plan.Call.HedgeAfter gave d): the request, all of it in uc's buffer,
// goes out, and the first try waits up to d for its answer. If none has
// begun by then and the plan grants a hedge, the request goes to a second
// instance too; whichever answer begins first is relayed, and the other
// connection is closed. Both wait no longer than the first try's timeout.
func (ex *exchange) race(ep *plan.Endpoint, uc *upConn, d time.Duration) (keep, done, stale bool) {
	if err := uc.bw.Flush(); err != nil {
		return ex.sendFailed(uc, err)
	}
	uc.dl.Set(uc.Conn, ex.sentAt, d, 0) // (d is within the try's timeout: HedgeAfter)
	if _, err := uc.br.Peek(1); err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
		ex.responseDeadline(uc)
		return ex.receive(ep, uc, err)
	}
	ep2 := ex.k.Hedge(time.Since(ex.sentAt))
	if ep2 == nil {
		ex.responseDeadline(uc)
		return ex.receive(ep, uc, nil)
	}
	ex.responseDeadline(uc)
	lim := ex.k.ConnLimit()
	lim.Wait = 0 // a hedge that would wait for a connection is not sent
	uc2, err := h1Pool(ep2).get(false, ex.cc.start, lim)
	if err != nil {
		class := endpoint.ConnectFailed
		if errors.Is(err, endpoint.ErrConnLimit) {
			class = endpoint.Cancelled
		}
		ex.k.HedgeLost(class)
		return ex.receive(ep, uc, nil)
	}
	t, pass := ex.k.HedgeHopTimeout()
	writeRequestHead(uc2.bw, &ex.cc.req, ex.cc.IP, t, pass, ex.source(), ex.edits, ex.routed.Rewrite, ownFields{ex.cc.newID, ex.k.TraceParent(&ex.cc.tpBuf)})
	if ex.kept != nil {
		uc2.bw.Write(*ex.kept) // (an error shows in Flush)
	}
	if err := uc2.bw.Flush(); err != nil {
		uc2.close()
		ex.k.HedgeLost(endpoint.Reset)
		return ex.receive(ep, uc, nil)
	}
	if t := ex.k.TryTimeout(); t > 0 {
		uc2.dl.Set(uc2.Conn, ex.sentAt, t, 0)
	} else {
		uc2.dl.Clear(uc2.Conn)
	}

	// Both wait: the hedge on its own goroutine, the first try here. The
	// first answer to begin takes winner and wakes the other's read.
	var winner atomic.Int32 // 1: the first try, 2: the hedge
	hedged := make(chan error, 1)
	go func() {
		_, err := uc2.br.Peek(1)
		if err == nil && winner.CompareAndSwap(0, 2) {
			uc.Conn.SetReadDeadline(longAgo)
		}
		hedged <- err
	}()
	_, err = uc.br.Peek(1)
	if err == nil && winner.CompareAndSwap(0, 1) {
		uc2.Conn.SetReadDeadline(longAgo)
		herr := <-hedged
		uc2.close()
		if herr == nil || errors.Is(herr, os.ErrDeadlineExceeded) {
			ex.k.HedgeLost(endpoint.Outrun) // (woken, or timed out as the first try answered)
		} else {
			ex.k.HedgeLost(endpoint.Reset) // it had failed already
		}
		return ex.receive(ep, uc, nil)
	}
	herr := <-hedged
	if winner.Load() != 2 {
		// Both failed: the hedge is recorded, and the first try's failure
		// decides what follows.
		uc2.close()
		ex.k.HedgeLost(classOfRead(herr))
		return ex.receive(ep, uc, err)
	}
	uc.close()
	if !errors.Is(err, os.ErrDeadlineExceeded) { // (not the hedge's wake-up)
		ex.k.Failed(endpoint.Reset, err) // the first try broke before the hedge answered
	}
	ex.k.HedgeWon()
	keep, done, stale = ex.receive(ep2, uc2, nil)
	if stale { // (the hedge's answer had begun: a reused connection is not stale)
		ex.k.Failed(endpoint.Reset, errors.New("hedge connection closed"))
		stale = false
	}
	return keep, done, stale
}

// classOfRead is the class of a failed wait for a response.
func classOfRead(err error) endpoint.Class {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return endpoint.Timeout
	}
	return endpoint.Reset
}
