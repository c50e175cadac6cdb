// Package control is the control plane's composition root: it opens the
// store (embedded or external etcd), builds the registry, the config store
// and the push hub over it, and serves everything on one address:
//
//	/v1/stream            push stream to sidecars (packages push, push/hub)
//	/v1/instances, /v1/proxies, /v1/leases, /v1/services, /v1/resources, /v1/version
//	                      the API used by sidecars and the CLI (package api)
//	/v1/traces            OTLP/HTTP spans in (POST), recent traces out (GET; package collect/traces)
//	/v1/telemetry, /v1/stats  sidecars' summaries in, golden metrics out (package collect)
//	/v1/alerts            AlertRules' states and histories (package collect/alert)
//	/ui/                  the dashboard (package dashboard)
//	/v1/tokens, /v1/certificates, /v1/ca  join tokens and workload certificates (tokens.go, certs.go)
//	/readyz, /healthz, /metrics
package control

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/internal/collect/traces"
	"github.com/weftmesh/weft/internal/config/configstore"
	"github.com/weftmesh/weft/internal/dashboard"
	"github.com/weftmesh/weft/internal/push/hub"
	"github.com/weftmesh/weft/internal/registry"
	"github.com/weftmesh/weft/internal/registry/regstore"
	"github.com/weftmesh/weft/internal/security"
	"github.com/weftmesh/weft/internal/store"
)

// Config is what `weft control` is told.
type Config struct {
	Listen        string   // default 127.0.0.1:15010
	DataDir       string   // default ./weft-data
	EtcdEndpoints []string // external etcd; empty for embedded
	LeaseTTL      time.Duration
	// TraceMaxSpans and TraceMaxTraces bound the recent traces kept in
	// memory (defaults 100,000 spans, 10,000 traces).
	TraceMaxSpans, TraceMaxTraces int
	// AlertInterval is how often AlertRules are evaluated; 0 for 5s.
	AlertInterval time.Duration
	// StatsMaxSeries bounds the collection center's memory: the most
	// series (per instance and per edge) it holds; 0 for 10,000.
	StatsMaxSeries int
	// TrustDomain names the mesh in workload identities
	// (spiffe://<trust-domain>/service/<name>); CertTTL is the lifetime
	// of a workload certificate; CACert and CAKey, both or neither, are
	// the operator's CA instead of a root made in <data-dir>/ca (certs.go).
	TrustDomain   string
	CertTTL       time.Duration
	CACert, CAKey string
	// CARotate retires the generated root at this start: a new one is
	// made, the old kept in the trust bundle until it expires.
	CARotate bool
	// TLS is auto, on or off: whether the API serves HTTPS (apitls.go);
	// auto is on when Listen is not loopback, and off is refused there.
	// TLSCert and TLSKey, both or neither, are the operator's server
	// certificate instead of one from the CA; TLSHosts are names (DNS or
	// IP) the CA's certificate carries besides those it finds.
	TLS             string
	TLSCert, TLSKey string
	TLSHosts        []string
}

// Default returns the documented defaults.
func Default() Config {
	return Config{Listen: "127.0.0.1:15010", DataDir: "./weft-data", LeaseTTL: registry.DefaultTTL,
		TraceMaxSpans: 100_000, TraceMaxTraces: 10_000, AlertInterval: 5 * time.Second, StatsMaxSeries: 10_000,
		TrustDomain: security.DefaultTrustDomain, CertTTL: DefaultCertTTL, TLS: TLSAuto}
}

// Validate checks a Config.
func (c Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("--listen %q: want host:port", c.Listen)
	}
	if len(c.EtcdEndpoints) == 0 && c.DataDir == "" {
		return errors.New("--data-dir: must not be empty without --etcd-endpoints")
	}
	if c.AlertInterval < 0 {
		return fmt.Errorf("--alert-interval %s: must not be negative", c.AlertInterval)
	}
	if c.LeaseTTL < time.Second {
		return fmt.Errorf("lease TTL %s: must be at least 1s", c.LeaseTTL)
	}
	if c.StatsMaxSeries < 0 {
		return fmt.Errorf("--stats-max-series %d: must not be negative", c.StatsMaxSeries)
	}
	if c.TraceMaxSpans < 1 || c.TraceMaxTraces < 1 {
		return fmt.Errorf("--trace-max-spans %d, --trace-max-traces %d: each must be at least 1", c.TraceMaxSpans, c.TraceMaxTraces)
	}
	if err := security.ValidTrustDomain(c.TrustDomain); err != nil {
		return fmt.Errorf("--trust-domain: %w", err)
	}
	if c.CertTTL < time.Second {
		return fmt.Errorf("--cert-ttl %s: must be at least 1s", c.CertTTL)
	}
	if (c.CACert == "") != (c.CAKey == "") {
		return errors.New("--ca-cert and --ca-key go together")
	}
	return c.validateTLS()
}

// Deps are injected.
type Deps struct {
	Logger   *slog.Logger
	Registry *prometheus.Registry
}

