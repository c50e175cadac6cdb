package e2e

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtest"
)

// TestHedgingCutsTheTail: three instances, one of them 250 ms slow on
// 10% of its requests. Without hedging the p99 of 600 requests is that
// delay; with hedging after 40 ms (at most 10% of requests) the slow
// answers are overtaken by a hedge to another instance, so the p99 falls
// well under it, and the instances get at most 10% more requests than
// were sent, as the hedges counted in /metrics say.
func TestHedgingCutsTheTail(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "hedgesvc", 3, nil, nil)
	roundRobin(t, f.m, f.cp, f.consumer, "hedgesvc")
	fault(t, f.apps[0], "delay=250ms&share=0.1")
	const n = 600

	before := f.latencies(t, n, 4)
	if p := percentile(before, 99); p < 250*time.Millisecond {
		t.Fatalf("without hedging the p99 is %v, want the slow answers' 250 ms (the fault is not in force?)", p)
	}

	applyPolicy(t, f.m, f.cp, f.consumer, "hedgesvc",
		"  loadBalancer: {policy: random}\n  hedging: {delay: 40ms, maxPercent: 10}\n", "random")
	sent := inboundRequests(f)
	after := f.latencies(t, n, 4)
	p99 := percentile(after, 99)
	if p99 >= 150*time.Millisecond {
		t.Errorf("with hedging after 40 ms the p99 is %v (%v without), want under 150 ms", p99, percentile(before, 99))
	}
	hedges := 0.0
	for _, outcome := range []string{"won", "lost", "failed"} {
		if v := f.consumer.Metric(fmt.Sprintf(`weft_hedges_total{outcome=%q,service="hedgesvc"}`, outcome)); v > 0 {
			hedges += v
		}
	}
	extra := inboundRequests(f) - sent - n
	t.Logf("p99 %v without hedging, %v with; %v hedges sent for %d requests; the instances got %v more requests than were sent",
		percentile(before, 99), p99, hedges, n, extra)
	if hedges < 5 || hedges > 0.10*n {
		t.Errorf("%v hedges for %d requests, want some, and at most 10%% (hedging.maxPercent)", hedges, n)
	}
	if extra > 0.10*n {
		t.Errorf("the instances got %v requests more than the %d sent, want at most 10%%", extra, n)
	}
}

// latencies sends n GETs through the consumer from workers concurrent
// callers and returns how long each took; every answer must be a 200.
func (f *fleet) latencies(t *testing.T, n, workers int) []time.Duration {
	t.Helper()
	c := meshtest.ProxyClient(f.consumer.Outbound)
	defer c.CloseIdleConnections()
	var (
		mu   sync.Mutex
		took []time.Duration
		bad  []string
		next atomic.Int64
		wg   sync.WaitGroup
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				start := time.Now()
				resp, err := c.Get("http://" + f.service + "/")
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				d := time.Since(start)
				mu.Lock()
				switch {
				case err != nil:
					bad = append(bad, err.Error())
				case resp.StatusCode != 200:
					bad = append(bad, resp.Status)
				default:
					took = append(took, d)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(bad) > 0 {
		t.Fatalf("%d of %d requests failed: %v", len(bad), n, bad[:min(len(bad), 5)])
	}
	return took
}

// percentile is the p-th percentile of ds (nearest rank).
func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// inboundRequests is how many requests the fleet's providers have taken
// in, whatever their outcome, from their sidecars' /metrics.
func inboundRequests(f *fleet) float64 {
	total := 0.0
	for _, p := range f.providers {
		total += metricSum(p.Admin, "weft_requests_total", `direction="inbound"`)
	}
	return total
}

// metricSum is the sum of the samples of metric name in a sidecar's
// /metrics whose labels contain every one of labels (name="value").
func metricSum(admin, name string, labels ...string) float64 {
	_, body := meshtest.Get("http://" + admin + "/metrics")
	total := 0.0
lines:
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(line, l) {
				continue lines
			}
		}
		var v float64
		if _, err := fmt.Sscanf(line[strings.LastIndexByte(line, ' ')+1:], "%g", &v); err == nil {
			total += v
		}
	}
	return total
}
