package plan

import (
	"bufio"
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/endpoint"
	"github.com/weftmesh/weft/internal/request"
	"github.com/weftmesh/weft/internal/snapshot"
)

// tableWith is a table holding service svc with n ready endpoints under
// policy p.
func tableWith(t *testing.T, p snapshot.Policy, n int) *Cluster {
	t.Helper()
	svc := &snapshot.Service{Name: "svc", Policy: p}
	for i := range n {
		svc.Endpoints = append(svc.Endpoints, snapshot.Endpoint{Instance: "svc-" + string(rune('a'+i)),
			Address: "127.0.0.1:" + string(rune('1'+i)), Ready: true})
	}
	tb := NewTable(nil, Policy{})
	if errs := tb.Update(&snapshot.Snapshot{Services: map[string]*snapshot.Service{"svc": svc}}); len(errs) > 0 {
		t.Fatal(errs)
	}
	return tb.Lookup("svc")
}

func policy(edit func(*snapshot.Policy)) snapshot.Policy {
	p := snapshot.DefaultPolicy()
	p.Resource = "TrafficPolicy/svc"
	p.LoadBalancer.Policy = "round-robin"
	edit(&p)
	return p
}

// replayable is a GET without a body.
type replayable struct{ request.View }

func (replayable) Replayable() bool { return true }

func TestPolicyBuildsTheCluster(t *testing.T) {
	c := tableWith(t, policy(func(p *snapshot.Policy) {
		p.Timeouts.Request, p.Timeouts.PerTry = 2*time.Second, 500*time.Millisecond
		p.Retries.Attempts = 4
		p.CircuitBreaker.MaxRequests = 7
	}), 2)
	if c.Overall != 2*time.Second || c.Timeout != 500*time.Millisecond || !c.PerTry || c.MaxAttempts != 4 || c.MaxRequests != 7 {
		t.Errorf("cluster: overall %s timeout %s perTry %t attempts %d maxRequests %d, want 2s 500ms true 4 7",
			c.Overall, c.Timeout, c.PerTry, c.MaxAttempts, c.MaxRequests)
	}
	// Without a TrafficPolicy the sidecar's --timeout bounds each try, and
	// nothing bounds the whole request.
	tb := NewTable(nil, Policy{Timeout: time.Second})
	d := snapshot.DefaultPolicy()
	tb.Update(&snapshot.Snapshot{Services: map[string]*snapshot.Service{"svc": {Name: "svc", Policy: d}}})
	if c := tb.Lookup("svc"); c.Timeout != time.Second || c.Overall != 0 {
		t.Errorf("no TrafficPolicy: timeout %s overall %s, want --timeout 1s and none", c.Timeout, c.Overall)
	}
}

func TestStatusRetryGoesElsewhereWithinTheBudget(t *testing.T) {
	c := tableWith(t, policy(func(p *snapshot.Policy) {}), 3)
	var k Call
	k.Init(c, replayable{request.None}, time.Now())
	first := k.Next()
	if !k.RetryStatus(endpoint.HTTPStatus(503), false) || !k.Again(false) {
		t.Fatal("a 503 to a GET: not retried")
	}
	second := k.Next()
	if second == nil || second == first {
		t.Fatalf("retry went to %v, want another endpoint than %s", second, first.Instance)
	}
	if k.RetryStatus(endpoint.HTTPStatus(500), false) {
		t.Error("500 is not in the default retries.on, but was retried")
	}
	k.Answered(endpoint.HTTPStatus(200), 0)
	k.OK()
	if st := first.Stats(); st.Failures != 1 {
		t.Errorf("endpoint answering 503: %d failures, want 1 (the status is recorded)", st.Failures)
	}

	// A request with a body is not retried on a status.
	k.Init(c, request.None, time.Now())
	k.Next()
	if k.RetryStatus(endpoint.HTTPStatus(503), false) {
		t.Error("a non-replayable request was retried on 503")
	}
	k.Cancelled()
}

