package dashboard

import (
	"context"
	"sort"
	"strconv"
	"time"

	"github.com/weftmesh/weft/internal/registry"
)

// recentSize is how many requests each sidecar keeps in its recent ring
// (its /recent answers at most that many).
const recentSize = 1024

// served is the part of a sidecar's /recent entry the pages read.
type served struct {
	ID        string        `json:"id"`
	Time      time.Time     `json:"time"`
	Duration  time.Duration `json:"duration"`
	Method    string        `json:"method"`
	Path      string        `json:"path"`
	Direction string        `json:"direction"`
	Source    string        `json:"source"`
	Service   string        `json:"service"`
	Status    int           `json:"status"`
	Error     *struct {
		Reason   string `json:"error"`
		Instance string `json:"instance"`
		Message  string `json:"message"`
	} `json:"error"`
}

// ErrorCount is one x-weft-error reason among the requests to the
// service that its callers' sidecars keep: how many, and the last.
type ErrorCount struct {
	Reason  string    `json:"reason"`
	Count   int       `json:"count"`
	Last    time.Time `json:"last"`
	Status  int       `json:"status"`
	Message string    `json:"message"`
	Path    string    `json:"path"`
	Sidecar string    `json:"sidecar"`
}

// recentErrors counts, by reason, the mesh errors among the requests to
// the service that every sidecar keeps (the last recentSize each, as
// weft top reads them), as the callers' sidecars sent them.
func (h *Handler) recentErrors(ctx context.Context, p *ServicePage, proxies []registry.Proxy) {
	lists := make([][]served, len(proxies))
	eachSidecar(proxies, func(i int, px registry.Proxy) {
		var list []served
		if err := h.fetchAdmin(ctx, px.Admin, "/recent?limit="+strconv.Itoa(recentSize), &list); err == nil {
			lists[i] = list
		}
	})
	by := map[string]*ErrorCount{}
	for i, list := range lists {
		for _, s := range list {
			if s.Direction != "outbound" || s.Service != p.Name {
				continue
			}
			p.Scanned++
			if s.Error == nil {
				continue
			}
			e := by[s.Error.Reason]
			if e == nil {
				e = &ErrorCount{Reason: s.Error.Reason}
				by[s.Error.Reason] = e
			}
			e.Count++
			if !s.Time.Before(e.Last) {
				e.Last, e.Status, e.Message, e.Path = s.Time, s.Status, s.Error.Message, s.Path
				e.Sidecar = proxies[i].Service + "/" + proxies[i].ID
			}
		}
	}
	for _, e := range by {
		p.Errors = append(p.Errors, *e)
	}
	sort.Slice(p.Errors, func(i, j int) bool {
		if p.Errors[i].Count != p.Errors[j].Count {
			return p.Errors[i].Count > p.Errors[j].Count
		}
		return p.Errors[i].Reason < p.Errors[j].Reason
	})
}
