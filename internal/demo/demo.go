package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/weftmesh/weft/internal/control"
	"github.com/weftmesh/weft/internal/sidecar"
	"github.com/weftmesh/weft/internal/telemetry"
)

// Config says where the demo listens.
type Config struct {
	Control  string        // control plane address
	Outbound string        // the web instance's sidecar outbound: the one users curl through
	Admin    string        // the web instance's sidecar admin
	Interval time.Duration // time between load requests; 0 for no load
	Out      io.Writer     // where the instructions go
}

// instance is one sample app instance to start.
type instance struct {
	service, version, id string
	protocol             string // --app-protocol: http or tcp
}

var instances = []instance{
	{"ratings", "v1", "ratings-1", "http"},
	{"catalog", "v1", "catalog-v1", "http"},
	{"catalog", "v2", "catalog-v2", "http"},
	{"ledger", "v1", "ledger-1", "tcp"},
	{"web", "v1", "web-1", "http"},
}

// Run starts everything, prints what to try, and stops it all when ctx
// ends, removing its temporary directory.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	dir, err := os.MkdirTemp("", "weft-demo-")
	if err != nil {
		return fmt.Errorf("demo: temporary directory: %w", err)
	}
	defer os.RemoveAll(dir)

	ccfg := control.Default()
	ccfg.Listen, ccfg.DataDir = cfg.Control, dir
	cp, err := control.New(ctx, ccfg, control.Deps{Logger: log, Registry: telemetry.NewRegistry()})
	if err != nil {
		return err
	}
	// The control plane outlives the sidecars, so they can deregister.
	cpCtx, stopControl := context.WithCancel(context.Background())
	cpDone := make(chan error, 1)
	go func() { cpDone <- cp.Run(cpCtx) }()
	defer func() { stopControl(); <-cpDone }()

	var wg sync.WaitGroup
	defer wg.Wait() // after cancel below: every goroutine has stopped before the directory goes
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(instances)+2)
	goRun := func(f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil {
				errs <- err
				cancel()
			}
		}()
	}

	var webAdmin, webOut, ledger string
	for _, in := range instances {
		sc, err := startInstance(ctx, in, cfg, cp.Addr(), log, goRun)
		if err != nil {
			cancel()
			return err
		}
		if in.service == "web" {
			webOut, _, webAdmin = sc.Addrs()
			ledger = sc.UpstreamAddrs()[0]
		}
	}
	if err := waitReady(ctx, webAdmin); err != nil {
		return err
	}
	if cfg.Interval > 0 {
		goRun(func(ctx context.Context) error { load(ctx, webOut, cfg.Interval); return nil })
	}
	// Print the addresses actually bound (the flags may say port 0).
	cfg.Control, cfg.Outbound, cfg.Admin = cp.Addr(), webOut, webAdmin
	printTry(cfg, ledger, dashboardLink(cp.Addr(), dir))
	<-ctx.Done()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// startInstance starts one app on an ephemeral port and its sidecar.
func startInstance(ctx context.Context, in instance, cfg Config, controlAddr string, log *slog.Logger, goRun func(func(context.Context) error)) (*sidecar.Sidecar, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	scfg := sidecar.Default()
	scfg.Service, scfg.ID, scfg.Control = in.service, in.id, controlAddr
	scfg.AppPort = ln.Addr().(*net.TCPAddr).Port
	scfg.Labels = map[string]string{"version": in.version}
	scfg.AppProtocol = in.protocol
	scfg.Inbound, scfg.Outbound, scfg.Admin = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	scfg.DrainTimeout = 2 * time.Second
	scfg.TraceSampling = 1                // every demo request is traced: weft traces shows them
	scfg.ReportInterval = 2 * time.Second // weft stat moves soon after traffic does
	if in.service == "web" {
		scfg.Outbound, scfg.Admin = cfg.Outbound, cfg.Admin
		// web reaches the TCP service through a local port, as a database
		// client would.
		scfg.Upstreams = []sidecar.Upstream{{Service: "ledger", Listen: "127.0.0.1:0"}}
	}
	sc, err := sidecar.New(scfg, sidecar.Deps{Logger: log, Registry: telemetry.NewRegistry()})
	if err != nil {
		ln.Close()
		return nil, err
	}
	if in.protocol == "tcp" {
		goRun(func(ctx context.Context) error { serveLedger(ctx, ln, in.id); return nil })
		goRun(sc.Run)
		return sc, nil
	}
	a := newApp(in.service, in.version, in.id, sc)
	srv := &http.Server{Handler: a.handler(), ReadHeaderTimeout: 10 * time.Second}
	goRun(func(ctx context.Context) error {
		go func() { <-ctx.Done(); srv.Close() }()
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	goRun(sc.Run)
	return sc, nil
}

// waitReady polls the web sidecar until web answers through the mesh.
func waitReady(ctx context.Context, admin string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return errors.New("demo: the mesh did not become ready in 30s")
}

// load calls web through the mesh at a steady pace.
func load(ctx context.Context, outbound string, every time.Duration) {
	proxy, _ := url.Parse("http://" + outbound)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(proxy)}}
	defer c.CloseIdleConnections()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://web/", nil)
		if resp, err := c.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
}

// dashboardLink is the dashboard's address with the control plane's API
// token (from its data dir) in the fragment, which the page keeps and
// no request carries.
func dashboardLink(addr, dataDir string) string {
	link := "http://" + addr + "/ui/"
	if b, err := os.ReadFile(filepath.Join(dataDir, control.APITokenFile)); err == nil {
		link += "#/?token=" + strings.TrimSpace(string(b))
	}
	return link
}

func printTry(cfg Config, ledger, dashboard string) {
	w := cfg.Out
	fmt.Fprintf(w, `
Weft demo is running: web -> catalog (v1, v2) -> ratings over HTTP, and web -> ledger over
plain TCP, each instance with its own sidecar, a control plane at %[1]s, and light load on web.

Dashboard: %[5]s
           (services, topology, traces, alarms, live requests)

Try (from another terminal):
  curl -x http://%[2]s http://catalog/items          # proxy mode, as apps with HTTP_PROXY do
  curl -H 'Host: catalog' http://%[2]s/items         # reverse mode
  curl -x http://%[2]s http://web/
  curl -i -x http://%[2]s http://nosuch.invalid/     # egress that fails: see x-weft-error
  go run ./cmd/weft get services --control %[1]s
  go run ./cmd/weft get instances catalog --control %[1]s
  go run ./cmd/weft describe service catalog -o yaml --control %[1]s
  go run ./cmd/weft stat --control %[1]s               # golden metrics per service
  go run ./cmd/weft stat --edges --control %[1]s       # the call graph
  go run ./cmd/weft top --control %[1]s                # live requests
  go run ./cmd/weft traces --control %[1]s             # recent traces; weft traces ID for one
  go run ./cmd/weft alerts --control %[1]s             # alert rules (weft apply -f an AlertRule)
  curl http://%[3]s/config                             # what web's sidecar routes with
  curl http://%[3]s/metrics | grep weft_               # its metrics
  curl http://%[1]s/metrics | grep weft_               # the control plane's
  nc %[4]s        # ledger, a TCP service, through web's sidecar; it speaks first,
                                   # then answers BALANCE loom (or shuttle, spindle) and QUIT

Ctrl-C stops everything.
`, cfg.Control, cfg.Outbound, cfg.Admin, strings.Replace(ledger, ":", " ", 1), dashboard)
}
