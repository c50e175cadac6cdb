package dashboard

import (
	"context"
	"encoding/json"
	"net/url"
	"sort"
	"strconv"
	"time"

	"github.com/weftmesh/weft/internal/registry"
)

// Live is the live requests page, what weft top prints: the requests
// the sidecars served that ended after Since, oldest first, each as the
// sidecar's /recent has it (with "from", the sidecar).
type Live struct {
	Time     time.Time         `json:"time"`
	Since    time.Time         `json:"since"`
	Requests []json.RawMessage `json:"requests"`
	Sidecars int               `json:"sidecars"`
	Problems []string          `json:"problems,omitempty"`
}

// liveLimit is how many requests a sidecar gives at most, each time.
const liveLimit = 50

// live is the builder of the live page (?service= for the sidecars of
// one service, ?since= RFC 3339). Each call gives what ended since the
// last one.
func (h *Handler) live(q url.Values) (build, error) {
	service := q.Get("service")
	if service != "" {
		if err := registry.ValidName(service); err != nil {
			return nil, &badInput{"service", err.Error()}
		}
	}
	var since time.Time
	if s := q.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return nil, &badInput{"since", "want an RFC 3339 time such as 2026-01-02T15:04:05Z"}
		}
		since = t
	}
	return func(ctx context.Context) (any, error) {
		proxies, err := h.proxies(ctx, service)
		if err != nil {
			return nil, err
		}
		l := &Live{Time: time.Now().UTC(), Since: since, Requests: []json.RawMessage{}}
		lists := make([][]json.RawMessage, len(proxies))
		problems := make([]string, len(proxies))
		path := "/recent?limit=" + strconv.Itoa(liveLimit)
		if !since.IsZero() {
			path += "&" + url.Values{"since": {since.UTC().Format(time.RFC3339Nano)}}.Encode()
		}
		eachSidecar(proxies, func(i int, p registry.Proxy) {
			if err := h.fetchAdmin(ctx, p.Admin, path, &lists[i]); err != nil {
				problems[i] = "sidecar " + p.Service + "/" + p.ID + ": " + err.Error()
			}
		})
		type entry struct {
			raw json.RawMessage
			end time.Time
		}
		var all []entry
		for i, list := range lists {
			if problems[i] != "" {
				l.Problems = append(l.Problems, problems[i])
			} else if proxies[i].Admin != "" {
				l.Sidecars++
			}
			for _, raw := range list {
				var s served
				if json.Unmarshal(raw, &s) != nil {
					continue
				}
				all = append(all, entry{raw, s.Time.Add(s.Duration)})
			}
		}
		sort.SliceStable(all, func(i, j int) bool { return all[i].end.Before(all[j].end) })
		for _, e := range all {
			l.Requests = append(l.Requests, e.raw)
			if e.end.After(since) {
				since = e.end
			}
		}
		return l, nil
	}, nil
}