func TestRetryBudgetIsSpent(t *testing.T) {
	c := tableWith(t, policy(func(p *snapshot.Policy) {
		p.Retries.Budget.Percent, p.Retries.Budget.MinPerSecond = 0, 1 // 10 retries over the 10 s window
	}), 2)
	granted := 0
	for range 50 {
		var k Call
		k.Init(c, replayable{request.None}, time.Now())
		k.Next()
		if k.RetryStatus(endpoint.HTTPStatus(503), false) {
			granted++
			k.Again(false)
			k.Next()
		}
		k.Cancelled()
	}
	if granted == 0 || granted > 11 {
		t.Errorf("%d of 50 retries granted with a budget of 1/s over 10s, want 1 to 11", granted)
	}
}

func TestAdmission(t *testing.T) {
	c := tableWith(t, policy(func(p *snapshot.Policy) {
		p.RateLimit.Client = snapshot.RateLimit{Enabled: true, RequestsPerSecond: 1, Burst: 2}
	}), 1)
	start := time.Now()
	for i := range 3 {
		var k Call
		k.Init(c, request.None, start)
		ep := k.Next()
		if i < 2 && ep == nil {
			t.Fatalf("request %d within the burst: refused: %v", i, k.Result())
		}
		if i == 2 {
			e := k.Result()
			if ep != nil || e.Status != http.StatusTooManyRequests || e.Reason != ReasonRateLimited || e.RetryAfter != "1" {
				t.Fatalf("over the limit: endpoint %v, answer %+v; want 429 rate-limited, Retry-After 1", ep, e)
			}
			var b bytes.Buffer
			w := bufio.NewWriter(&b)
			e.WriteH1(w, false)
			w.Flush()
			if !strings.Contains(b.String(), "\r\nRetry-After: 1\r\n") {
				t.Errorf("the 429 written: %q, want a Retry-After header", b.String())
			}
		} else {
			k.OK()
		}
	}
}

func TestBreakerOpensAndFallback(t *testing.T) {
	c := tableWith(t, policy(func(p *snapshot.Policy) {
		p.CircuitBreaker.FailureRatio, p.CircuitBreaker.MinRequests, p.CircuitBreaker.OpenFor = 0.5, 4, time.Hour
		p.Fallback = snapshot.Fallback{Enabled: true, Status: 200, Headers: map[string]string{"Content-Type": "application/json"}, Body: `{"degraded":true}`}
	}), 1)
	for range 4 {
		var k Call
		k.Init(c, request.None, time.Now())
		k.Next()
		k.Answered(endpoint.HTTPStatus(500), 0)
		k.OK()
	}
	var k Call
	k.Init(c, request.None, time.Now())
	if ep := k.Next(); ep != nil {
		t.Fatalf("after 4 of 4 failing: picked %s, want the circuit open", ep.Instance)
	}
	e := k.Result()
	if e.Reason != ReasonCircuitOpen || e.Fallback == nil {
		t.Fatalf("circuit open: %+v, want circuit-open with the fallback", e)
	}
	rec := httptest.NewRecorder()
	if status := e.WriteStd(rec, false); status != 200 || rec.Body.String() != `{"degraded":true}` ||
		rec.Header().Get("Content-Type") != "application/json" || rec.Header().Get(HeaderError) != ReasonCircuitOpen {
		t.Errorf("fallback answer: %d %v %q", status, rec.Header(), rec.Body.String())
	}
}

