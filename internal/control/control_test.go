package control

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/push"
	"github.com/weftmesh/weft/internal/registry"
	"github.com/weftmesh/weft/internal/store/storetest"
	"github.com/weftmesh/weft/internal/telemetry"
)

func TestMain(m *testing.M) { storetest.Main(m) }

// testControl is a control plane on an embedded etcd and an ephemeral
// port, serving until the test ends.
type testControl struct {
	*Control
	api  *api.Client
	http *http.Client
}

func start(t *testing.T) *testControl { t.Helper(); return startWith(t, nil) }

// startWith is start with edit applied to the config (nil: none).
func startWith(t *testing.T, edit func(*Config)) *testControl {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cfg := Default()
	cfg.Listen, cfg.DataDir = "127.0.0.1:0", t.TempDir()
	if edit != nil {
		edit(&cfg)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	c, err := New(ctx, cfg, Deps{Logger: log, Registry: telemetry.NewRegistry()})
	if err != nil {
		cancel()
		t.Fatalf("control.New: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	// Connections of this test only, closed at the end, so none outlive it.
	tr := &http.Transport{Proxy: nil}
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	cl := api.NewClient(c.URL())
	if c.apiCert != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: pool(c.identity.ca.Bundle())}
	}
	cl.HTTP = hc
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: got %v, want nil", err)
		}
		tr.CloseIdleConnections()
	})
	tc := &testControl{Control: c, api: cl, http: hc}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := tc.get(t, "/readyz")
		if code == http.StatusOK {
			return tc
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz: got %d %s, want 200 within 10s", code, body)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}

// pool is a cert pool of certs.
func pool(certs []*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

// do sends a raw request and returns the status and body.
func (tc *testControl) do(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, tc.URL()+path, strings.NewReader(body))
	if tc.api.Token != "" {
		req.Header.Set("Authorization", "Bearer "+tc.api.Token) // (the API token it left for this user)
	}
	resp, err := tc.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (tc *testControl) get(t *testing.T, path string) (int, string) {
	t.Helper()
	return tc.do(t, http.MethodGet, path, "")
}

func ctx(t *testing.T) context.Context { return storetest.Ctx(t) }

func TestProxyAndInstanceShareOneLease(t *testing.T) {
	tc := start(t)
	p := registry.Proxy{Service: "catalog", ID: "catalog-1", Outbound: "127.0.0.1:15001", Inbound: "127.0.0.1:15006", Version: "dev"}
	pr, err := tc.api.RegisterProxy(ctx(t), api.ProxyRequest{Proxy: p, TTLSeconds: 30})
	if err != nil || pr.Lease == 0 || pr.TTLSeconds != 30 {
		t.Fatalf("RegisterProxy: got (%+v, %v), want a lease of 30s", pr, err)
	}
	in := registry.Instance{Service: "catalog", ID: "catalog-1", Address: "127.0.0.1:15006", Ready: true}
	ir, err := tc.api.Register(ctx(t), api.RegisterRequest{Instance: in, Lease: pr.Lease, TTLSeconds: 30})
	if err != nil || ir.Lease != pr.Lease {
		t.Fatalf("Register with the proxy's lease: got (%+v, %v), want lease %s", ir, err, pr.Lease)
	}
	consumer := registry.Proxy{Service: "web", ID: "web-1", Outbound: "127.0.0.1:15002"}
	if _, err := tc.api.RegisterProxy(ctx(t), api.ProxyRequest{Proxy: consumer}); err != nil {
		t.Fatalf("RegisterProxy consumer: %v", err)
	}

	// Lease ids are strings in JSON, in both lists.
	want := `"lease": "` + pr.Lease.String() + `"`
	for _, path := range []string{"/v1/instances", "/v1/proxies?service=catalog"} {
		if code, body := tc.get(t, path); code != 200 || !strings.Contains(body, want) {
			t.Errorf("GET %s: got %d %s, want 200 containing %s", path, code, body, want)
		}
	}
	list, err := tc.api.Proxies(ctx(t), "")
	if err != nil || len(list) != 2 || list[0].ID != "catalog-1" || list[1].ID != "web-1" {
		t.Fatalf("Proxies: got (%+v, %v), want catalog-1 and web-1", list, err)
	}
	// The consumer has a proxy record but no instance.
	if insts, _ := tc.api.Instances(ctx(t), "web"); len(insts) != 0 {
		t.Errorf("instances of web: got %+v, want none", insts)
	}
	if err := tc.api.KeepAlive(ctx(t), pr.Lease); err != nil {
		t.Errorf("KeepAlive: got %v, want nil", err)
	}

	// Deregistering the instance revokes the lease: the proxy goes with it.
	if err := tc.api.Deregister(ctx(t), "catalog", "catalog-1"); err != nil {
		t.Fatalf("Deregister: %v", err)
	}
	if list, _ := tc.api.Proxies(ctx(t), ""); len(list) != 1 || list[0].ID != "web-1" {
		t.Errorf("Proxies after Deregister: got %+v, want web-1 alone", list)
	}
	if err := tc.api.KeepAlive(ctx(t), pr.Lease); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("KeepAlive of the revoked lease: got %v, want ErrNotFound", err)
	}
	if err := tc.api.DeregisterProxy(ctx(t), "web", "web-1"); err != nil {
		t.Fatalf("DeregisterProxy: %v", err)
	}
	if list, _ := tc.api.Proxies(ctx(t), ""); len(list) != 0 {
		t.Errorf("Proxies after DeregisterProxy: got %+v, want none", list)
	}
}

func TestRegistrationErrors(t *testing.T) {
	tc := start(t)
	tests := []struct {
		name, method, path, body string
		wantCode                 int
		wantBody                 string
	}{
		{"instance path mismatch", "PUT", "/v1/instances/a/b", `{"instance":{"service":"a","id":"c","address":"h:1"}}`, 400, "must match the path"},
		{"instance invalid", "PUT", "/v1/instances/a/b", `{"instance":{"service":"a","id":"b","address":"nohost"}}`, 422, `address: \"nohost\" is not host:port`},
		{"instance bad body", "PUT", "/v1/instances/a/b", `{`, 400, "body:"},
		{"proxy path mismatch", "PUT", "/v1/proxies/a/b", `{"proxy":{"service":"x","id":"b","outbound":"h:1"}}`, 400, "proxy.service and proxy.id must match the path"},
		{"proxy invalid", "PUT", "/v1/proxies/a/b", `{"proxy":{"service":"a","id":"b","outbound":"h"}}`, 422, `outbound: \"h\" is not host:port`},
		{"proxy lease not a number", "PUT", "/v1/proxies/a/b", `{"proxy":{"service":"a","id":"b","outbound":"h:1"},"lease":"x1"}`, 400, "want a decimal integer"},
		{"keepalive not a number", "POST", "/v1/leases/abc/keepalive", ``, 400, `lease \"abc\": want a decimal lease id`},
		{"keepalive unknown", "POST", "/v1/leases/12345/keepalive", ``, 404, "lease not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := tc.do(t, tt.method, tt.path, tt.body)
			if code != tt.wantCode || !strings.Contains(body, tt.wantBody) {
				t.Errorf("%s %s: got %d %s, want %d containing %s", tt.method, tt.path, code, body, tt.wantCode, tt.wantBody)
			}
		})
	}
	if list, _ := tc.api.Proxies(ctx(t), ""); len(list) != 0 {
		t.Errorf("proxies after bad requests: got %+v, want none", list)
	}
}

