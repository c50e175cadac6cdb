package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/weftmesh/weft/internal/proxy/plan"
	"github.com/weftmesh/weft/internal/proxy/proxytest"
	"github.com/weftmesh/weft/internal/proxy/stdhttp"
)

var discard = slog.New(slog.DiscardHandler)

// checkGoroutines is proxytest.CheckGoroutines.
var checkGoroutines = proxytest.CheckGoroutines

// server runs h on a real 127.0.0.1 socket until the end of the test.
func server(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

func addrOf(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

// closedAddr is a 127.0.0.1 address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// transport is a proxy Transport closed at the end of the test.
func transport(t *testing.T) *http.Transport {
	tr := stdhttp.NewTransport()
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// client returns a keep-alive client; with proxy set it sends every request
// through it in proxy form.
func client(t *testing.T, proxy string) *http.Client {
	t.Helper()
	tr := &http.Transport{}
	if proxy != "" {
		u, err := url.Parse(proxy)
		if err != nil {
			t.Fatal(err)
		}
		tr.Proxy = http.ProxyURL(u)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

type meshSetup struct {
	table    *plan.Table
	reg      *prometheus.Registry // where the mesh's metrics are
	outbound *httptest.Server
}

// newMesh serves a stdhttp.Outbound over table on a real socket.
func newMesh(t *testing.T, services map[string][]EndpointSpec, headerTimeout time.Duration) *meshSetup {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := plan.NewMetrics(reg)
	table := plan.NewTable(m, plan.Policy{Timeout: headerTimeout})
	updateTable(table, services)
	tr := transport(t)
	o := stdhttp.NewOutbound(table, tr, tr, m, discard)
	return &meshSetup{table: table, reg: reg, outbound: server(t, o)}
}

// get sends GET path to the outbound listener in reverse form with Host: host.
func (ms *meshSetup) get(t *testing.T, c *http.Client, host, path string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, ms.outbound.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	return do(t, c, req)
}

func do(t *testing.T, c *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s (Host %s): %v", req.Method, req.URL, req.Host, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	return resp, string(b)
}

// sample is the value of the counter or gauge name in reg with the
// given label pairs (0 when it has none yet).
func sample(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gathering metrics: %v", err)
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	total := 0.0 // (the series whose labels include those given, summed)
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			n := 0
			for _, l := range m.GetLabel() {
				if v, ok := want[l.GetName()]; ok {
					if v != l.GetValue() {
						continue metrics
					}
					n++
				}
			}
			if n != len(want) {
				continue
			}
			switch {
			case m.GetCounter() != nil:
				total += m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				total += float64(m.GetHistogram().GetSampleCount())
			default:
				total += m.GetGauge().GetValue()
			}
		}
	}
	return total
}

// seen is what a backend observed of the last request.
type seen struct {
	mu     sync.Mutex
	reqs   int
	host   string
	uri    string
	header http.Header
	body   string
}

func (s *seen) get() seen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return seen{reqs: s.reqs, host: s.host, uri: s.uri, header: s.header.Clone(), body: s.body}
}

// backend answers "<name> <path>" and records what it saw.
func backend(t *testing.T, name string) (*httptest.Server, *seen) {
	t.Helper()
	sn := &seen{}
	s := server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		sn.mu.Lock()
		sn.reqs++
		sn.host, sn.uri, sn.header, sn.body = r.Host, r.RequestURI, r.Header.Clone(), string(b)
		sn.mu.Unlock()
		w.Header().Set("X-Backend", name)
		fmt.Fprintf(w, "%s %s", name, r.URL.Path)
	}))
	return s, sn
}

func specs(pairs ...string) []EndpointSpec {
	var out []EndpointSpec
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, EndpointSpec{Instance: pairs[i], Address: pairs[i+1]})
	}
	return out
}

func endpointByAddr(t *testing.T, c *plan.Cluster, addr string) *plan.Endpoint {
	t.Helper()
	for _, e := range c.Endpoints {
		if e.Address == addr {
			return e
		}
	}
	t.Fatalf("cluster %s: no endpoint at %s", c.Service, addr)
	return nil
}

