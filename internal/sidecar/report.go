package sidecar

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/collect"
)

// DefaultReportInterval is how often a sidecar sends the control plane a
// summary of the requests it carried (--report-interval).
const DefaultReportInterval = 10 * time.Second

// reporter sends this sidecar's summaries (collect.Report) to the
// control plane's collection center, POST /v1/telemetry/{service}/{id},
// every interval and once more on stop. A report the control plane did
// not acknowledge is sent again; one it refused as bad is dropped and
// counted.
type reporter struct {
	sum      *collect.Summarizer
	api      *api.Client
	path     string
	interval time.Duration
	log      *slog.Logger
	outcomes *prometheus.CounterVec // acknowledged, failed, refused

	mu      sync.Mutex // one report at a time: the loop's, and the last one on stop
	failing bool       // the last send failed (logged once, until one succeeds)
}

func newReporter(c *api.Client, reg *prometheus.Registry, service, id string, interval time.Duration, log *slog.Logger) (*reporter, error) {
	r := &reporter{
		sum:      collect.NewSummarizer(reg),
		api:      c,
		path:     "/v1/telemetry/" + url.PathEscape(service) + "/" + url.PathEscape(id),
		interval: interval,
		log:      log,
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_collect_reports_sent_total",
			Help: "Summaries sent to the control plane's collection center, by outcome: acknowledged, failed (sent again next time), refused (dropped as bad).",
		}, []string{"outcome"}),
	}
	if err := reg.Register(r.outcomes); err != nil {
		return nil, fmt.Errorf("registering the report metrics: %w", err)
	}
	return r, nil
}

// run sends a report every interval until ctx ends.
func (r *reporter) run(ctx context.Context) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.flush(ctx)
		}
	}
}

// last sends what is left, at stop, after the listeners drained.
func (r *reporter) last() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	r.flush(ctx)
}

// flush sends the next report; when that was one sent again, what came
// after it goes too, so a sidecar catches up after an outage at once.
func (r *reporter) flush(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	again := r.sum.Pending()
	if err := r.send(ctx); err != nil || !again {
		return
	}
	_ = r.send(ctx)
}

func (r *reporter) send(ctx context.Context) error {
	rep, ok, err := r.sum.Next(time.Now())
	if err != nil {
		r.log.Debug("report: reading the metrics", "err", err)
	}
	if !ok {
		return nil
	}
	ack, refused, err := r.post(ctx, &rep)
	switch {
	case refused:
		r.sum.Acked(rep.Seq) // sent again it would be refused again
		r.outcomes.WithLabelValues("refused").Inc()
		r.log.Warn("report: the control plane refused it; dropped", "seq", rep.Seq, "err", err)
		return err
	case err != nil:
		r.outcomes.WithLabelValues("failed").Inc()
		if !r.failing {
			r.log.Warn("report: not sent, will send it again", "err", err)
		}
		r.failing = true
		return err
	}
	if ack.Seq != rep.Seq {
		r.outcomes.WithLabelValues("failed").Inc()
		return fmt.Errorf("control plane at %s: acknowledged report %d, want %d", r.api.Base, ack.Seq, rep.Seq)
	}
	r.sum.Acked(rep.Seq)
	r.outcomes.WithLabelValues("acknowledged").Inc()
	if r.failing {
		r.log.Info("report: sent again")
	}
	r.failing = false
	return nil
}

// post sends one report. refused is true for an answer that says the
// report itself is wrong (a 4xx other than 404, 408 and 429).
func (r *reporter) post(ctx context.Context, rep *collect.Report) (ack collect.Ack, refused bool, err error) {
	body, err := json.Marshal(rep)
	if err != nil {
		return ack, true, fmt.Errorf("encode report: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.api.Base+r.path, bytes.NewReader(body))
	if err != nil {
		return ack, true, fmt.Errorf("report: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.api.HTTP.Do(req)
	if err != nil {
		return ack, false, fmt.Errorf("control plane at %s: %w", r.api.Base, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		var e api.Error
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		c := resp.StatusCode
		refused = c/100 == 4 && c != http.StatusNotFound && c != http.StatusRequestTimeout && c != http.StatusTooManyRequests
		return ack, refused, fmt.Errorf("control plane at %s: %d %s", r.api.Base, c, e.Error)
	}
	if err := json.Unmarshal(b, &ack); err != nil {
		return ack, false, fmt.Errorf("control plane at %s: bad acknowledgement: %w", r.api.Base, err)
	}
	return ack, false, nil
}
