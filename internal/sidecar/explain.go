package sidecar

import (
	"fmt"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/weftmesh/weft/internal/proxy/plan"
	"github.com/weftmesh/weft/internal/request"
	"github.com/weftmesh/weft/internal/security/authz"
	"github.com/weftmesh/weft/internal/snapshot"
	"github.com/weftmesh/weft/internal/telemetry"
)

// explainView is GET /explain: what this sidecar would do, now, with a
// request to a service, from its own live state (weft explain).
type explainView struct {
	From     string           `json:"from"` // SERVICE/INSTANCE of this sidecar
	To       string           `json:"to"`
	Request  string           `json:"request"` // GET /items, and the headers given
	Routes   []plan.RuleCheck `json:"routes,omitempty"`
	Decision string           `json:"decision"`
	// Authorization is what the called service's inbound would decide,
	// by its AuthorizationPolicies, on the request from this sidecar's
	// service ("": none in force).
	Authorization string           `json:"authorization,omitempty"`
	Error         *explainError    `json:"error,omitempty"`
	Faults        []string         `json:"faults,omitempty"`
	Backends      []explainBackend `json:"backends,omitempty"`
}

type explainError struct {
	Status  int    `json:"status"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// explainBackend is one backend the request may go to, with the policy
// it would be sent under and the instances the balancer picks among.
type explainBackend struct {
	Name       string         `json:"name"`
	Share      float64        `json:"share"` // percent of the requests the rule routes
	Invalid    string         `json:"invalid,omitempty"`
	Policy     *policyView    `json:"policy,omitempty"`
	Breaker    string         `json:"breaker,omitempty"`
	Candidates []endpointView `json:"candidates"`
}

// explainRequest is the request GET /explain describes: ?method=GET
// &path=/items&header=x-user:beta (repeatable)&grpc=1.
type explainRequest struct {
	method, path []byte
	headers      http.Header
	grpc         bool
	request.View
}

func (v *explainRequest) Method() []byte    { return v.method }
func (v *explainRequest) Path() []byte      { return v.path }
func (v *explainRequest) GRPC() bool        { return v.grpc }
func (v *explainRequest) Authority() []byte { return nil }
func (v *explainRequest) Replayable() bool  { return request.Safe(v.method) }
func (v *explainRequest) Source() []byte    { return nil }
func (v *explainRequest) Cookie(name string) []byte {
	return request.CookieValue([]byte(v.headers.Get("Cookie")), name)
}
func (v *explainRequest) Header(name string) []byte {
	if vs := v.headers[textproto.CanonicalMIMEHeaderKey(name)]; len(vs) > 0 {
		return []byte(vs[0])
	}
	return nil
}

func (s *Sidecar) explain(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if id := q.Get("request-id"); id != "" {
		s.explainServed(w, id)
		return
	}
	to := q.Get("to")
	req := &explainRequest{method: []byte(strings.ToUpper(orDefault(q.Get("method"), http.MethodGet))),
		path: []byte(orDefault(q.Get("path"), "/")), headers: http.Header{}}
	desc := string(req.method) + " " + string(req.path)
	for _, h := range q["header"] {
		name, value, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(name) == "" {
			telemetry.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("header %q: want NAME: VALUE", h)})
			return
		}
		req.headers.Add(strings.TrimSpace(name), strings.TrimSpace(value))
		desc += fmt.Sprintf(" -H '%s: %s'", strings.TrimSpace(name), strings.TrimSpace(value))
	}
	req.grpc = q.Get("grpc") == "1" || request.IsGRPC([]byte(req.headers.Get("Content-Type")))
	c := s.table.Lookup(to)
	if c == nil {
		telemetry.WriteJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("this sidecar knows no service named %q", to)})
		return
	}
	v := explainView{From: s.cfg.Service + "/" + s.cfg.ID, To: to, Request: desc}
	d := c.ExplainRoute(req)
	v.Routes = d.Rules
	switch {
	case d.Error != nil:
		v.Decision = fmt.Sprintf("answered by the mesh: %d %s", d.Error.Status, d.Error.Reason)
		v.Error = &explainError{Status: d.Error.Status, Reason: d.Error.Reason, Message: d.Error.Message}
	case len(d.Rules) == 0:
		v.Decision = fmt.Sprintf("%s has no routes: to its own instances", to)
	default:
		v.Decision = "routed by " + d.Rules[len(d.Rules)-1].Rule
	}
	for _, f := range d.Faults {
		v.Faults = append(v.Faults, faultWords(f.Name, f.Delay, f.DelayPercent, f.AbortHTTP, f.AbortGRPC, f.AbortPercent))
	}
	snap := s.snap.Load()
	if d.Error == nil && snap != nil {
		s.explainAuthorization(&v, snap, d.Backends, req)
	}
	now := time.Now()
	for _, b := range d.Backends {
		eb := explainBackend{Name: b.Name, Share: 100 * b.Share, Invalid: b.Invalid, Candidates: []endpointView{}}
		if b.Cluster != nil {
			if snap != nil {
				if svc := snap.Services[b.Cluster.Service]; svc != nil {
					p := viewPolicy(&svc.Policy)
					eb.Policy = &p
				}
			}
			eb.Breaker, _ = b.Cluster.BreakerState(now)
			for _, ep := range b.Cluster.Endpoints {
				st := ep.Stats()
				ev := endpointView{Instance: ep.Instance, Address: ep.Address, Labels: ep.Labels, Protocol: ep.Protocol,
					Ready: st.Health.Ready, Health: st.Health.String()}
				addStats(&ev, st)
				eb.Candidates = append(eb.Candidates, ev)
			}
		}
		v.Backends = append(v.Backends, eb)
	}
	telemetry.WriteJSON(w, http.StatusOK, v)
}

// explainAuthorization says what the inbound of each backend's service
// would decide on req from this sidecar's service, by the policies in
// snap: in v.Authorization and the decision, and as the error when it
// denies.
func (s *Sidecar) explainAuthorization(v *explainView, snap *snapshot.Snapshot, backends []plan.BackendChoice, req request.View) {
	seen := map[string]bool{}
	var words []string
	for _, b := range backends {
		if b.Cluster == nil || seen[b.Cluster.Service] {
			continue
		}
		svc := b.Cluster.Service
		seen[svc] = true
		m, err := authz.Compile(svc, snap.Authorization)
		if err != nil || m == nil {
			continue
		}
		dec := m.Decide(s.cfg.Service, req)
		words = append(words, fmt.Sprintf("at the inbound of %s: %s", svc, dec.Text))
		if !dec.Allow && v.Error == nil {
			v.Error = &explainError{Status: http.StatusForbidden, Reason: plan.ReasonDenied,
				Message: fmt.Sprintf("service %q calling %q is %s", s.cfg.Service, svc, dec.Text)}
		}
	}
	if len(words) == 0 {
		return
	}
	v.Authorization = strings.Join(words, "; ")
	v.Decision += "; authorization " + v.Authorization
}

// servedView is GET /explain?request-id=ID: what this sidecar did with
// a request it sent (plan.Served), and who it is.
type servedView struct {
	From string `json:"from"`
	plan.Served
}

// explainServed answers with the request of that id among the last
// plan.RecentSize this sidecar sent, or 404.
func (s *Sidecar) explainServed(w http.ResponseWriter, id string) {
	got, ok := s.table.Recent().Find(id)
	if !ok {
		telemetry.WriteJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf(
			"request %s is not among the last %d this sidecar sent", id, plan.RecentSize)})
		return
	}
	telemetry.WriteJSON(w, http.StatusOK, servedView{From: s.cfg.Service + "/" + s.cfg.ID, Served: got})
}

// recent is GET /recent?since=RFC3339NANO&limit=N: the requests this
// sidecar served (both directions) that ended after since, oldest first,
// at most limit (100 by default, RecentSize at most): weft top.
func (s *Sidecar) recent(w http.ResponseWriter, r *http.Request) {
	var since time.Time
	if v := r.URL.Query().Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			telemetry.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("since=%q: want an RFC 3339 time", v)})
			return
		}
		since = t
	}
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			telemetry.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("limit=%q: want a number above 0", v)})
			return
		}
		limit = min(n, plan.RecentSize)
	}
	list := s.table.Recent().Since(since, limit)
	out := make([]servedView, 0, len(list))
	for _, sv := range list {
		out = append(out, servedView{From: s.cfg.Service + "/" + s.cfg.ID, Served: sv})
	}
	telemetry.WriteJSON(w, http.StatusOK, out)
}

// faultWords says what a Fault does: "Fault/slow: delay 2s for 10%".
func faultWords(name string, delay time.Duration, delayPct float64, abortHTTP, abortGRPC int, abortPct float64) string {
	var parts []string
	if delay > 0 {
		parts = append(parts, fmt.Sprintf("delay %s for %g%%", duration(delay), delayPct))
	}
	if abortHTTP != 0 || abortGRPC != 0 {
		a := fmt.Sprintf("abort with %d", abortHTTP)
		if abortGRPC != 0 {
			a += fmt.Sprintf(" (gRPC status %d)", abortGRPC)
		}
		parts = append(parts, fmt.Sprintf("%s for %g%%", a, abortPct))
	}
	return "Fault/" + name + ": " + strings.Join(parts, ", ")
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
