package alert

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/weftmesh/weft/internal/config"
)

// received is one request a receiver got.
type received struct {
	note       Notification
	body       []byte
	ts, sig    string
	validSig   bool
	decodedErr error
}

// receiver is a webhook that checks signatures with secret and answers
// with the statuses in answers, then 200.
type receiver struct {
	srv     *httptest.Server
	got     chan received
	mu      sync.Mutex
	answers []int
}

func newReceiver(t *testing.T, secret string, answers ...int) *receiver {
	t.Helper()
	rc := &receiver{got: make(chan received, 16), answers: answers}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		x := received{body: body, ts: r.Header.Get(TimestampHeader), sig: r.Header.Get(SignatureHeader)}
		x.validSig = Verify([]byte(secret), x.ts, body, x.sig)
		x.decodedErr = json.Unmarshal(body, &x.note)
		rc.mu.Lock()
		code := http.StatusOK
		if len(rc.answers) > 0 {
			code, rc.answers = rc.answers[0], rc.answers[1:]
		}
		rc.mu.Unlock()
		w.WriteHeader(code)
		rc.got <- x
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) next(t *testing.T) received {
	t.Helper()
	select {
	case x := <-rc.got:
		if x.decodedErr != nil {
			t.Fatalf("notification body %q: %v", x.body, x.decodedErr)
		}
		return x
	case <-time.After(10 * time.Second):
		t.Fatal("no notification within 10s")
	}
	return received{}
}

// run starts the rig's notifier workers and stops them when the test ends.
func (r *rig) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	r.e.out.start(ctx, &wg)
	t.Cleanup(func() { cancel(); wg.Wait() })
}

func fastRetries() Config {
	return Config{Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Timeout: 5 * time.Second}
}

func TestWebhookGetsSignedFiringAndResolved(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "secret")
	if err := os.WriteFile(file, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rc := newReceiver(t, "s3cret")
	a := successRule("catalog-errors", 0)
	a.Summary = "catalog fails"
	a.Webhooks = []config.AlertWebhook{{URL: rc.srv.URL + "/hook", SecretRef: &config.SecretRef{File: file}}}
	r := newRig(t, fastRetries(), a)
	r.run(t)
	ctx := context.Background()
	t0 := time.Now().Truncate(time.Second)

	r.q.setService("catalog", served(100, 20))
	r.e.Evaluate(ctx, t0)
	x := rc.next(t)
	if !x.validSig {
		t.Errorf("firing: signature %q over timestamp %q does not verify", x.sig, x.ts)
	}
	if ts, err := strconv.ParseInt(x.ts, 10, 64); err != nil || time.Since(time.Unix(ts, 0)) > time.Minute {
		t.Errorf("timestamp header: got %q, want the Unix time of the try", x.ts)
	}
	n := x.note
	if n.Rule != "catalog-errors" || n.State != Firing || n.Service != "catalog" || n.Value == nil || *n.Value != 0.8 ||
		n.Threshold != 0.99 || !n.Since.Equal(t0) || n.Summary != "catalog fails" || n.Metric != "successRate" || n.Op != "below" {
		t.Errorf("firing notification: got %+v (body %s)", n, x.body)
	}
	// A tampered body does not verify.
	if Verify([]byte("s3cret"), x.ts, append(x.body, ' '), x.sig) || Verify([]byte("other"), x.ts, x.body, x.sig) {
		t.Error("Verify accepts a changed body or another secret")
	}

	r.q.setService("catalog", served(100, 0))
	r.e.Evaluate(ctx, t0.Add(5*time.Second))
	x = rc.next(t)
	if !x.validSig || x.note.State != Resolved || x.note.Value == nil || *x.note.Value != 1 {
		t.Errorf("resolved notification: got %+v, signature valid %v", x.note, x.validSig)
	}
	eventually(t, func() bool { return testutil.ToFloat64(r.e.out.sent) == 2 }, "2 notifications counted sent")
}