// Control is a running control plane.
type Control struct {
	cfg       Config
	log       *slog.Logger
	ln        net.Listener
	st        *store.Store
	instances *regstore.Store
	resources *configstore.Store
	hub       *hub.Hub
	traces    *traces.Store
	stats     *statsCenter
	alarms    *alarms
	dash      *dashboard.Handler // /ui/
	identity  *identity          // the CA (certs.go)
	apiCert   *apiCert           // with TLS on the API (apitls.go)
	srv       *http.Server
	streams   atomic.Int64
}

// New binds the listen address and opens the store. Call Run to serve.
func New(ctx context.Context, cfg Config, deps Deps) (*Control, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Logger == nil || deps.Registry == nil {
		return nil, errors.New("control: Logger and Registry are required")
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w (is another control plane running? choose another address with --listen)", cfg.Listen, err)
	}
	st, err := store.Open(ctx, store.Options{DataDir: cfg.DataDir, Endpoints: cfg.EtcdEndpoints, Logger: deps.Logger})
	if err != nil {
		ln.Close()
		return nil, err
	}
	c := &Control{
		cfg:       cfg,
		log:       deps.Logger.With("component", "control"),
		ln:        ln,
		st:        st,
		instances: regstore.New(st.Client),
		resources: configstore.New(st.Client),
	}
	c.hub = hub.New(st.Client, c.log)
	if c.traces, err = newTraceStore(cfg, deps.Registry); err != nil {
		ln.Close()
		st.Close()
		return nil, err
	}
	if c.stats, err = newStatsCenter(cfg, deps.Registry); err != nil {
		ln.Close()
		st.Close()
		return nil, err
	}
	if c.alarms, err = c.newAlarms(c.stats.store, cfg.AlertInterval, deps.Registry, deps.Logger); err != nil {
		ln.Close()
		st.Close()
		return nil, err
	}
	if c.identity, err = newIdentity(cfg, deps.Registry, c.log); err != nil {
		ln.Close()
		st.Close()
		return nil, err
	}
	c.registerMetrics(deps.Registry)
	token, err := loadAPIToken(cfg.DataDir)
	if err != nil {
		ln.Close()
		st.Close()
		return nil, err
	}
	if paths, err := saveForUser(ln.Addr().String(), token); err != nil {
		c.log.Warn("the API token could not be left for the local user's CLI (give it WEFT_TOKEN)", "err", err)
	} else {
		c.log.Info("API token for the local user's CLI", "files", paths)
	}
	var bundle func() []*x509.Certificate
	if cfg.tlsOn() {
		bundle = c.identity.ca.Bundle
		if c.apiCert, err = newAPICert(cfg, c.identity.ca, ln.Addr().String()); err != nil {
			ln.Close()
			st.Close()
			return nil, err
		}
		if cfg.TLSCert == "" {
			if paths, err := saveCAForUser(ln.Addr().String(), c.identity.ca.BundlePEM()); err != nil {
				c.log.Warn("the CA could not be left for the local user's CLI and sidecars (give them --control-ca)", "err", err)
			} else {
				c.log.Info("CA of the API's certificate, for the local user's CLI and sidecars", "files", paths)
			}
		}
	}
	c.srv = &http.Server{Handler: authenticate(token, bundle, c.routes(deps.Registry)), ReadHeaderTimeout: 10 * time.Second}
	if c.apiCert != nil {
		c.srv.TLSConfig = c.apiCert.serverTLS()
	}
	c.dash.RequireToken(token)             // its figures ask for the same token as the API
	c.srv.RegisterOnShutdown(c.dash.Close) // the dashboard's event streams end, as the push streams do
	return c, nil
}

// Addr is the address the control plane serves on.
func (c *Control) Addr() string { return c.ln.Addr().String() }

// URL is the API's base URL: https:// when it serves TLS.
func (c *Control) URL() string {
	if c.apiCert != nil {
		return "https://" + c.Addr()
	}
	return "http://" + c.Addr()
}

// Run serves until ctx ends, then closes everything it opened.
func (c *Control) Run(ctx context.Context) error {
	defer c.st.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = c.hub.Run(ctx)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = c.alarms.eval.Run(ctx)
	}()
	// Request contexts derive from ctx, so open streams end with it.
	c.srv.BaseContext = func(net.Listener) context.Context { return ctx }
	serveErr := make(chan error, 1)
	go func() {
		if c.apiCert != nil {
			serveErr <- c.srv.ServeTLS(c.ln, "", "")
			return
		}
		serveErr <- c.srv.Serve(c.ln)
	}()
	c.log.Info("control plane serving", "addr", c.Addr(), "api", c.URL(), "store", c.storeKind())

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		err = fmt.Errorf("serve %s: %w", c.Addr(), err)
	}
	// Streams never finish on their own: cancel them by closing the server.
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = c.srv.Shutdown(sctx)
	scancel()
	c.srv.Close()
	cancel()
	wg.Wait()
	return err
}

func (c *Control) storeKind() string {
	if c.st.Embedded {
		return "embedded"
	}
	return "external"
}

func (c *Control) registerMetrics(reg *prometheus.Registry) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "weft_control_streams",
		Help: "Sidecar push streams open now.",
	}, func() float64 { return float64(c.streams.Load()) }))
}
