package alert

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/version"
)

// Notification is the JSON body posted to a webhook when a rule fires
// or resolves.
type Notification struct {
	Rule    string            `json:"rule"`
	State   State             `json:"state"` // firing or resolved
	Service string            `json:"service,omitempty"`
	Edge    *config.AlertEdge `json:"edge,omitempty"`
	Metric  string            `json:"metric"`
	Op      string            `json:"op"`
	// Value is the figure at the change (p99 in seconds); nil when the
	// rule resolved for want of data.
	Value     *float64  `json:"value"`
	Threshold float64   `json:"threshold"`
	Window    string    `json:"window"`
	For       string    `json:"for"`
	Since     time.Time `json:"since"` // when the rule entered State
	Severity  string    `json:"severity"`
	Summary   string    `json:"summary,omitempty"`
}

func (st *ruleState) notification() Notification {
	s := st.status()
	return Notification{Rule: s.Rule, State: s.State, Service: s.Service, Edge: s.Edge, Metric: s.Metric, Op: s.Op,
		Value: s.Value, Threshold: s.Threshold, Window: s.Window, For: s.For, Since: s.Since, Severity: s.Severity, Summary: s.Summary}
}

// The headers of a signed notification.
const (
	// TimestampHeader holds the Unix time, in seconds, of the try.
	TimestampHeader = "X-Weft-Timestamp"
	// SignatureHeader holds "sha256=" and the hex HMAC-SHA256, keyed with
	// the webhook's secret, of the timestamp, a dot, and the body.
	SignatureHeader = "X-Weft-Signature"
)

// Sign is the SignatureHeader value for a body sent at timestamp.
func Sign(secret []byte, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether signature is the one Sign gives, comparing in
// constant time. A receiver should also refuse a timestamp far from its
// own clock, so that a captured request cannot be replayed later.
func Verify(secret []byte, timestamp string, body []byte, signature string) bool {
	return hmac.Equal([]byte(Sign(secret, timestamp, body)), []byte(signature))
}

// secretOf reads a webhook's secret; nil when it has none. Errors never
// hold the secret.
func secretOf(ref *config.SecretRef) ([]byte, error) {
	switch {
	case ref == nil:
		return nil, nil
	case ref.Env != "":
		v := strings.TrimSpace(os.Getenv(ref.Env))
		if v == "" {
			return nil, fmt.Errorf("secret: environment variable %s of the control plane is unset or empty", ref.Env)
		}
		return []byte(v), nil
	default:
		b, err := os.ReadFile(ref.File)
		if err != nil {
			return nil, fmt.Errorf("secret: %w", err)
		}
		if b = bytes.TrimSpace(b); len(b) == 0 {
			return nil, fmt.Errorf("secret: %s is empty", ref.File)
		}
		return b, nil
	}
}

// job is one notification to one webhook.
type job struct {
	hook config.AlertWebhook
	rule string
	body []byte
}

// notifier sends notifications from a bounded queue, so that a slow or
// failing webhook never holds up evaluation.
type notifier struct {
	cfg                            Config
	client                         *http.Client
	log                            *slog.Logger
	q                              chan job
	sent, retried, failed, dropped prometheus.Counter
}

func newNotifier(cfg Config, client *http.Client, outcomes *prometheus.CounterVec, log *slog.Logger) *notifier {
	return &notifier{cfg: cfg, client: client, log: log, q: make(chan job, cfg.Queue),
		sent: outcomes.WithLabelValues("sent"), retried: outcomes.WithLabelValues("retried"),
		failed: outcomes.WithLabelValues("failed"), dropped: outcomes.WithLabelValues("dropped")}
}

// enqueue queues n for h, or drops it when the queue is full.
func (n *notifier) enqueue(h config.AlertWebhook, note Notification) {
	body, err := json.Marshal(note)
	if err != nil { // plain data: cannot happen
		n.failed.Inc()
		n.log.Error("notification not encoded", "rule", note.Rule, "err", err)
		return
	}
	select {
	case n.q <- job{hook: h, rule: note.Rule, body: body}:
	default:
		n.dropped.Inc()
		n.log.Warn("notification dropped: the queue is full", "rule", note.Rule, "state", note.State, "webhook", hookHost(h.URL), "queue", cap(n.q))
	}
}

// start runs the workers until ctx ends; what is still queued then is
// not sent.
func (n *notifier) start(ctx context.Context, wg *sync.WaitGroup) {
	for range n.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-n.q:
					n.deliver(ctx, j)
				}
			}
		}()
	}
}

// deliver tries j up to Attempts times, waiting longer after each failure.
func (n *notifier) deliver(ctx context.Context, j job) {
	log := n.log.With("rule", j.rule, "webhook", hookHost(j.hook.URL))
	secret, err := secretOf(j.hook.SecretRef)
	if err != nil {
		n.failed.Inc()
		log.Error("notification not sent", "err", err)
		return
	}
	wait := n.cfg.Backoff
	for attempt := 1; ; attempt++ {
		retry, err := n.try(ctx, j, secret)
		if err == nil {
			n.sent.Inc()
			log.Info("notification sent", "attempt", attempt)
			return
		}
		if !retry || attempt >= n.cfg.Attempts || ctx.Err() != nil {
			n.failed.Inc()
			log.Warn("notification not sent", "attempts", attempt, "err", err)
			return
		}
		n.retried.Inc()
		log.Debug("notification failed; trying again", "attempt", attempt, "err", err)
		t := time.NewTimer(wait/2 + rand.N(wait/2+1)) // jittered, between half and all of wait
		select {
		case <-ctx.Done():
			t.Stop()
			n.failed.Inc()
			return
		case <-t.C:
		}
		wait = min(2*wait, n.cfg.MaxBackoff)
	}
}

// errStatus is an answer that is not 2xx.
var errStatus = errors.New("webhook answered")

// try posts j once; retry says whether a failure is worth another try
// (the webhook unreachable, 5xx, 408 or 429).
func (n *notifier) try(ctx context.Context, j job, secret []byte) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, j.hook.URL, bytes.NewReader(j.body))
	if err != nil {
		return false, errors.New("webhook URL not usable") // the URL may hold a token: not repeated
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "weft-alerts/"+version.Version)
	if secret != nil {
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		req.Header.Set(TimestampHeader, ts)
		req.Header.Set(SignatureHeader, Sign(secret, ts, j.body))
	}
	resp, err := n.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL
		}
		return true, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		return false, nil
	}
	c := resp.StatusCode
	return c >= 500 || c == http.StatusTooManyRequests || c == http.StatusRequestTimeout, fmt.Errorf("%w %s", errStatus, resp.Status)
}

// hookHost is how logs name a webhook: its host only, since the path or
// query of a webhook URL often holds a token.
func hookHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	return u.Host
}