func TestWebhookRetriesWithBackoff(t *testing.T) {
	t.Setenv("WEFT_TEST_HOOK_SECRET", "from-env")
	rc := newReceiver(t, "from-env", 503, 500, 429)
	a := successRule("retry", 0)
	a.Webhooks = []config.AlertWebhook{{URL: rc.srv.URL, SecretRef: &config.SecretRef{Env: "WEFT_TEST_HOOK_SECRET"}}}
	r := newRig(t, fastRetries(), a)
	r.run(t)
	r.q.setService("catalog", served(10, 5))
	r.e.Evaluate(context.Background(), time.Now())
	for i := range 4 {
		if x := rc.next(t); !x.validSig || x.note.State != Firing {
			t.Errorf("try %d: got %+v, signature valid %v", i+1, x.note, x.validSig)
		}
	}
	eventually(t, func() bool { return testutil.ToFloat64(r.e.out.sent) == 1 }, "1 notification sent")
	if got := testutil.ToFloat64(r.e.out.retried); got != 3 {
		t.Errorf("retried: got %g, want 3", got)
	}
}

func TestWebhookGivesUp(t *testing.T) {
	// A refused request is not tried again; an unreachable webhook is,
	// Attempts times.
	rc := newReceiver(t, "", 400)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String() + "/hook"
	ln.Close()
	a := successRule("give-up", 0)
	a.Webhooks = []config.AlertWebhook{{URL: rc.srv.URL}, {URL: dead}}
	cfg := fastRetries()
	cfg.Attempts = 3
	r := newRig(t, cfg, a)
	r.run(t)
	r.q.setService("catalog", served(10, 5))
	r.e.Evaluate(context.Background(), time.Now())
	if x := rc.next(t); x.ts != "" || x.sig != "" {
		t.Errorf("a webhook without secretRef got signature headers %q %q", x.ts, x.sig)
	}
	eventually(t, func() bool { return testutil.ToFloat64(r.e.out.failed) == 2 }, "2 notifications failed")
	if got := testutil.ToFloat64(r.e.out.retried); got != 2 {
		t.Errorf("retried: got %g, want 2 (the unreachable webhook, tried 3 times)", got)
	}
	select {
	case x := <-rc.got:
		t.Errorf("a 400 was tried again: %+v", x.note)
	default:
	}
}

func TestMissingSecretSendsNothing(t *testing.T) {
	rc := newReceiver(t, "")
	a := successRule("no-secret", 0)
	a.Webhooks = []config.AlertWebhook{{URL: rc.srv.URL, SecretRef: &config.SecretRef{Env: "WEFT_TEST_UNSET_SECRET"}}}
	r := newRig(t, fastRetries(), a)
	r.run(t)
	r.q.setService("catalog", served(10, 5))
	r.e.Evaluate(context.Background(), time.Now())
	eventually(t, func() bool { return testutil.ToFloat64(r.e.out.failed) == 1 }, "1 notification failed")
	select {
	case x := <-rc.got:
		t.Errorf("sent unsigned: %+v", x.note)
	default:
	}
}

func TestFullQueueDropsAndCounts(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	a := successRule("flood", 0)
	a.Webhooks = []config.AlertWebhook{{URL: srv.URL}}
	cfg := fastRetries()
	cfg.Queue = 2
	r := newRig(t, cfg, a) // no workers yet: nothing leaves the queue
	ctx := context.Background()
	start := time.Now()
	for i := range 6 { // firing, resolved, firing, ...
		r.q.setService("catalog", served(10, uint64(5*(1-i%2))))
		r.e.Evaluate(ctx, start.Add(time.Duration(i)*time.Second))
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("evaluation waited on the queue: %s", time.Since(start))
	}
	if got := testutil.ToFloat64(r.e.out.dropped); got != 4 {
		t.Errorf("dropped: got %g, want 4", got)
	}
	r.run(t)
	eventually(t, func() bool { return hits.Load() == 2 }, "the 2 queued notifications delivered")
}

func eventually(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