const legacy = `apiVersion: weftmesh.io/v1alpha1
kind: ExternalService
metadata:
  name: legacy
spec:
  endpoints:
  - address: 10.0.0.7:8080
`

func TestResources(t *testing.T) {
	tc := start(t)
	c := tc.api

	_, err := c.Resource(ctx(t), "ExternalService", "legacy")
	if !errors.Is(err, api.ErrNotFound) || err.Error() != "ExternalService/legacy not found" {
		t.Errorf("Resource before apply: got %v, want ErrNotFound saying ExternalService/legacy not found", err)
	}
	res, err := c.Apply(ctx(t), []byte(legacy))
	if err != nil || len(res) != 1 || res[0].Ref != "ExternalService/legacy" || res[0].Outcome != "created" {
		t.Fatalf("Apply: got (%+v, %v), want ExternalService/legacy created", res, err)
	}
	if res, _ := c.Apply(ctx(t), []byte(legacy)); len(res) != 1 || res[0].Outcome != "unchanged" {
		t.Errorf("Apply again: got %+v, want unchanged", res)
	}
	r, err := c.Resource(ctx(t), "externalservices", "legacy")
	if err != nil || r.Metadata.Name != "legacy" || r.Metadata.Revision == 0 {
		t.Errorf("Resource: got (%+v, %v), want legacy with a revision", r, err)
	}
	svcs, err := c.Services(ctx(t))
	if err != nil || len(svcs) != 1 || svcs[0] != (api.Service{Name: "legacy", Kind: "external", Instances: 1, Ready: 1}) {
		t.Errorf("Services: got (%+v, %v), want legacy external 1/1", svcs, err)
	}
	d, err := c.Service(ctx(t), "legacy")
	if err != nil || len(d.External) != 1 || d.External[0].Address != "10.0.0.7:8080" {
		t.Errorf("Service legacy: got (%+v, %v), want its endpoint", d, err)
	}
	if _, err := c.Service(ctx(t), "nothing"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("Service nothing: got %v, want ErrNotFound", err)
	}

	// A bad file is refused whole, with the field named, and changes nothing.
	bad := legacy + "---\n" + strings.Replace(strings.Replace(legacy, "legacy", "other", 1), "10.0.0.7:8080", "nohost", 1)
	code, body := tc.do(t, http.MethodPost, "/v1/resources", bad)
	if code != 422 || !strings.Contains(body, `"field": "spec.endpoints[0].address"`) {
		t.Errorf("apply bad: got %d %s, want 422 naming spec.endpoints[0].address", code, body)
	}
	if list, _ := c.Resources(ctx(t), "ExternalService"); len(list) != 1 {
		t.Errorf("resources after a bad apply: got %d, want 1", len(list))
	}

	// Errors echo the user's words as they are, without \u003c escapes.
	code, body = tc.get(t, "/v1/resources/%3Cwidget%3E")
	if code != 404 || !strings.Contains(body, `unknown kind \"<widget>\"`) {
		t.Errorf("unknown kind: got %d %s, want 404 with <widget> unescaped", code, body)
	}

	if err := c.Delete(ctx(t), "ExternalService", "legacy"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := c.Delete(ctx(t), "ExternalService", "legacy"); !errors.Is(err, api.ErrNotFound) || err.Error() != "ExternalService/legacy not found" {
		t.Errorf("Delete again: got %v, want ErrNotFound saying ExternalService/legacy not found", err)
	}
}

func TestVersionHealthMetrics(t *testing.T) {
	tc := start(t)
	v, err := tc.api.Version(ctx(t))
	if err != nil || v.Store != "embedded" || v.Version == "" {
		t.Errorf("Version: got (%+v, %v), want an embedded store", v, err)
	}
	if code, body := tc.get(t, "/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("healthz: got %d %q, want 200 ok", code, body)
	}
	if code, body := tc.get(t, "/metrics"); code != 200 || !strings.Contains(body, "weft_control_streams 0") {
		t.Errorf("metrics: got %d, want weft_control_streams 0 in:\n%.500s", code, body)
	}
}

// A sidecar's stream sees instances come and go, and the service record
// that outlives them; proxy records are not pushed (no sidecar routes by
// them).
func TestStreamCarriesInstancesNotProxies(t *testing.T) {
	tc := start(t)
	var mu sync.Mutex
	var last push.State
	pc := &push.Client{Base: tc.api.Base, HTTP: tc.http, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnState: func(st push.State, rev int64) {
			mu.Lock()
			defer mu.Unlock()
			last = push.State{}
			for k, v := range st {
				last[k] = v
			}
		}}
	sctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = pc.Run(sctx) }()
	defer func() { stop(); <-done }()

	p := registry.Proxy{Service: "catalog", ID: "c1", Outbound: "127.0.0.1:15001"}
	pr, err := tc.api.RegisterProxy(ctx(t), api.ProxyRequest{Proxy: p})
	if err != nil {
		t.Fatal(err)
	}
	in := registry.Instance{Service: "catalog", ID: "c1", Address: "127.0.0.1:15006", Ready: true}
	if _, err := tc.api.Register(ctx(t), api.RegisterRequest{Instance: in, Lease: pr.Lease}); err != nil {
		t.Fatal(err)
	}
	waitState(t, &mu, &last, func(st push.State) bool { _, ok := st[registry.Key("catalog", "c1")]; return ok })
	mu.Lock()
	_, pushedProxy := last[registry.ProxyKey("catalog", "c1")]
	mu.Unlock()
	if pushedProxy {
		t.Errorf("stream state holds the proxy record, want instances, service records and config only")
	}
	if err := tc.api.Deregister(ctx(t), "catalog", "c1"); err != nil {
		t.Fatal(err)
	}
	// The instance goes; the service record stays, so sidecars keep
	// knowing the name.
	waitState(t, &mu, &last, func(st push.State) bool {
		_, known := st[registry.ServiceKey("catalog")]
		return len(st) == 1 && known
	})
}

func waitState(t *testing.T, mu *sync.Mutex, st *push.State, cond func(push.State) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		ok := *st != nil && cond(*st)
		seen := len(*st)
		mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream state: condition not met within 10s; last state had %d keys", seen)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}
