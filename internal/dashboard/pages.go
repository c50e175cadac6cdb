package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/collect"
	"github.com/weftmesh/weft/internal/registry"
	"github.com/weftmesh/weft/internal/telemetry"
)

// build makes one page's figures; a stream calls it again at every
// update (a builder may keep state between calls, as live does).
type build func(ctx context.Context) (any, error)

// badInput is a page asked with a query it cannot answer.
type badInput struct{ field, msg string }

func (e *badInput) Error() string { return e.field + ": " + e.msg }

// pages lists the pages the API serves, for the message of a 404.
const pages = "overview, service/NAME, traces, trace/ID, alarms, explain, live"

// builder is the page's figures for a request (page, name and query),
// its input checked; a badInput error when it is not good.
func (h *Handler) builder(page, name string, q url.Values) (build, error) {
	switch page {
	case "overview":
		window, err := windowOf(q)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) (any, error) { return h.overview(ctx, window) }, nil
	case "service":
		if err := registry.ValidName(name); err != nil {
			return nil, &badInput{"service", err.Error()}
		}
		window, err := windowOf(q)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) (any, error) { return h.service(ctx, name, window) }, nil
	case "traces":
		return h.traces(q), nil
	case "trace":
		if name == "" {
			return nil, &badInput{"trace", "want trace/ID, the trace id in 32 hex digits"}
		}
		return func(ctx context.Context) (any, error) {
			var tree json.RawMessage
			err := h.get(ctx, "/v1/traces/"+url.PathEscape(name), &tree)
			return tree, err
		}, nil
	case "alarms":
		return func(ctx context.Context) (any, error) {
			var list json.RawMessage
			if err := h.get(ctx, "/v1/alerts", &list); err != nil {
				return nil, err
			}
			return struct {
				Time   time.Time       `json:"time"`
				Alerts json.RawMessage `json:"alerts"`
			}{time.Now().UTC(), list}, nil
		}, nil
	case "session":
		// The page asks first whether it may read figures (the token).
		return func(context.Context) (any, error) { return map[string]bool{"authorized": true}, nil }, nil
	case "explain":
		return h.explain(q)
	case "live":
		return h.live(q)
	}
	return nil, &badInput{"page", fmt.Sprintf("no page %q: the pages are %s", page, pages)}
}

// windowOf reads the window of figures (?window=, 10s to 1h, 1m by default).
func windowOf(q url.Values) (string, error) {
	d, err := collect.ParseWindow(q.Get("window"))
	if err != nil {
		return "", &badInput{"window", err.Error()}
	}
	return collect.FormatWindow(d), nil
}

// page is GET /ui/api/{page}[/{name}]: the page's figures, once.
func (h *Handler) page(w http.ResponseWriter, r *http.Request) {
	b, err := h.builder(r.PathValue("page"), r.PathValue("name"), r.URL.Query())
	if err != nil {
		h.fail(w, err)
		return
	}
	v, err := b(r.Context())
	if err != nil {
		h.fail(w, err)
		return
	}
	telemetry.WriteJSON(w, http.StatusOK, v)
}

// fail answers with err: 404 for a page that does not exist, 400 naming
// the field for bad input, the API's
// own status for its errors, 502 for the rest.
func (h *Handler) fail(w http.ResponseWriter, err error) {
	var bad *badInput
	var ae *apiError
	switch {
	case errors.As(err, &bad) && bad.field == "page":
		telemetry.WriteJSON(w, http.StatusNotFound, api.Error{Error: bad.msg})
	case errors.As(err, &bad):
		telemetry.WriteJSON(w, http.StatusBadRequest, api.Error{Error: bad.Error(), Field: bad.field})
	case errors.As(err, &ae):
		telemetry.WriteJSON(w, ae.status, api.Error{Error: ae.msg})
	default:
		h.log.Warn("dashboard page failed", "err", err)
		telemetry.WriteJSON(w, http.StatusBadGateway, api.Error{Error: err.Error()})
	}
}
