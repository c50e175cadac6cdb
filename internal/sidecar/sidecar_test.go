package sidecar

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/internal/push"
	"github.com/weftmesh/weft/internal/registry"
)

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startSidecar runs a consumer-only sidecar on 127.0.0.1:0 whose control
// plane is unreachable: the test feeds it state with applyState.
func startSidecar(t *testing.T, mod func(*Config)) *Sidecar {
	t.Helper()
	s, _ := runSidecar(t, nil, func(c *Config) {
		c.Control = closedAddr(t)
		if mod != nil {
			mod(c)
		}
	})
	return s
}

// runSidecar runs a sidecar (service web, id web-1, listeners on
// 127.0.0.1:0, mod applied) logging to log (nil: nowhere) until stop,
// which returns Run's error and also runs when the test ends.
func runSidecar(t *testing.T, log *slog.Logger, mod func(*Config)) (s *Sidecar, stop func() error) {
	t.Helper()
	cfg := Default()
	cfg.Service, cfg.ID = "web", "web-1"
	cfg.Outbound, cfg.Inbound, cfg.Admin = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.DrainTimeout = time.Second
	if mod != nil {
		mod(&cfg)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s, err := New(cfg, Deps{Logger: log, Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(10 * time.Second):
				runErr = errors.New("Run did not return within 10s of its context ending")
			}
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return s, stop
}

func instanceRecord(t *testing.T, in registry.Instance) (string, json.RawMessage) {
	t.Helper()
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	return registry.Key(in.Service, in.ID), b
}

// A name the mesh has known (its service record stays after its last
// instance) answers 503 no-ready-instance, in proxy form too: it never
// goes out as egress to whatever host the name resolves to.
func TestKnownServiceWithoutInstances(t *testing.T) {
	s := startSidecar(t, nil)
	st := push.State{registry.ServiceKey("hello"): json.RawMessage(`{"name":"hello"}`)}
	s.applyState(st, 5)
	out, _, _ := s.Addrs()
	proxyURL, _ := url.Parse("http://" + out)
	tr := &http.Transport{Proxy: http.ProxyURL(proxyURL)}
	t.Cleanup(tr.CloseIdleConnections)
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("http://hello/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("X-Weft-Error") != "no-ready-instance" {
		t.Errorf("got %d %q (%s), want 503 no-ready-instance", resp.StatusCode, resp.Header.Get("X-Weft-Error"), body)
	}
	if strings.Contains(string(body), "egress") {
		t.Errorf("body %s names egress", body)
	}
}

// /config is the user's view: listeners as bound, durations as on the
// command line, each endpoint's protocol, readiness and health.
func TestConfigView(t *testing.T) {
	s := startSidecar(t, func(c *Config) { c.Upstreams = []Upstream{{Service: "db", Listen: "127.0.0.1:0", TCP: true}} })
	st := push.State{}
	k, v := instanceRecord(t, registry.Instance{Service: "catalog", ID: "c1", Address: "127.0.0.1:1", Ready: true, Protocol: "http"})
	st[k] = v
	k, v = instanceRecord(t, registry.Instance{Service: "catalog", ID: "c2", Address: "127.0.0.1:2", Ready: false, Protocol: "http"})
	st[k] = v
	st["/weft/config/ExternalService/legacy"] = json.RawMessage(`{"apiVersion":"weftmesh.io/v1alpha1","kind":"ExternalService","metadata":{"name":"legacy"},"spec":{"endpoints":[{"address":"127.0.0.1:3"}]}}`)
	s.applyState(st, 9)

	_, _, admin := s.Addrs()
	resp, err := http.Get("http://" + admin + "/config")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v2 struct {
		Listeners struct {
			Outbound, Admin string
			Upstreams       []struct{ Service, Address string }
		}
		Settings map[string]any
		Services map[string]struct {
			External  bool
			Endpoints []struct{ Instance, Protocol, Health string }
		}
	}
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &v2); err != nil {
		t.Fatalf("/config: %v in %s", err, raw)
	}
	for name, addr := range map[string]string{"outbound": v2.Listeners.Outbound, "admin": v2.Listeners.Admin} {
		if strings.HasSuffix(addr, ":0") || addr == "" {
			t.Errorf("listener %s: got %q, want the bound address", name, addr)
		}
	}
	if len(v2.Listeners.Upstreams) != 1 || strings.HasSuffix(v2.Listeners.Upstreams[0].Address, ":0") {
		t.Errorf("upstreams: got %+v, want db at its bound address", v2.Listeners.Upstreams)
	}
	if got := v2.Settings["detectTimeout"]; got != "100ms" {
		t.Errorf("settings.detectTimeout: got %v, want \"100ms\"", got)
	}
	if got := v2.Settings["tcpIdleTimeout"]; got != "1h" {
		t.Errorf("settings.tcpIdleTimeout: got %v, want \"1h\"", got)
	}
	cat := v2.Services["catalog"].Endpoints
	if len(cat) != 2 || cat[0].Health != "ready" || cat[1].Health != "not-ready" || cat[0].Protocol != "http" {
		t.Errorf("catalog endpoints: got %+v, want c1 ready, c2 not-ready, protocol http", cat)
	}
	if lg := v2.Services["legacy"]; !lg.External || len(lg.Endpoints) != 1 || lg.Endpoints[0].Health != "unchecked" {
		t.Errorf("legacy: got %+v, want one external endpoint, unchecked", lg)
	}
	if strings.Contains(string(raw), "DetectTimeout") || strings.Contains(string(raw), "100000000") {
		t.Errorf("/config shows Go field names or nanoseconds: %s", raw)
	}
}

func TestDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		100 * time.Millisecond: "100ms", 15 * time.Second: "15s", time.Hour: "1h",
		90 * time.Second: "1m30s", 2 * time.Minute: "2m", time.Hour + time.Second: "1h0m1s",
	} {
		if got := duration(d); got != want {
			t.Errorf("duration(%v): got %q, want %q", d, got, want)
		}
	}
}

