package plan

import (
	"io"
	"math"
	"net/http"
	"net/url"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/weftmesh/weft/internal/registry"
)

// mirrorLog is a Mirrorer that keeps what it is given, and sheds when
// full is set.
type mirrorLog struct {
	mu   sync.Mutex
	got  []mirrored
	full bool
}

type mirrored struct {
	c    *Cluster
	r    *http.Request
	body string
}

func (l *mirrorLog) Mirror(c *Cluster, r *http.Request) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.full {
		return false
	}
	b, _ := io.ReadAll(r.Body)
	l.got = append(l.got, mirrored{c: c, r: r, body: string(b)})
	return true
}

const mirrorRoutes = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: catalog}
spec:
  parentRefs: [{group: "", kind: Service, name: catalog}]
  rules:
  - matches: [{path: {value: /all}}]
    filters:
    - {type: RequestMirror, requestMirror: {backendRef: {name: shadow}}}
    - {type: RequestMirror, requestMirror: {backendRef: {name: gone}}}
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: X-Env, value: canary}]}
  - matches: [{path: {value: /some}}]
    filters:
    - {type: RequestMirror, requestMirror: {backendRef: {name: shadow}, percent: 20}}
  - matches: [{path: {value: /none}}]
`

// A rule's mirrors: each copy goes to the mirror's own cluster (one
// try), with the Host marked -shadow, the rule's request edits, and a
// body of its own; a mirror drawn for a share of requests gets about
// that share; a mirror whose service does not exist, a body over the
// bound and a Mirrorer that sheds are counted, not sent.
func TestRouteMirrors(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	log := &mirrorLog{}
	tb := routedTableWith(t, m, log, mirrorRoutes, registry.Instance{Service: "catalog", ID: "c1"},
		registry.Instance{Service: "shadow", ID: "s1"})
	parent := tb.Lookup("catalog")
	count := func(mirror, outcome string) float64 {
		var out dto.Metric
		if err := m.mirrors.WithLabelValues("catalog", mirror, outcome).Write(&out); err != nil {
			t.Fatal(err)
		}
		return out.GetCounter().GetValue()
	}

	r, merr := parent.Route(get("/all"))
	if merr != nil || !r.Mirrors() || r.Cluster != parent {
		t.Fatalf("got %+v %v, want the parent, with mirrors", r, merr)
	}
	body := []byte("order=1")
	head := &http.Request{Method: http.MethodPost, URL: &url.URL{Path: "/all"}, Host: "catalog:80",
		Header: http.Header{"X-Env": {"prod"}, "Content-Length": {"7"}}}
	r.SendMirrors(head, body)
	copy(body, "XXXXXXX") // the caller's buffer, reused: the copy keeps its own
	r.SendMirrors(head, body)
	if len(log.got) != 1 {
		t.Fatalf("%d copies sent, want 1 (to shadow, once)", len(log.got))
	}
	g := log.got[0]
	if g.c.Service != "shadow" || g.c.MaxAttempts != 1 || g.c.Routed() || g.c.Metrics().direction != "mirror" {
		t.Errorf("sent through %s (attempts %d, routed %v), want shadow's cluster, one try, direction mirror", g.c.Service, g.c.MaxAttempts, g.c.Routed())
	}
	if g.r.Host != "catalog-shadow:80" || g.r.Header.Get("X-Env") != "canary" || g.body != "order=1" || g.r.ContentLength != 7 || g.r.Method != http.MethodPost {
		t.Errorf("copy: %s %s host %q x-env %q body %q (length %d), want POST /all host catalog-shadow:80 x-env canary body order=1 (7)",
			g.r.Method, g.r.URL, g.r.Host, g.r.Header.Get("X-Env"), g.body, g.r.ContentLength)
	}
	if head.Host != "catalog:80" || head.Header.Get("X-Env") != "prod" {
		t.Errorf("the caller's head was changed: host %q x-env %q", head.Host, head.Header.Get("X-Env"))
	}
	if count("shadow", MirrorSent) != 1 || count("gone", MirrorNoBackend) != 1 {
		t.Errorf("counted sent %v and no-backend %v, want 1 and 1", count("shadow", MirrorSent), count("gone", MirrorNoBackend))
	}

	r, _ = parent.Route(get("/all"))
	r.SendMirrors(head, make([]byte, MaxMirrorBody+1))
	r, _ = parent.Route(get("/all"))
	r.DropMirrors(MirrorIncomplete)
	r.DropMirrors(MirrorIncomplete)
	log.full = true
	r, _ = parent.Route(get("/all"))
	r.SendMirrors(head, nil)
	if len(log.got) != 1 || count("shadow", MirrorBodyTooLarge) != 1 || count("shadow", MirrorIncomplete) != 1 || count("shadow", MirrorBusy) != 1 {
		t.Errorf("%d sent; body-too-large %v, incomplete %v, busy %v; want 1 sent and 1 of each", len(log.got),
			count("shadow", MirrorBodyTooLarge), count("shadow", MirrorIncomplete), count("shadow", MirrorBusy))
	}

	const n = 5000
	drawn := 0
	for range n {
		if r, _ := parent.Route(get("/some")); r.Mirrors() {
			drawn++
		}
	}
	if share := float64(drawn) / n; math.Abs(share-0.2) > 0.03 {
		t.Errorf("a 20%% mirror drew %.1f%% of %d requests", 100*share, n)
	}
	if r, _ := parent.Route(get("/none")); r.Mirrors() {
		t.Error("a rule without mirrors mirrors")
	}
	if got := shadowHost("catalog"); got != "catalog-shadow" {
		t.Errorf("shadowHost(catalog) = %q", got)
	}
}

// Without a Mirrorer (a table that sends none) nothing is drawn.
func TestRouteMirrorsNeedAMirrorer(t *testing.T) {
	tb := routedTable(t, mirrorRoutes, registry.Instance{Service: "catalog", ID: "c1"}, registry.Instance{Service: "shadow", ID: "s1"})
	if r, _ := tb.Lookup("catalog").Route(get("/all")); r.Mirrors() {
		t.Error("mirrors drawn with no Mirrorer")
	}
}
