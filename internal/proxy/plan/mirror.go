package plan

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/internal/snapshot"
)

// Mirroring (a route rule's RequestMirror filters): the route stage
// draws, per mirror, whether this request is copied; the engine hands
// the request's head and body (at most MaxMirrorBody) to SendMirrors
// once it has them; a Mirrorer sends each copy in the background and
// drops the answer. The caller's request never waits for a mirror.
//
//	Route        -> Routed.Mirrors(): some mirror drew this request
//	engine       -> head now; body teed as it passes, up to MaxMirrorBody
//	SendMirrors  -> per drawn mirror: a copy, Host "<host>-shadow",
//	                the rule's request edits, to Mirrorer.Mirror
//	DropMirrors  -> a body over the bound, or one that cannot be had
//	                whole (trailers, a client gone): counted, not sent

// MaxMirrorBody bounds the request body an engine copies for a mirror:
// a request with a larger body is not mirrored (counted as
// body-too-large).
const MaxMirrorBody = 64 << 10

// Mirrorer sends a mirrored request through the cluster of the mirror's
// service, in the background, and drops the answer. Mirror must not
// block: it reports false when it sheds the copy (too many in flight).
// It owns r (a copy made for it).
type Mirrorer interface {
	Mirror(c *Cluster, r *http.Request) bool
}

// Outcomes of weft_mirrors_total.
const (
	MirrorSent         = "sent"           // handed to the Mirrorer
	MirrorBusy         = "busy"           // shed: too many mirrored requests in flight
	MirrorBodyTooLarge = "body-too-large" // the body was over MaxMirrorBody
	MirrorBodyStreamed = "body-streamed"  // the body is streamed, not had whole up front (HTTP/1.1 chunked or 100-continue)
	MirrorIncomplete   = "incomplete"     // the body could not be had whole (trailers, a reset, the client gone)
	MirrorNoBackend    = "no-backend"     // the mirror's service or subset does not exist
)

// mirrorOutcomes are every outcome of weft_mirrors_total.
var mirrorOutcomes = []string{MirrorSent, MirrorBusy, MirrorBodyTooLarge, MirrorBodyStreamed, MirrorIncomplete, MirrorNoBackend}

// routeMirror is one of a rule's mirrors, compiled.
type routeMirror struct {
	c       *Cluster // nil: its service or subset does not exist
	percent float64
	counts  mirrorCounts
}

// mirrorCounts are one mirror's weft_mirrors_total handles, by outcome
// (nil: not counted).
type mirrorCounts map[string]prometheus.Counter

func (mc mirrorCounts) count(outcome string) {
	if c := mc[outcome]; c != nil {
		c.Inc()
	}
}

// maxMirrors is how many mirrors a rule may have (Gateway API allows at
// most 16 filters).
const maxMirrors = 32

// mirrorCluster is the cluster a mirror's copies go through: the
// backend's endpoints and balancer, with one try each, and none of its
// service's breaker, rate limits, hedging or fallback (guard.forMirror):
// copies must never open the breaker or spend the limit of the service
// real callers use (a subset of the caller's own service, often). Their
// answers count under direction "mirror".
func mirrorCluster(c *Cluster, m *Metrics) *Cluster {
	mc := *c
	mc.routes = nil
	mc.guard = c.guard.forMirror()
	mc.MaxAttempts = 1 // (HedgeAfter asks for a second attempt: none)
	mc.MaxBufferedBody = 0
	mc.metrics = nil
	if m != nil {
		mc.metrics = m.ForService("mirror", c.Service)
	}
	return &mc
}