// After traffic, /config shows each endpoint's state as this sidecar sees
// it: attempts, failures, the latency estimates and the failure rate.
func TestConfigViewShowsEndpointState(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(app.Close)
	s := startSidecar(t, nil)
	k, v := instanceRecord(t, registry.Instance{Service: "catalog", ID: "c1", Address: app.Listener.Addr().String(), Ready: true, Protocol: "http"})
	s.applyState(push.State{k: v}, 3)
	out, _, admin := s.Addrs()
	if code := callVia(t, out, "catalog"); code != http.StatusOK {
		t.Fatalf("request to catalog: got %d, want 200", code)
	}
	var ep struct {
		Attempts             uint64
		Failures             uint64
		InFlight             int
		Latency, PeakLatency string
		FailureRate          float64
	}
	// The fast path ends its attempt once the response is out.
	eventually(t, "the attempt recorded in /config", func() (bool, string) {
		r, err := http.Get("http://" + admin + "/config")
		if err != nil {
			return false, err.Error()
		}
		defer r.Body.Close()
		var v struct {
			Services map[string]struct{ Endpoints []json.RawMessage }
		}
		if err := json.NewDecoder(r.Body).Decode(&v); err != nil {
			return false, err.Error()
		}
		if eps := v.Services["catalog"].Endpoints; len(eps) == 1 {
			ep.InFlight = 0 // omitted when 0: the last look's value would stand
			json.Unmarshal(eps[0], &ep)
		}
		return ep.Attempts == 1 && ep.InFlight == 0, fmt.Sprintf("%+v", ep)
	})
	if ep.Attempts != 1 || ep.Failures != 0 || ep.Latency == "" || ep.PeakLatency == "" || ep.FailureRate != 0 {
		t.Errorf("endpoint state after one good request: got %+v, want 1 attempt, no failure, both latencies, failure rate 0", ep)
	}
}

// callVia sends GET / for host through the outbound listener at out and
// returns the status, the body read and dropped.
func callVia(t *testing.T, out, host string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+out+"/", nil)
	req.Host = host
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}