func TestTableUpdate(t *testing.T) {
	labels := map[string]string{"zone": "a"}
	base := []EndpointSpec{
		{Instance: "i2", Address: "10.0.0.2:80"},
		{Instance: "i1", Address: "10.0.0.1:80", Labels: labels},
		{Instance: "i3", Address: "10.0.0.3:80"},
	}
	tests := []struct {
		name     string
		next     []EndpointSpec // for the address 10.0.0.1:80
		wantSame bool
	}{
		{"same instance, address and labels", []EndpointSpec{{Instance: "i1", Address: "10.0.0.1:80", Labels: map[string]string{"zone": "a"}}}, true},
		{"other instance at the address", []EndpointSpec{{Instance: "i9", Address: "10.0.0.1:80", Labels: labels}}, false},
		{"changed labels", []EndpointSpec{{Instance: "i1", Address: "10.0.0.1:80", Labels: map[string]string{"zone": "b"}}}, false},
		{"labels dropped", []EndpointSpec{{Instance: "i1", Address: "10.0.0.1:80"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			table := plan.NewTable(nil, plan.Policy{})
			updateTable(table, map[string][]EndpointSpec{"catalog": slices.Clone(base), "orders": nil})
			c := table.Lookup("catalog")
			if c == nil {
				t.Fatalf("Lookup(catalog): got nil, want a cluster")
			}
			var addrs []string
			for _, e := range c.Endpoints {
				addrs = append(addrs, e.Address)
			}
			if want := []string{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"}; !slices.Equal(addrs, want) {
				t.Fatalf("endpoints: got %v, want sorted %v", addrs, want)
			}
			e1, e2 := endpointByAddr(t, c, "10.0.0.1:80"), endpointByAddr(t, c, "10.0.0.2:80")
			e1.ConnectFailed()
			e2.ConnectFailed()

			next := append(slices.Clone(tt.next), EndpointSpec{Instance: "i2", Address: "10.0.0.2:80"})
			updateTable(table, map[string][]EndpointSpec{"catalog": next, "orders": nil})
			c2 := table.Lookup("catalog")
			n1 := endpointByAddr(t, c2, "10.0.0.1:80")
			if same := n1 == e1; same != tt.wantSame {
				t.Errorf("endpoint 10.0.0.1:80 kept: got %v, want %v", same, tt.wantSame)
			}
			now := time.Now().UnixNano()
			if got := n1.Ejected(now); got != tt.wantSame {
				t.Errorf("endpoint 10.0.0.1:80 ejected after update: got %v, want %v", got, tt.wantSame)
			}
			if n2 := endpointByAddr(t, c2, "10.0.0.2:80"); n2 != e2 || !n2.Ejected(now) {
				t.Errorf("unchanged endpoint 10.0.0.2:80: got same pointer %v ejected %v, want true true", n2 == e2, n2.Ejected(now))
			}
			if len(c2.Endpoints) != 2 {
				t.Errorf("endpoints after update: got %d, want 2 (10.0.0.3 dropped)", len(c2.Endpoints))
			}
		})
	}

	t.Run("known services", func(t *testing.T) {
		table := plan.NewTable(nil, plan.Policy{})
		updateTable(table, map[string][]EndpointSpec{"orders": nil, "catalog": specs("i1", "h:1")})
		if got, want := table.Services(), []string{"catalog", "orders"}; !slices.Equal(got, want) {
			t.Errorf("Services: got %v, want %v", got, want)
		}
		if c := table.Lookup("orders"); c == nil || len(c.Endpoints) != 0 {
			t.Errorf("Lookup(orders) with no endpoints: got %v, want an empty cluster", c)
		}
		updateTable(table, map[string][]EndpointSpec{"catalog": specs("i1", "h:1")})
		if c := table.Lookup("orders"); c != nil {
			t.Errorf("Lookup(orders) after removal: got %+v, want nil", c)
		}
	})
	t.Run("removed then re-added address is fresh", func(t *testing.T) {
		table := plan.NewTable(nil, plan.Policy{})
		updateTable(table, map[string][]EndpointSpec{"catalog": specs("i1", "h:1")})
		e := table.Lookup("catalog").Endpoints[0]
		e.ConnectFailed()
		updateTable(table, map[string][]EndpointSpec{"catalog": nil})
		updateTable(table, map[string][]EndpointSpec{"catalog": specs("i1", "h:1")})
		if n := table.Lookup("catalog").Endpoints[0]; n == e || n.Ejected(time.Now().UnixNano()) {
			t.Errorf("re-added endpoint: got same pointer %v ejected %v, want a fresh one", n == e, n.Ejected(time.Now().UnixNano()))
		}
	})
}

// meshErrorBody decodes the JSON body of a mesh error.
func meshErrorBody(t *testing.T, body string) plan.MeshError {
	t.Helper()
	var e plan.MeshError
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("mesh error body %q: %v", body, err)
	}
	return e
}

