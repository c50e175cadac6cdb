package sidecar

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/control/controltest"
	"github.com/weftmesh/weft/internal/registry"
	"github.com/weftmesh/weft/internal/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

// startControl runs a real control plane until the test ends, and
// returns a client of its API with its own connections.
func startControl(t *testing.T) *api.Client {
	t.Helper()
	c := controltest.Start(t, nil)
	tr := &http.Transport{Proxy: nil}
	cl := api.NewClient(c.Addr())
	cl.HTTP = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	return cl
}

// runRegistration runs r until the test ends or stop is called.
func runRegistration(t *testing.T, r *registration) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.run(ctx) }()
	var stopped bool
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return stop
}

func testProxy(service, id string) registry.Proxy {
	return registry.Proxy{Service: service, ID: id, Outbound: "127.0.0.1:15001", Version: "test", Since: time.Now().UTC().Truncate(time.Second)}
}

func proxies(t *testing.T, c *api.Client) []registry.Proxy {
	t.Helper()
	list, err := c.Proxies(storetest.Ctx(t), "")
	if err != nil {
		t.Fatalf("Proxies: %v", err)
	}
	return list
}

func TestConsumerOnlyRegistersItsProxy(t *testing.T) {
	c := startControl(t)
	log, _ := newLog(slog.LevelInfo)
	r := newRegistration(c, testProxy("web", "web-1"), 3*time.Second, log)
	stop := runRegistration(t, r)

	eventually(t, "proxy record", func() (bool, string) {
		ok, lease := r.Registered()
		list := proxies(t, c)
		return ok && len(list) == 1 && list[0].Lease == lease && lease != 0, fmt.Sprintf("registered %v, proxies %+v", ok, list)
	})
	if p := proxies(t, c)[0]; p.Service != "web" || p.ID != "web-1" || p.Outbound != "127.0.0.1:15001" || p.Version != "test" {
		t.Errorf("proxy record: got %+v, want web/web-1 at 127.0.0.1:15001, version test", p)
	}
	if insts, _ := c.Instances(storetest.Ctx(t), ""); len(insts) != 0 {
		t.Errorf("instances of a consumer-only sidecar: got %+v, want none", insts)
	}
	r.setReady(true) // no instance: nothing to do, and no panic

	stop()
	r.deregister(context.Background())
	if list := proxies(t, c); len(list) != 0 {
		t.Errorf("proxies after deregister: got %+v, want none", list)
	}
}

func TestProviderRecordsShareALeaseAndComeBack(t *testing.T) {
	c := startControl(t)
	log, out := newLog(slog.LevelInfo)
	r := newRegistration(c, testProxy("catalog", "catalog-1"), 3*time.Second, log)
	r.setInstance(registry.Instance{Service: "catalog", ID: "catalog-1", Address: "127.0.0.1:15006"})
	runRegistration(t, r)

	both := func(wantReady bool) func() (bool, string) {
		return func() (bool, string) {
			_, lease := r.Registered()
			insts, _ := c.Instances(storetest.Ctx(t), "catalog")
			list := proxies(t, c)
			ok := len(insts) == 1 && len(list) == 1 && lease != 0 &&
				insts[0].Lease == lease && list[0].Lease == lease && insts[0].Ready == wantReady
			return ok, out.String()
		}
	}
	eventually(t, "instance and proxy on one lease", both(false))
	_, first := r.Registered()

	r.setReady(true)
	eventually(t, "instance ready", both(true))
	if _, l := r.Registered(); l != first {
		t.Errorf("lease after a readiness change: got %s, want the same %s", l, first)
	}

	// The lease goes (here: revoked by a delete, as after a long outage it
	// lapses): the next heartbeat finds it gone and writes both again.
	if err := c.Deregister(storetest.Ctx(t), "catalog", "catalog-1"); err != nil {
		t.Fatal(err)
	}
	if list := proxies(t, c); len(list) != 0 {
		t.Fatalf("proxies after the lease was revoked: got %+v, want none", list)
	}
	eventually(t, "both records back on a new lease", func() (bool, string) {
		ok, last := both(true)()
		_, l := r.Registered()
		return ok && l != first, last
	})
	if !strings.Contains(out.String(), `msg="registration: lease expired, registering again"`) {
		t.Errorf("log: got %q, want it to say the lease expired", out.String())
	}
}

func TestRegistrationWithoutControlPlane(t *testing.T) {
	log, _ := newLog(slog.LevelInfo)
	r := newRegistration(api.NewClient("127.0.0.1:1"), testProxy("web", "web-1"), 3*time.Second, log)
	err := r.step(context.Background())
	if !errors.Is(err, api.ErrUnreachable) {
		t.Errorf("step: got %v, want ErrUnreachable", err)
	}
	if ok, _ := r.Registered(); ok {
		t.Errorf("Registered: got true, want false")
	}
}

// A sidecar without an app port is in `weft get proxies` while it runs,
// and gone when it stops.
func TestConsumerOnlySidecarIsVisible(t *testing.T) {
	c := startControl(t)
	log, out := newLog(slog.LevelInfo)
	s, stop := runSidecar(t, log, func(cfg *Config) { cfg.Control = strings.TrimPrefix(c.Base, "http://") })

	outbound, _, admin := s.Addrs()
	eventually(t, "proxy record of the consumer", func() (bool, string) {
		list := proxies(t, c)
		return len(list) == 1, fmt.Sprintf("%+v\n%s", list, out.String())
	})
	p := proxies(t, c)[0]
	if p.Service != "web" || p.ID != "web-1" || p.Outbound != outbound || p.Admin != admin || p.Inbound != "" || p.Lease == 0 || p.Since.IsZero() {
		t.Errorf("proxy record: got %+v, want web/web-1, outbound %s, admin %s, no inbound, a lease and a start time", p, outbound, admin)
	}

	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if list := proxies(t, c); len(list) != 0 {
		t.Errorf("proxies after the sidecar stopped: got %+v, want none", list)
	}
}

// A provider's readiness detail shows its lease as a string, the same lease
// its instance and proxy records carry.
func TestProviderReadyzLease(t *testing.T) {
	c := startControl(t)
	addr, up := app(t)
	up.Store(true)
	_, port, _ := net.SplitHostPort(addr)
	log, out := newLog(slog.LevelInfo)
	s, _ := runSidecar(t, log, func(cfg *Config) {
		cfg.Service, cfg.ID = "catalog", "catalog-1"
		cfg.AppPort, _ = strconv.Atoi(port)
		cfg.HealthInterval = 50 * time.Millisecond
		cfg.Control = strings.TrimPrefix(c.Base, "http://")
	})

	_, inbound, admin := s.Addrs()
	hc := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	var body string
	eventually(t, "readyz 200", func() (bool, string) {
		resp, err := hc.Get("http://" + admin + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		return resp.StatusCode == 200, body + "\n" + out.String()
	})
	p := proxies(t, c)
	if len(p) != 1 || p[0].Inbound != inbound {
		t.Fatalf("proxies: got %+v, want one with inbound %s", p, inbound)
	}
	if want := `"lease": "` + p[0].Lease.String() + `"`; !strings.Contains(body, want) {
		t.Errorf("readyz: got %s, want it to contain %s", body, want)
	}
}