func TestMaxRequestsPassesOverFullEndpoints(t *testing.T) {
	c := tableWith(t, policy(func(p *snapshot.Policy) { p.CircuitBreaker.MaxRequests = 1 }), 2)
	var a, b, d Call
	a.Init(c, request.None, time.Now())
	b.Init(c, request.None, time.Now())
	d.Init(c, request.None, time.Now())
	ea, eb := a.Next(), b.Next()
	if ea == nil || eb == nil || ea == eb {
		t.Fatalf("two requests with maxRequests 1: %v %v, want one on each endpoint", ea, eb)
	}
	if ep := d.Next(); ep != nil || d.Result().Reason != ReasonCircuitOpen {
		t.Errorf("a third with both full: %v %+v, want none and circuit-open", ep, d.Result())
	}
	a.OK()
	b.OK()
}

func TestServerLimited(t *testing.T) {
	app := NewCluster("svc", []*Endpoint{endpoint.New("svc", "svc-1", "127.0.0.1:1", nil)}, 0, nil)
	rl := snapshot.RateLimit{Enabled: true, RequestsPerSecond: 1, Burst: 1}
	lim, err := app.ServerLimited(rl, snapshot.RateLimit{})
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := lim.ServerLimited(rl, snapshot.RateLimit{}); again != lim {
		t.Error("the same limit again: a new cluster (and bucket), want the same")
	}
	if lim.Endpoints[0] != app.Endpoints[0] {
		t.Error("the limited cluster has another endpoint: its state would be lost")
	}
	var k Call
	k.Init(lim, request.None, time.Now())
	if k.Next() == nil {
		t.Fatal("first request refused")
	}
	k.OK()
	k.Init(lim, request.None, time.Now())
	if k.Next() != nil || k.Result().Reason != ReasonRateLimited {
		t.Errorf("second within the second: %+v, want rate-limited", k.Result())
	}
	if off, _ := lim.ServerLimited(snapshot.RateLimit{}, snapshot.RateLimit{}); off.guard != nil {
		t.Error("limit off: still limited")
	}
}

// fromSource is a request naming its calling service in SourceHeader.
type fromSource struct {
	request.View
	source string
}

func (v fromSource) Header(name string) []byte {
	if name == SourceHeader && v.source != "" {
		return []byte(v.source)
	}
	return nil
}

// rateLimit.server.perSource: each calling service has its own bucket,
// and requests that name none share one.
func TestServerLimitedPerSource(t *testing.T) {
	app := NewCluster("svc", []*Endpoint{endpoint.New("svc", "svc-1", "127.0.0.1:1", nil)}, 0, nil)
	lim, err := app.ServerLimited(snapshot.RateLimit{}, snapshot.RateLimit{Enabled: true, RequestsPerSecond: 1, Burst: 2})
	if err != nil {
		t.Fatal(err)
	}
	admitted := map[string]int{}
	var last *MeshError
	for _, src := range []string{"web", "web", "web", "batch", "batch", "batch", "", "", ""} {
		var k Call
		k.Init(lim, fromSource{View: request.None, source: src}, time.Now())
		if k.Next() != nil {
			admitted[src]++
			k.OK()
		} else if last = k.Result(); last.Reason != ReasonRateLimited {
			t.Fatalf("%q refused with %+v, want rate-limited", src, last)
		}
	}
	if admitted["web"] != 2 || admitted["batch"] != 2 || admitted[""] != 2 {
		t.Errorf("admitted %v, want 2 (the burst) for each source and for requests naming none", admitted)
	}
	if last == nil || !strings.Contains(last.Message, "callers that name no source") || last.RetryAfter == "" {
		t.Errorf("the refusal of a request naming no source: %+v, want it named, with Retry-After", last)
	}
}

func TestRetryAfter(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
	}{{"", 0}, {"3", 3 * time.Second}, {"-1", 0}, {"soon", 0}} {
		if got := RetryAfter(c.in); got != c.want {
			t.Errorf("RetryAfter(%q) = %s, want %s", c.in, got, c.want)
		}
	}
	if got := RetryAfter(time.Now().Add(time.Minute).UTC().Format(http.TimeFormat)); got < 58*time.Second || got > time.Minute {
		t.Errorf("an HTTP date a minute away: %s", got)
	}
}