func TestOutboundRoutes(t *testing.T) {
	checkGoroutines(t)
	be, sn := backend(t, "b1")
	ms := newMesh(t, map[string][]EndpointSpec{"catalog": specs("c1", addrOf(be))}, 5*time.Second)
	direct := client(t, "")
	viaProxy := client(t, ms.outbound.URL)

	tests := []struct {
		name string
		send func() (*http.Response, string)
		uri  string
	}{
		{"proxy form", func() (*http.Response, string) {
			req, _ := http.NewRequest(http.MethodGet, "http://catalog/items?x=1", nil)
			return do(t, viaProxy, req)
		}, "/items?x=1"},
		{"proxy form with port", func() (*http.Response, string) {
			req, _ := http.NewRequest(http.MethodGet, "http://Catalog:8080/items", nil)
			return do(t, viaProxy, req)
		}, "/items"},
		{"reverse form", func() (*http.Response, string) { return ms.get(t, direct, "catalog", "/items?y=2") }, "/items?y=2"},
		{"reverse form upper case with port", func() (*http.Response, string) { return ms.get(t, direct, "CATALOG:80", "/items") }, "/items"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := tt.send()
			if resp.StatusCode != 200 || body != "b1 /items" || resp.Header.Get("X-Backend") != "b1" {
				t.Fatalf("response: got %d %q (X-Backend %q), want 200 \"b1 /items\"", resp.StatusCode, body, resp.Header.Get("X-Backend"))
			}
			if got := sn.get().uri; got != tt.uri {
				t.Errorf("backend request URI: got %q, want %q", got, tt.uri)
			}
		})
	}
	if got := sample(t, ms.reg, "weft_requests_total", "direction", "outbound", "destination_service", "catalog", "response_code", "200"); got != 4 {
		t.Errorf("weft_requests_total{catalog,200}: got %v, want 4", got)
	}
}

func TestOutboundHeaders(t *testing.T) {
	checkGoroutines(t)
	be, sn := backend(t, "b1")
	ms := newMesh(t, map[string][]EndpointSpec{"catalog": specs("c1", addrOf(be))}, 5*time.Second)
	c := client(t, "")

	req, _ := http.NewRequest(http.MethodGet, ms.outbound.URL+"/h", nil)
	req.Host = "catalog"
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	req.Header.Set("Connection", "X-Secret")
	req.Header.Set("X-Secret", "hop")
	req.Header.Set("X-Request-Id", "42")
	resp, _ := do(t, c, req)
	if resp.StatusCode != 200 {
		t.Fatalf("status: got %d, want 200", resp.StatusCode)
	}
	got := sn.get()
	if xff := got.header.Get("X-Forwarded-For"); xff != "203.0.113.9, 127.0.0.1" {
		t.Errorf("X-Forwarded-For at backend: got %q, want %q", xff, "203.0.113.9, 127.0.0.1")
	}
	if v := got.header.Get("X-Secret"); v != "" {
		t.Errorf("X-Secret (named by Connection) at backend: got %q, want absent", v)
	}
	if v := got.header.Get("X-Request-Id"); v != "42" {
		t.Errorf("X-Request-Id at backend: got %q, want 42", v)
	}
	if got.host != "catalog" {
		t.Errorf("Host at backend: got %q, want catalog", got.host)
	}
}

