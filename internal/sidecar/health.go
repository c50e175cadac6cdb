package sidecar

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// StartGrace is how long a sidecar gives its app to come up before it
// says the app is down. `weft run` starts the app and the sidecar
// together, and an app takes a moment to listen; until the app has been
// seen up once, or this much time has passed, a failed check only keeps
// the instance not ready, without a warning.
const StartGrace = 10 * time.Second

// health checks the local app: a TCP connect by default, an HTTP GET of
// path when one is given (any status below 400 is healthy).
type health struct {
	app      string
	url      string
	interval time.Duration
	grace    time.Duration // StartGrace; shorter in tests
	log      *slog.Logger
	client   *http.Client
	ok       atomic.Bool
	soon     chan struct{} // a request to check before the next tick
}

func newHealth(app, path string, interval time.Duration, log *slog.Logger) *health {
	h := &health{app: app, interval: interval, grace: StartGrace, log: log, soon: make(chan struct{}, 1)}
	if path != "" {
		h.url = "http://" + app + path
		h.client = &http.Client{Timeout: interval, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	}
	return h
}

// checkSoon asks for a check now, not at the next tick: the data path
// could not connect to the app. It never blocks.
func (h *health) checkSoon() {
	select {
	case h.soon <- struct{}{}:
	default:
	}
}

// run checks now and then every interval, and when asked (checkSoon),
// calling report with each result. It logs each change between up and
// down; before the app was first seen up, only once the start grace is
// over.
func (h *health) run(ctx context.Context, report func(bool)) {
	t := time.NewTicker(h.interval)
	defer t.Stop()
	start := time.Now()
	seenUp, warned := false, false
	for {
		ok := h.check(ctx)
		if ctx.Err() != nil {
			return
		}
		prev := h.ok.Swap(ok)
		switch {
		case ok && (!prev || !seenUp):
			h.log.Info("app is up", "app", h.app)
			seenUp = true
		case !ok && seenUp && prev:
			h.log.Warn("app is down: instance marked not ready", "app", h.app)
		case !ok && !seenUp && !warned:
			if waited := time.Since(start); waited >= h.grace {
				h.log.Warn("app is down: not up since the sidecar started; instance not ready", "app", h.app, "waited", waited.Round(time.Second))
				warned = true
			} else {
				h.log.Debug("waiting for the app to listen", "app", h.app)
			}
		}
		report(ok)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-h.soon:
		}
	}
}

func (h *health) check(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, h.interval)
	defer cancel()
	if h.url == "" {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", h.app)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.url, nil)
	resp, err := h.client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode < 400
}
