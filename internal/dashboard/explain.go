package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/weftmesh/weft/internal/collect/traces"
	"github.com/weftmesh/weft/internal/registry"
)

// Explained is what a sidecar of From would do with a request to To, as
// weft explain prints it: the sidecar's /explain answer as it is.
type Explained struct {
	Sidecar     string          `json:"sidecar"`
	Explanation json.RawMessage `json:"explanation"`
}

var methodRE = regexp.MustCompile(`^[A-Z]{1,20}$`)

// explain is the builder of GET /ui/api/explain?from=&to=&method=&path=
// (&header=Name: value ...&grpc=1): the explanation of one sidecar of
// from, the first by id with an admin listener.
func (h *Handler) explain(q url.Values) (build, error) {
	from, to := q.Get("from"), q.Get("to")
	if err := registry.ValidName(from); err != nil {
		return nil, &badInput{"from", err.Error()}
	}
	if err := registry.ValidName(to); err != nil {
		return nil, &badInput{"to", err.Error()}
	}
	method := strings.ToUpper(q.Get("method"))
	if method == "" {
		method = "GET"
	}
	if !methodRE.MatchString(method) {
		return nil, &badInput{"method", fmt.Sprintf("%q: want an HTTP method such as GET or POST", q.Get("method"))}
	}
	path := q.Get("path")
	if !strings.HasPrefix(path, "/") || len(path) > 2048 {
		return nil, &badInput{"path", fmt.Sprintf("%q: want a path that begins with /, at most 2048 bytes", path)}
	}
	ask := url.Values{"to": {to}, "method": {method}, "path": {path}}
	for i, hd := range q["header"] {
		if strings.TrimSpace(hd) == "" {
			continue
		}
		if name, _, ok := strings.Cut(hd, ":"); !ok || strings.TrimSpace(name) == "" {
			return nil, &badInput{fmt.Sprintf("header[%d]", i), fmt.Sprintf("%q: want 'Name: value'", hd)}
		}
		ask.Add("header", hd)
	}
	if g := q.Get("grpc"); g == "1" || g == "true" {
		ask.Set("grpc", "1")
	}
	return func(ctx context.Context) (any, error) {
		proxies, err := h.proxies(ctx, from)
		if err != nil {
			return nil, err
		}
		for _, p := range proxies {
			if p.Admin == "" {
				continue
			}
			var x json.RawMessage
			if err := h.fetchAdmin(ctx, p.Admin, "/explain?"+ask.Encode(), &x); err != nil {
				return nil, fmt.Errorf("explain: sidecar %s/%s at %s: %w", p.Service, p.ID, p.Admin, err)
			}
			return &Explained{Sidecar: p.Service + "/" + p.ID, Explanation: x}, nil
		}
		return nil, &badInput{"from", fmt.Sprintf("no sidecar of service %q with an admin listener is running", from)}
	}, nil
}

// TraceList is the traces page: the traces that match, newest first.
type TraceList struct {
	Time   time.Time        `json:"time"`
	Traces []traces.Summary `json:"traces"`
}

// traces is the builder of GET /ui/api/traces?service=&minDuration=&limit=,
// checked by the API itself.
func (h *Handler) traces(q url.Values) build {
	ask := url.Values{}
	for _, k := range []string{"service", "minDuration", "limit"} {
		if v := q.Get(k); v != "" {
			ask.Set(k, v)
		}
	}
	return func(ctx context.Context) (any, error) {
		l := &TraceList{Time: time.Now().UTC()}
		err := h.get(ctx, "/v1/traces?"+ask.Encode(), &l.Traces)
		var ae *apiError
		if errors.As(err, &ae) && ae.status == 400 {
			return nil, &badInput{"query", ae.msg}
		}
		return l, err
	}
}