func TestOutboundMeshErrors(t *testing.T) {
	checkGoroutines(t)
	dead := closedAddr(t)
	slowRelease := make(chan struct{})
	slow := server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-slowRelease:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(slowRelease) }) // runs before slow.Close
	ms := newMesh(t, map[string][]EndpointSpec{
		"empty": nil,
		"dead":  specs("dead-1", dead),
		"slow":  specs("slow-1", addrOf(slow)),
	}, 300*time.Millisecond)
	c := client(t, "")

	tests := []struct {
		host     string
		status   int
		reason   string
		service  string
		instance string
		msgHas   string
	}{
		{"nosuch", 404, plan.ReasonUnknownService, "nosuch", "", `"nosuch"`},
		{"NoSuch:80", 404, plan.ReasonUnknownService, "nosuch", "", `"nosuch"`},
		{"empty", 503, plan.ReasonNoReadyInstance, "empty", "", "no ready instance"},
		{"dead", 502, plan.ReasonConnectFailed, "dead", "dead-1", dead},
		{"slow", 504, plan.ReasonUpstreamTimeout, "slow", "slow-1", "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			resp, body := ms.get(t, c, tt.host, "/x")
			if resp.StatusCode != tt.status || resp.Header.Get(plan.HeaderError) != tt.reason {
				t.Fatalf("response: got %d %s=%q, want %d %q (body %s)", resp.StatusCode, plan.HeaderError, resp.Header.Get(plan.HeaderError), tt.status, tt.reason, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type: got %q, want application/json", ct)
			}
			e := meshErrorBody(t, body)
			if e.Reason != tt.reason || e.Service != tt.service || e.Instance != tt.instance || !strings.Contains(e.Message, tt.msgHas) {
				t.Errorf("body: got %+v, want error %q service %q instance %q message containing %q", e, tt.reason, tt.service, tt.instance, tt.msgHas)
			}
			if got := sample(t, ms.reg, "weft_mesh_errors_total", "direction", "outbound", "service", tt.service, "reason", tt.reason); tt.reason != plan.ReasonUnknownService && got != 1 {
				t.Errorf("weft_mesh_errors_total{%s,%s}: got %v, want 1", tt.service, tt.reason, got)
			}
		})
	}
	if e := ms.table.Lookup("dead").Endpoints[0]; !e.Ejected(time.Now().UnixNano()) {
		t.Errorf("dead endpoint: got in rotation, want ejected")
	}
}

func TestOutboundConnectFailover(t *testing.T) {
	checkGoroutines(t)
	be, sn := backend(t, "live")
	dead := closedAddr(t)
	ms := newMesh(t, map[string][]EndpointSpec{"catalog": {
		{Instance: "dead-1", Address: dead},
		{Instance: "live-1", Address: addrOf(be)},
	}}, 5*time.Second)
	c := client(t, "")

	// Round robin starts at one or the other: two requests certainly try
	// the dead endpoint once. Bodies are sent whole to the live one.
	for i := range 2 {
		req, _ := http.NewRequest(http.MethodPost, ms.outbound.URL+"/items", strings.NewReader(fmt.Sprint("body-", i)))
		req.Host = "catalog"
		resp, body := do(t, c, req)
		if resp.StatusCode != 200 || body != "live /items" {
			t.Fatalf("request %d: got %d %q (%s), want 200 from live", i, resp.StatusCode, body, resp.Header.Get(plan.HeaderError))
		}
		if got := sn.get().body; got != fmt.Sprint("body-", i) {
			t.Errorf("request %d body at backend: got %q, want %q", i, got, fmt.Sprint("body-", i))
		}
	}
	cl := ms.table.Lookup("catalog")
	now := time.Now().UnixNano()
	if d := endpointByAddr(t, cl, dead); !d.Ejected(now) {
		t.Errorf("dead endpoint: got in rotation, want ejected")
	}
	if l := endpointByAddr(t, cl, addrOf(be)); l.Ejected(now) {
		t.Errorf("live endpoint: got ejected, want in rotation")
	}
	if got := sample(t, ms.reg, "weft_retries_total", "service", "catalog"); got != 1 {
		t.Errorf("weft_retries_total{catalog}: got %v, want 1", got)
	}
	// With the dead one ejected, further requests all go to the live one
	// without a retry.
	for range 3 {
		if resp, body := ms.get(t, c, "catalog", "/again"); resp.StatusCode != 200 {
			t.Fatalf("after ejection: got %d %q, want 200", resp.StatusCode, body)
		}
	}
	if got := sample(t, ms.reg, "weft_retries_total", "service", "catalog"); got != 1 {
		t.Errorf("weft_retries_total{catalog} after ejection: got %v, want still 1", got)
	}
}