// buildMirrors compiles a rule's mirrors; backend is how a route
// backend becomes a cluster (nil when it cannot).
func (t *Table) buildMirrors(parent string, ms []snapshot.Mirror, backend func(snapshot.Backend) (*Cluster, string)) ([]routeMirror, error) {
	if len(ms) > maxMirrors {
		return nil, fmt.Errorf("%d RequestMirror filters: at most %d", len(ms), maxMirrors)
	}
	out := make([]routeMirror, 0, len(ms))
	for _, m := range ms {
		rm := routeMirror{percent: m.Percent}
		if c, _ := backend(m.Backend); c != nil {
			rm.c = mirrorCluster(c, t.metrics)
		}
		if t.metrics != nil {
			name := m.Backend.Service
			if m.Backend.Subset != "" {
				name = "ServiceSubset/" + m.Backend.Subset
			}
			rm.counts = mirrorCounts{}
			for _, o := range mirrorOutcomes {
				rm.counts[o] = t.metrics.mirrors.WithLabelValues(parent, name, o)
			}
		}
		out = append(out, rm)
	}
	return out, nil
}

// drawMirrors draws, for each of the rule's mirrors, whether this
// request is copied to it.
func (r *Routed) drawMirrors(rule *routeRule) {
	for i := range rule.mirrors {
		if drawn(rule.mirrors[i].percent) {
			r.mirrorSet |= 1 << i
		}
	}
	if r.mirrorSet != 0 {
		r.mirrorOf = rule
	}
}

// Mirrors reports whether the request is to be copied to a mirror: the
// engine then hands its head and body to SendMirrors, or calls
// DropMirrors.
func (r *Routed) Mirrors() bool { return r.mirrorSet != 0 && r.mirrorOf.mirrorer != nil }

// SendMirrors sends a copy of the request to each mirror that drew it:
// head is the request as the client sent it (the rule's request edits
// and URLRewrite are applied to each copy), body its whole body (nil: none; copied
// here, so the caller may reuse it). Each copy's Host is the original
// with "-shadow" appended, as Envoy and Istio do, so the mirror's app
// can tell copies apart. Once per request: later calls do nothing.
func (r *Routed) SendMirrors(head *http.Request, body []byte) {
	if !r.Mirrors() {
		return
	}
	rule, set := r.mirrorOf, r.mirrorSet
	r.mirrorSet = 0
	if len(body) > MaxMirrorBody {
		r.dropMirrors(rule, set, MirrorBodyTooLarge)
		return
	}
	body = bytes.Clone(body)
	for i := range rule.mirrors {
		m := &rule.mirrors[i]
		if set&(1<<i) == 0 {
			continue
		}
		if m.c == nil {
			m.counts.count(MirrorNoBackend)
			continue
		}
		cp := head.Clone(context.Background())
		_ = r.Rewrite.ApplyTo(cp) // (a path that does not parse: the client's, as before the rewrite)
		cp.Host = shadowHost(cp.Host)
		rule.request.Apply(cp.Header)
		cp.Body, cp.ContentLength, cp.GetBody = http.NoBody, 0, nil
		if len(body) > 0 {
			cp.Body, cp.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		}
		delete(cp.Header, "Content-Length") // (ContentLength says it)
		if rule.mirrorer.Mirror(m.c, cp) {
			m.counts.count(MirrorSent)
		} else {
			m.counts.count(MirrorBusy)
		}
	}
}

// DropMirrors gives up the request's mirrors: its body is over
// MaxMirrorBody (MirrorBodyTooLarge), streamed (MirrorBodyStreamed) or
// cannot be had whole (MirrorIncomplete). Counted once; later calls do nothing.
func (r *Routed) DropMirrors(outcome string) {
	if r.Mirrors() {
		r.dropMirrors(r.mirrorOf, r.mirrorSet, outcome)
		r.mirrorSet = 0
	}
}

func (r *Routed) dropMirrors(rule *routeRule, set uint32, outcome string) {
	for i := range rule.mirrors {
		if set&(1<<i) != 0 {
			rule.mirrors[i].counts.count(outcome)
		}
	}
}

// shadowHost is host with "-shadow" appended to its name (before a port).
func shadowHost(host string) string {
	if h, port, err := net.SplitHostPort(host); err == nil {
		return net.JoinHostPort(h+"-shadow", port)
	}
	return host + "-shadow"
}
