package sidecar

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// health checks the local app: a TCP connect by default, an HTTP GET of
// path when one is given (any status below 400 is healthy).
type health struct {
	app      string
	url      string
	interval time.Duration
	log      *slog.Logger
	client   *http.Client
	ok       atomic.Bool
	checked  atomic.Bool
	soon     chan struct{} // a request to check before the next tick
}

func newHealth(app, path string, interval time.Duration, log *slog.Logger) *health {
	h := &health{app: app, interval: interval, log: log, soon: make(chan struct{}, 1)}
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
// calling report with each result.
func (h *health) run(ctx context.Context, report func(bool)) {
	t := time.NewTicker(h.interval)
	defer t.Stop()
	for {
		ok := h.check(ctx)
		if ctx.Err() != nil {
			return
		}
		if prev := h.ok.Swap(ok); prev != ok || !h.checked.Load() {
			if ok {
				h.log.Info("app is up", "app", h.app)
			} else {
				h.log.Warn("app is down: instance marked not ready", "app", h.app)
			}
		}
		h.checked.Store(true)
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