func TestOutboundStreamsChunks(t *testing.T) {
	checkGoroutines(t)
	proceed := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(proceed) }) }
	be := server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		select {
		case <-proceed:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "second\n")
	}))
	t.Cleanup(release) // runs before be.Close
	ms := newMesh(t, map[string][]EndpointSpec{"stream": specs("s1", addrOf(be))}, 5*time.Second)
	c := client(t, "")

	req, _ := http.NewRequest(http.MethodGet, ms.outbound.URL+"/", nil)
	req.Host = "stream"
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	defer resp.Body.Close()
	if resp.ContentLength != -1 || !slices.Contains(resp.TransferEncoding, "chunked") {
		t.Errorf("framing: got Content-Length %d Transfer-Encoding %v, want -1 and chunked", resp.ContentLength, resp.TransferEncoding)
	}
	br := bufio.NewReader(resp.Body)
	type line struct {
		s   string
		err error
	}
	first := make(chan line, 1)
	go func() {
		s, err := br.ReadString('\n')
		first <- line{s, err}
	}()
	select {
	case l := <-first:
		if l.s != "first\n" || l.err != nil {
			t.Fatalf("first chunk: got (%q, %v), want \"first\\n\"", l.s, l.err)
		}
	case <-time.After(5 * time.Second):
		release() // unblock the reader before failing
		<-first
		t.Fatalf("first chunk: not received within 5s while the backend held the second; the proxy did not flush")
	}
	release()
	rest, err := io.ReadAll(br)
	if string(rest) != "second\n" || err != nil {
		t.Errorf("rest: got (%q, %v), want \"second\\n\"", rest, err)
	}
}

func TestOutboundTrailers(t *testing.T) {
	checkGoroutines(t)
	be := server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		io.WriteString(w, "payload")
		w.Header().Set("X-Checksum", "abc123")
		w.Header().Set(http.TrailerPrefix+"X-Late", "undeclared")
	}))
	ms := newMesh(t, map[string][]EndpointSpec{"catalog": specs("c1", addrOf(be))}, 5*time.Second)
	c := client(t, "")
	req, _ := http.NewRequest(http.MethodGet, ms.outbound.URL+"/", nil)
	req.Host = "catalog"
	req.Header.Set("TE", "trailers")
	resp, body := do(t, c, req)
	if resp.StatusCode != 200 || body != "payload" {
		t.Fatalf("response: got %d %q, want 200 payload", resp.StatusCode, body)
	}
	for k, want := range map[string]string{"X-Checksum": "abc123", "X-Late": "undeclared"} {
		if got := resp.Trailer.Get(k); got != want {
			t.Errorf("trailer %s: got %q, want %q (all trailers %v)", k, got, want, resp.Trailer)
		}
	}
}

func TestOutboundUpstreamReset(t *testing.T) {
	checkGoroutines(t)
	be := server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close() // no response at all
		}
	}))
	ms := newMesh(t, map[string][]EndpointSpec{"catalog": specs("c1", addrOf(be))}, 5*time.Second)
	resp, body := ms.get(t, client(t, ""), "catalog", "/")
	if resp.StatusCode != 502 || resp.Header.Get(plan.HeaderError) != plan.ReasonUpstreamReset {
		t.Errorf("response: got %d %q, want 502 %q (body %s)", resp.StatusCode, resp.Header.Get(plan.HeaderError), plan.ReasonUpstreamReset, body)
	}
	if e := ms.table.Lookup("catalog").Endpoints[0]; e.Ejected(time.Now().UnixNano()) {
		t.Errorf("endpoint that accepted the connection: got ejected, want in rotation")
	}
}

func newInbound(t *testing.T, app string) *httptest.Server {
	t.Helper()
	return server(t, stdhttp.NewInbound("catalog", "catalog-1", app, transport(t), plan.NewMetrics(prometheus.NewRegistry())))
}

