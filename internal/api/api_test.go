package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/registry"
)

// recorded is one request the test server saw.
type recorded struct {
	method, path, query string
	body                []byte
}

// server answers each request with the handler's reply and records it.
func server(t *testing.T, reply func(w http.ResponseWriter, r *http.Request)) (*Client, func() []recorded) {
	t.Helper()
	var mu sync.Mutex
	var seen []recorded
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, recorded{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, b})
		mu.Unlock()
		reply(w, r)
	}))
	t.Cleanup(srv.Close)
	return NewClient(strings.TrimPrefix(srv.URL, "http://")), func() []recorded {
		mu.Lock()
		defer mu.Unlock()
		return append([]recorded(nil), seen...)
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestNewClientBase(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:15010":          "http://127.0.0.1:15010",
		"http://cp.example:15010/": "http://cp.example:15010",
		"https://cp.example":       "https://cp.example",
	} {
		if got := NewClient(in).Base; got != want {
			t.Errorf("NewClient(%q).Base: got %q, want %q", in, got, want)
		}
	}
}

func TestRegisterSendsAndReadsLeaseAsString(t *testing.T) {
	c, seen := server(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"lease":"4611686018427387905","ttlSeconds":10}`)
	})
	in := registry.Instance{Service: "catalog", ID: "catalog 1", Address: "10.0.0.1:15006", Ready: true}
	resp, err := c.Register(ctx(t), RegisterRequest{Instance: in, Lease: 7, TTLSeconds: 10})
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	if resp.Lease != 1<<62+1 || resp.TTLSeconds != 10 {
		t.Errorf("Register answer: got %+v, want lease 4611686018427387905, ttl 10", resp)
	}
	req := seen()[0]
	if req.method != http.MethodPut || req.path != "/v1/instances/catalog/catalog%201" {
		t.Errorf("request: got %s %s, want PUT /v1/instances/catalog/catalog%%201", req.method, req.path)
	}
	if !strings.Contains(string(req.body), `"lease":"7"`) {
		t.Errorf("request body: got %s, want the lease as a string", req.body)
	}
}

func TestKeepAliveAndProxyPaths(t *testing.T) {
	c, seen := server(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			io.WriteString(w, `[{"service":"web","id":"web-1","outbound":"127.0.0.1:15001","since":"2024-01-02T03:04:05Z","lease":"12"}]`)
			return
		}
		if r.Method == http.MethodPut {
			io.WriteString(w, `{"lease":"12","ttlSeconds":10}`)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	if err := c.KeepAlive(ctx(t), 1<<62+1); err != nil {
		t.Fatalf("KeepAlive: %v", err)
	}
	p := registry.Proxy{Service: "web", ID: "web-1", Outbound: "127.0.0.1:15001"}
	if r, err := c.RegisterProxy(ctx(t), ProxyRequest{Proxy: p, Lease: 12}); err != nil || r.Lease != 12 {
		t.Fatalf("RegisterProxy: got (%+v, %v), want lease 12", r, err)
	}
	list, err := c.Proxies(ctx(t), "web")
	if err != nil || len(list) != 1 || list[0].Lease != 12 || list[0].Outbound != "127.0.0.1:15001" {
		t.Fatalf("Proxies: got (%+v, %v), want web-1 with lease 12", list, err)
	}
	if err := c.DeregisterProxy(ctx(t), "web", "web-1"); err != nil {
		t.Fatalf("DeregisterProxy: %v", err)
	}
	want := []string{
		"POST /v1/leases/4611686018427387905/keepalive ",
		"PUT /v1/proxies/web/web-1 ",
		"GET /v1/proxies service=web",
		"DELETE /v1/proxies/web/web-1 ",
	}
	got := seen()
	for i, w := range want {
		if i >= len(got) {
			t.Fatalf("request %d: got none, want %s", i, w)
		}
		if g := got[i].method + " " + got[i].path + " " + got[i].query; g != w {
			t.Errorf("request %d: got %q, want %q", i, g, w)
		}
	}
}

func TestErrorAnswers(t *testing.T) {
	tests := []struct {
		name     string
		code     int
		body     string
		wantMsg  string
		notFound bool
	}{
		{"not found says it once", 404, `{"error":"ExternalService/legacy not found"}`, "ExternalService/legacy not found", true},
		{"not found without a body", 404, ``, "not found", true},
		{"validation error", 422, `{"error":"spec.endpoints[0].address: \"x\" is not host:port","field":"spec.endpoints[0].address"}`, `spec.endpoints[0].address: "x" is not host:port`, false},
		{"plain text error", 503, "etcd is down\n", "etcd is down", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.code)
				io.WriteString(w, tt.body)
			})
			_, err := c.Resource(ctx(t), "ExternalService", "legacy")
			if err == nil || err.Error() != tt.wantMsg {
				t.Fatalf("error: got %v, want %q", err, tt.wantMsg)
			}
			if got := errors.Is(err, ErrNotFound); got != tt.notFound {
				t.Errorf("errors.Is(err, ErrNotFound): got %v, want %v", got, tt.notFound)
			}
		})
	}
}

func TestBadAnswerNamesTheRequest(t *testing.T) {
	c, _ := server(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{not json`) })
	_, err := c.Services(ctx(t))
	if err == nil || !strings.Contains(err.Error(), "bad answer to GET /v1/services") {
		t.Errorf("error: got %v, want one naming GET /v1/services", err)
	}
}

func TestUnreachableSuggestsAFix(t *testing.T) {
	// A port that was just free: nothing listens there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	_, err = NewClient(addr).Version(ctx(t))
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("error: got %v, want ErrUnreachable", err)
	}
	for _, want := range []string{"control plane at http://" + addr + " unreachable", "connection refused", "weft control", "--control", "WEFT_CONTROL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error: got %q, want it to contain %q", err, want)
		}
	}
	var op *net.OpError
	if !errors.As(err, &op) {
		t.Errorf("error: got %v, want the dial error still inside", err)
	}

	// A connection that breaks mid-request is not "unreachable".
	c, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
	})
	if _, err := c.Version(ctx(t)); err == nil || errors.Is(err, ErrUnreachable) {
		t.Errorf("broken connection: got %v, want an error that is not ErrUnreachable", err)
	}
}

func TestDoIgnoresProxyEnvironment(t *testing.T) {
	c, seen := server(t, func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(Version{Version: "v1", Store: "embedded"})
	})
	// HTTP_PROXY is for the app: a proxy that does not exist must not matter.
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:1")
	t.Setenv("http_proxy", "http://127.0.0.1:1")
	v, err := c.Version(ctx(t))
	if err != nil || v.Version != "v1" || v.Store != "embedded" {
		t.Fatalf("Version: got (%+v, %v), want v1 embedded", v, err)
	}
	if n := len(seen()); n != 1 {
		t.Errorf("requests: got %d, want 1", n)
	}
}

func TestUnreachableSaysTheAddressOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = NewClient(addr).Services(ctx(t))
	want := "control plane at http://" + addr + " unreachable: dial tcp " + addr + ": connect: connection refused (start one with `weft control`, or point --control or WEFT_CONTROL at a running one)"
	if err == nil || err.Error() != want {
		t.Errorf("error:\n got %v\nwant %s", err, want)
	}
}