func TestInbound(t *testing.T) {
	checkGoroutines(t)
	app, sn := backend(t, "app")
	c := client(t, "")
	tests := []struct {
		name   string
		app    string
		method string
		status int
		reason string
		body   string
	}{
		{"forwards to the app", addrOf(app), http.MethodGet, 200, "", "app /orders"},
		{"app down", closedAddr(t), http.MethodGet, 502, plan.ReasonConnectFailed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := newInbound(t, tt.app)
			req, _ := http.NewRequest(tt.method, in.URL+"/orders", nil)
			req.Host = "catalog"
			req.Header.Set("X-Forwarded-For", "10.9.9.9")
			resp, body := do(t, c, req)
			if resp.StatusCode != tt.status || resp.Header.Get(plan.HeaderError) != tt.reason {
				t.Fatalf("response: got %d %q, want %d %q (body %s)", resp.StatusCode, resp.Header.Get(plan.HeaderError), tt.status, tt.reason, body)
			}
			if tt.reason == "" {
				if body != tt.body {
					t.Errorf("body: got %q, want %q", body, tt.body)
				}
				if xff := sn.get().header.Get("X-Forwarded-For"); xff != "10.9.9.9, 127.0.0.1" {
					t.Errorf("X-Forwarded-For at app: got %q, want %q", xff, "10.9.9.9, 127.0.0.1")
				}
				return
			}
			e := meshErrorBody(t, body)
			if e.Service != "catalog" || e.Instance != "catalog-1" || !strings.Contains(e.Message, tt.app) {
				t.Errorf("body: got %+v, want service catalog instance catalog-1 message naming %s", e, tt.app)
			}
		})
	}
}

// An inbound whose app is down answers 502 upstream-connect-failed; the
// outbound in front of it takes that as a connect failure and tries the
// other instance.
func TestOutboundFailsOverPastPeerWithoutApp(t *testing.T) {
	checkGoroutines(t)
	app, _ := backend(t, "app")
	inDown := newInbound(t, closedAddr(t))
	inUp := newInbound(t, addrOf(app))
	ms := newMesh(t, map[string][]EndpointSpec{"catalog": specs("down", addrOf(inDown), "up", addrOf(inUp))}, 5*time.Second)
	c := client(t, "")
	for i := range 2 {
		resp, body := ms.get(t, c, "catalog", "/p")
		if resp.StatusCode != 200 || body != "app /p" {
			t.Fatalf("request %d: got %d %q, want 200 from the app behind the live peer", i, resp.StatusCode, body)
		}
	}
	if e := endpointByAddr(t, ms.table.Lookup("catalog"), addrOf(inDown)); !e.Ejected(time.Now().UnixNano()) {
		t.Errorf("peer without app: got in rotation, want ejected")
	}
}

func BenchmarkOutboundRoundTrip(b *testing.B) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "ok")
	}))
	defer app.Close()
	inTr := stdhttp.NewTransport()
	defer inTr.CloseIdleConnections()
	in := httptest.NewServer(stdhttp.NewInbound("catalog", "catalog-1", addrOf(app), inTr, plan.NewMetrics(prometheus.NewRegistry())))
	defer in.Close()
	m := plan.NewMetrics(prometheus.NewRegistry())
	table := plan.NewTable(m, plan.Policy{Timeout: 5 * time.Second})
	updateTable(table, map[string][]EndpointSpec{"catalog": {{Instance: "catalog-1", Address: addrOf(in)}}})
	outTr := stdhttp.NewTransport()
	defer outTr.CloseIdleConnections()
	out := httptest.NewServer(stdhttp.NewOutbound(table, outTr, outTr, m, discard))
	defer out.Close()
	ctr := &http.Transport{MaxIdleConnsPerHost: 16}
	defer ctr.CloseIdleConnections()
	c := &http.Client{Transport: ctr}

	req, err := http.NewRequest(http.MethodGet, out.URL+"/bench", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Host = "catalog"
	b.ReportAllocs()
	for b.Loop() {
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status: got %d, want 200", resp.StatusCode)
		}
	}
}

// resetBackend accepts each request and closes the connection without answering.
func resetBackend(t *testing.T) (*httptest.Server, *seen) {
	t.Helper()
	sn := &seen{}
	s := server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		sn.mu.Lock()
		sn.reqs++
		sn.mu.Unlock()
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
		}
	}))
	return s, sn
}

func TestOutboundBrokenConnectionRetry(t *testing.T) {
	checkGoroutines(t)
	rst, rsn := resetBackend(t)
	live, lsn := backend(t, "live")
	tests := []struct {
		method     string
		body       string
		wantStatus []int // of two consecutive requests, sorted
		wantLive   int   // requests the live backend sees
		wantReset  int   // requests the resetting backend sees; 0: at least one
	}{
		// A safe request without a body goes to the other instance.
		{http.MethodGet, "", []int{200, 200}, 2, 0},
		{http.MethodHead, "", []int{200, 200}, 2, 0},
		// One with a body, or unsafe, is answered with the failure.
		{http.MethodPost, "x", []int{200, 502}, 1, 1},
		{http.MethodPut, "", []int{200, 502}, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			ms := newMesh(t, map[string][]EndpointSpec{"catalog": specs("reset", addrOf(rst), "live", addrOf(live))}, 5*time.Second)
			c := client(t, "")
			r0, l0 := rsn.get().reqs, lsn.get().reqs
			var got []int
			for range 2 {
				var body io.Reader
				if tt.body != "" {
					body = strings.NewReader(tt.body)
				}
				req, _ := http.NewRequest(tt.method, ms.outbound.URL+"/", body)
				req.Host = "catalog"
				resp, b := do(t, c, req)
				got = append(got, resp.StatusCode)
				if resp.StatusCode == 502 && resp.Header.Get(plan.HeaderError) != plan.ReasonUpstreamReset {
					t.Errorf("502: got %s %q (%s), want %q", plan.HeaderError, resp.Header.Get(plan.HeaderError), b, plan.ReasonUpstreamReset)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.wantStatus) {
				t.Errorf("statuses: got %v, want %v", got, tt.wantStatus)
			}
			// (A retry advances the round robin too, so a retried GET can
			// meet the resetting backend on both requests.)
			r, l := rsn.get().reqs-r0, lsn.get().reqs-l0
			if r < 1 || (tt.wantReset != 0 && r != tt.wantReset) || l != tt.wantLive {
				t.Errorf("requests seen: got reset %d live %d, want reset %d (0: at least 1) live %d", r, l, tt.wantReset, tt.wantLive)
			}
			if e := endpointByAddr(t, ms.table.Lookup("catalog"), addrOf(rst)); e.Ejected(time.Now().UnixNano()) {
				t.Errorf("endpoint that accepted the connection: got ejected, want in rotation")
			}
		})
	}
}

// Every request counted in flight is counted out, however it ends.
func TestInFlightReturnsToZero(t *testing.T) {
	checkGoroutines(t)
	arrived := make(chan struct{}, 1)
	hold := server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-r.Context().Done()
	}))
	cut := server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		io.WriteString(w, "only ten..") // then the server closes: the body is short
	}))
	ok, _ := backend(t, "ok")

	tests := []struct {
		name      string
		service   string // "" for egress
		target    string // host:port for egress
		cancel    bool   // the client goes away once the request reached the backend
		direction string
	}{
		{name: "answered", service: "ok", direction: "outbound"},
		{name: "no ready instance", service: "empty", direction: "outbound"},
		{name: "client gone", service: "hold", cancel: true, direction: "outbound"},
		{name: "upstream body cut", service: "cut", direction: "outbound"},
		{name: "egress answered", target: addrOf(ok), direction: "egress"},
		{name: "egress client gone", target: addrOf(hold), cancel: true, direction: "egress"},
		{name: "egress upstream body cut", target: addrOf(cut), direction: "egress"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms := newMesh(t, map[string][]EndpointSpec{
				"ok": specs("ok-1", addrOf(ok)), "hold": specs("hold-1", addrOf(hold)), "cut": specs("cut-1", addrOf(cut)), "empty": nil,
			}, 5*time.Second)
			label := tt.service
			if tt.direction == "egress" {
				label = "egress"
			}
			inflight := func() float64 {
				return sample(t, ms.reg, "weft_requests_in_flight", "direction", tt.direction, "service", label)
			}
			c := client(t, ms.outbound.URL)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			host := tt.service
			if tt.target != "" {
				host = tt.target
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+"/", nil)
			done := make(chan error, 1)
			go func() {
				resp, err := c.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				done <- err
			}()
			if tt.cancel {
				select {
				case <-arrived:
				case <-time.After(5 * time.Second):
					t.Fatalf("request did not reach the backend in 5s")
				}
				cancel()
			}
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				cancel()
				<-done
				t.Fatalf("request did not end in 10s")
			}
			deadline := time.Now().Add(time.Second)
			for inflight() != 0 && time.Now().Before(deadline) {
				<-time.After(5 * time.Millisecond)
			}
			if v := inflight(); v != 0 {
				t.Errorf("weft_requests_in_flight{%s,%s} 1s after the request ended: got %v, want 0", tt.direction, label, v)
			}
		})
	}
}
