// Package sidecar is the composition root of the proxy that runs beside one
// app instance. It owns every goroutine of the sidecar:
//
//	push.Client  --state--> table (plan.Table) <--reads-- outbound listener
//	registration: register, heartbeat, re-register, deregister on stop
//	health: checks the local app, flips the instance's readiness
//	inbound listener --> local app (HTTP, or bytes for TCP and TLS)
//	upstream listeners (--upstream SERVICE=PORT) --> one service each
//	admin listener: /healthz /readyz /metrics /config /explain /recent pprof
//	reporter: every --report-interval, the metrics' growth to the control plane (report.go)
//
// A sidecar without an app port is a consumer only: it routes the local
// app's calls, registers only its proxy record and opens no inbound listener.
package sidecar

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/lb"
	"github.com/weftmesh/weft/internal/proxy"
	"github.com/weftmesh/weft/internal/proxy/conn"
	"github.com/weftmesh/weft/internal/proxy/plan"
	"github.com/weftmesh/weft/internal/proxy/stdhttp"
	"github.com/weftmesh/weft/internal/proxy/tcp"
	"github.com/weftmesh/weft/internal/push"
	"github.com/weftmesh/weft/internal/registry"
	"github.com/weftmesh/weft/internal/snapshot"
	"github.com/weftmesh/weft/internal/telemetry"
)

// Config is what `weft sidecar` is told.
type Config struct {
	Service string
	ID      string // instance id; generated when empty
	AppPort int    // 0: consumer only
	AppHost string // default 127.0.0.1
	// AppProtocol is what the app speaks: "http" (HTTP/1.1, and HTTP/2
	// requests are sent to it as HTTP/1.1), "h2c" (HTTP/2 cleartext with
	// prior knowledge, as gRPC servers do; every request reaches it as
	// HTTP/2) or "tcp" (opaque bytes: the inbound listener forwards every
	// connection at once, without protocol detection).
	AppProtocol string
	// Upstreams are local listeners bound to one service each, for clients
	// that cannot use an HTTP proxy: TCP clients (databases, legacy RPC)
	// and HTTP clients with a fixed address.
	Upstreams []Upstream
	// DetectTimeout is how long the inbound and upstream listeners wait
	// for a connection's first bytes before taking it for TCP.
	DetectTimeout time.Duration
	// TCPIdleTimeout closes a TCP connection after no byte moved either
	// way for this long (0: never).
	TCPIdleTimeout time.Duration
	// HTTP2Engine is what forwards HTTP/2 with prior knowledge where the
	// next hop speaks HTTP/2: "weft", Weft's own engine, which passes
	// frames through (docs/adr/0005-http2-frame-pass-through.md), or
	// "x/net", x/net/http2's server and Transport with net/http handlers
	// (the engine before it). HTTP/2 to an HTTP/1.1 app, h2c upgrades and
	// HTTP/2 over TLS always take x/net/http2.
	HTTP2Engine string
	// AccessLog is where one JSON line per request goes ("": nowhere,
	// the default; "-": standard output; else a file, appended to).
	AccessLog string
	// InboundTLSCert and InboundTLSKey, when set (PEM files), make the
	// inbound listener terminate TLS (ALPN h2 and http/1.1) instead of
	// passing it through to the app.
	InboundTLSCert, InboundTLSKey string

	Labels  map[string]string
	Control string // control plane host:port, or https://host:port when its API serves TLS
	// ControlCA is a PEM file of the CA an https control plane's
	// certificate chains to ("": WEFT_CONTROL_CA, the file the control
	// plane left for its local user, or the system's roots).
	ControlCA string
	Outbound  string
	Inbound   string
	Admin     string
	Advertise string // host:port peers dial; default the inbound address
	// HealthPath, when set, checks the app with HTTP GET instead of a TCP connect.
	HealthPath     string
	HealthInterval time.Duration
	Timeout        time.Duration // wait for response headers from an upstream
	DrainTimeout   time.Duration // longest wait for in-flight requests on stop
	LeaseTTL       time.Duration
	// ReportInterval is how often the sidecar sends the control plane a
	// summary of the requests it carried, for weft stat.
	ReportInterval time.Duration
	// OTLPEndpoint is where spans go by OTLP ("": the control plane's
	// receiver, http://CONTROL/v1/traces; "off": no spans); see
	// telemetry.Tracing for the forms.
	OTLPEndpoint string
	// TraceSampling is the share of traces begun at this sidecar that are
	// sampled (0 to 1); a trace begun elsewhere follows its caller.
	TraceSampling float64
	// JoinToken, when set, proves this sidecar's service to the control
	// plane, which then issues its workload certificate (certs.go).
	JoinToken string
	// MTLSMode is what the inbound takes: MTLSPermissive (the default),
	// mutual TLS from peer sidecars that hold a certificate and plain
	// connections from the rest; or MTLSStrict, mutual TLS only. It needs
	// a JoinToken: without a certificate there is no mutual TLS.
	MTLSMode string
}

// Default returns the documented defaults.
func Default() Config {
	return Config{
		AppHost:        "127.0.0.1",
		AppProtocol:    "http",
		HTTP2Engine:    "weft",
		Control:        "127.0.0.1:15010",
		Outbound:       "127.0.0.1:15001",
		Inbound:        "0.0.0.0:15006",
		Admin:          "127.0.0.1:15000",
		HealthInterval: time.Second,
		DetectTimeout:  proxy.DefaultDetectTimeout,
		TCPIdleTimeout: tcp.DefaultIdleTimeout,
		Timeout:        15 * time.Second,
		DrainTimeout:   10 * time.Second,
		LeaseTTL:       registry.DefaultTTL,
		ReportInterval: DefaultReportInterval,
		TraceSampling:  DefaultTraceSampling,
		MTLSMode:       MTLSPermissive,
	}
}

// The inbound's modes of mutual TLS (Config.MTLSMode).
const (
	MTLSPermissive = "permissive"
	MTLSStrict     = "strict"
)

// DefaultTraceSampling samples 1% of the traces that begin at a sidecar,
// as Istio does by default.
const DefaultTraceSampling = 0.01

// otlpEndpoint is where the sidecar's spans go.
func (c Config) otlpEndpoint() string {
	if c.OTLPEndpoint == "" {
		return c.controlURL() + "/v1/traces"
	}
	return c.OTLPEndpoint
}

// controlURL is the control plane's base URL.
func (c Config) controlURL() string {
	if strings.Contains(c.Control, "://") {
		return strings.TrimRight(c.Control, "/")
	}
	return "http://" + c.Control
}

// controlTLS reports whether the control plane's API serves TLS: then
// every call to it presents this sidecar's workload certificate.
func (c Config) controlTLS() bool { return strings.HasPrefix(c.controlURL(), "https://") }

// Validate checks a Config and names the flag that is wrong.
func (c Config) Validate() error {
	if err := registry.ValidName(c.Service); err != nil {
		return fmt.Errorf("--service: %w", err)
	}
	if c.AppPort < 0 || c.AppPort > 65535 {
		return fmt.Errorf("--app-port %d: must be from 1 to 65535 (or 0 for a consumer-only sidecar)", c.AppPort)
	}
	for flag, addr := range map[string]string{"--outbound": c.Outbound, "--inbound": c.Inbound, "--admin": c.Admin} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("%s %q: want host:port", flag, addr)
		}
	}
	if c.Advertise != "" {
		if _, _, err := net.SplitHostPort(c.Advertise); err != nil {
			return fmt.Errorf("--advertise %q: want host:port", c.Advertise)
		}
	}
	if c.AppProtocol != "http" && c.AppProtocol != "h2c" && c.AppProtocol != "tcp" {
		return fmt.Errorf("--app-protocol %q: want http, h2c or tcp", c.AppProtocol)
	}
	if c.HTTP2Engine != "weft" && c.HTTP2Engine != "x/net" {
		return fmt.Errorf("--http2-engine %q: want weft or x/net", c.HTTP2Engine)
	}
	seen := map[string]bool{}
	for _, u := range c.Upstreams {
		if err := u.validate(); err != nil {
			return fmt.Errorf("--upstream %s: %w", u, err)
		}
		if seen[u.Listen] && !strings.HasSuffix(u.Listen, ":0") {
			return fmt.Errorf("--upstream %s: address %s is used twice", u, u.Listen)
		}
		seen[u.Listen] = true
	}
	if (c.InboundTLSCert == "") != (c.InboundTLSKey == "") {
		return errors.New("--inbound-tls-cert and --inbound-tls-key go together")
	}
	if c.DetectTimeout < 0 {
		return fmt.Errorf("--detect-timeout %s: must not be negative", c.DetectTimeout)
	}
	if c.TCPIdleTimeout < 0 {
		return fmt.Errorf("--tcp-idle-timeout %s: must not be negative (0 means never)", c.TCPIdleTimeout)
	}
	if c.HealthPath != "" && c.AppProtocol == "tcp" {
		return errors.New("--health-path: a tcp app is checked with a TCP connect; drop --health-path or use --app-protocol http")
	}
	if c.HealthPath != "" && !strings.HasPrefix(c.HealthPath, "/") {
		return fmt.Errorf("--health-path %q: must start with /", c.HealthPath)
	}
	if c.HealthInterval <= 0 || c.Timeout < 0 || c.DrainTimeout < 0 || c.LeaseTTL < time.Second {
		return errors.New("intervals and timeouts must be positive, and the lease TTL at least 1s")
	}
	if err := telemetry.ValidateEndpoint(c.otlpEndpoint()); err != nil {
		return fmt.Errorf("--otlp-endpoint %w", err)
	}
	if c.TraceSampling < 0 || c.TraceSampling > 1 {
		return fmt.Errorf("--trace-sampling %v: want a share from 0 to 1", c.TraceSampling)
	}
	switch {
	case c.MTLSMode != MTLSPermissive && c.MTLSMode != MTLSStrict:
		return fmt.Errorf("--mtls %q: want permissive or strict", c.MTLSMode)
	case c.MTLSMode == MTLSStrict && c.JoinToken == "":
		return errors.New("--mtls strict: needs --join-token (a sidecar without a certificate cannot take mutual TLS)")
	}
	if c.ReportInterval <= 0 {
		return fmt.Errorf("--report-interval %s: must be positive", c.ReportInterval)
	}
	if u, err := url.Parse(c.controlURL()); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Port() == "" {
		return fmt.Errorf("--control %q: want HOST:PORT, http://HOST:PORT or https://HOST:PORT", c.Control)
	}
	if c.ControlCA != "" && !c.controlTLS() {
		return fmt.Errorf("--control-ca: the control plane at %s serves plain HTTP (give --control https://...)", c.Control)
	}
	return nil
}

// Deps are injected.
type Deps struct {
	Logger   *slog.Logger
	Registry *prometheus.Registry
	// BeforeStop, if set, runs during shutdown after the instance is
	// deregistered and inbound traffic drained, before the outbound
	// listener closes: `weft run` stops the app there, while the app can
	// still call out.
	BeforeStop func(ctx context.Context)
}

// Sidecar is a running sidecar.
type Sidecar struct {
	cfg  Config
	deps Deps
	log  *slog.Logger

	outLn, inLn, adminLn net.Listener
	upLns                []net.Listener
	upSrvs               []*proxy.Listener
	outSrv               *proxy.Listener
	inSrv                *proxy.Listener
	in                   *stdhttp.Inbound
	inMode               inboundMode // strict or permissive (mtlsmode.go)
	out                  *stdhttp.Outbound
	accessLog            *plan.AccessLog          // nil: off
	accessLogFile        *os.File                 // closed on stop; nil: stdout or off
	tracing              *sdktrace.TracerProvider // sends the spans; nil: off
	tracer               *plan.Tracer
	adminSrv             *http.Server
	table                *plan.Table
	compiler             snapshot.Compiler
	snap                 atomic.Pointer[snapshot.Snapshot] // the last applied, for /config
	api                  *api.Client
	push                 *push.Client
	rec                  *registration // proxy record, and instance when reg != nil
	reg                  *registration // rec, when there is an app to register
	health               *health
	peers                *peers
	report               *reporter // summaries to the collection center
	certs                *certs    // workload certificate; nil without a join token
}

// New checks cfg, binds the listeners and wires the parts. Nothing runs
// until Run.
func New(cfg Config, deps Deps) (*Sidecar, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Logger == nil || deps.Registry == nil {
		return nil, errors.New("sidecar: Logger and Registry are required")
	}
	if cfg.ID == "" {
		cfg.ID = cfg.Service + "-" + randomHex(4)
	}
	s := &Sidecar{cfg: cfg, deps: deps, log: deps.Logger.With("component", "sidecar", "service", cfg.Service, "instance", cfg.ID)}
	var err error
	if s.outLn, err = listen("--outbound", cfg.Outbound); err != nil {
		return nil, err
	}
	if cfg.AppPort != 0 {
		if s.inLn, err = listen("--inbound", cfg.Inbound); err != nil {
			s.closeListeners()
			return nil, err
		}
	}
	if s.adminLn, err = listen("--admin", cfg.Admin); err != nil {
		s.closeListeners()
		return nil, err
	}
	for _, u := range cfg.Upstreams {
		ln, err := listen("--upstream "+u.String(), u.Listen)
		if err != nil {
			s.closeListeners()
			return nil, err
		}
		s.upLns = append(s.upLns, ln)
	}

	metrics := plan.NewMetrics(deps.Registry)
	metrics.Source = cfg.Service // (the source_service of what this sidecar sends)
	s.table = plan.NewTable(metrics, plan.Policy{Timeout: cfg.Timeout, Zone: cfg.Labels[lb.DefaultZoneLabel], Source: cfg.Service})
	s.peers = newPeers(s)
	if err := deps.Registry.Register(newPolicyMetrics(s)); err != nil {
		s.closeListeners()
		return nil, fmt.Errorf("registering the policy metrics: %w", err)
	}
	errLog := slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)
	out := stdhttp.NewOutbound(s.table, stdhttp.NewTransport(), stdhttp.NewTransport(), metrics, s.log)
	out.H2 = stdhttp.NewH2CTransport()
	s.table.SetMirrorer(out) // route rules' RequestMirror copies go out through it
	if cfg.AccessLog != "" {
		w := io.Writer(os.Stdout)
		if cfg.AccessLog != "-" {
			f, err := os.OpenFile(cfg.AccessLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
			if err != nil {
				s.closeListeners()
				return nil, fmt.Errorf("--access-log: %w", err)
			}
			s.accessLogFile, w = f, f
		}
		s.accessLog = plan.NewAccessLog(w, deps.Registry)
		s.table.SetAccessLog(s.accessLog)
	}
	if ep := cfg.otlpEndpoint(); ep != telemetry.TracingOff {
		t := telemetry.Tracing{Endpoint: ep, Service: cfg.Service, Instance: cfg.ID, Log: s.log}
		if cfg.OTLPEndpoint == "" && cfg.controlTLS() {
			// to the control plane's receiver: as every call to it
			if t.TLS, _, err = api.ClientTLS(cfg.Control, s.controlTLSOptions()); err != nil {
				s.closeListeners()
				return nil, fmt.Errorf("--control-ca: %w", err)
			}
		}
		tp, err := telemetry.NewTracerProvider(context.Background(), t)
		if err != nil {
			s.closeListeners()
			return nil, fmt.Errorf("--otlp-endpoint: %w", err)
		}
		s.tracing, s.tracer = tp, plan.NewTracer(tp.Tracer("weft"), cfg.TraceSampling)
		s.table.SetTracer(s.tracer)
	}
	s.out = out
	bytes := &tcp.Proxy{IdleTimeout: cfg.TCPIdleTimeout, Log: s.log}
	outCfg := proxy.Config{Name: "outbound", Resolve: out.Resolve, SNI: out.ResolveSNI, Connect: true, H2: out, TCP: bytes,
		Metrics: metrics, Log: s.log}
	if cfg.HTTP2Engine == "weft" {
		outCfg.H2Frames = out.RouteH2
	}
	if s.outSrv, err = proxy.NewListener(outCfg); err != nil {
		s.closeListeners()
		return nil, err
	}
	for _, u := range cfg.Upstreams {
		srv, err := s.upstreamServer(u, out, bytes, metrics)
		if err != nil {
			s.closeListeners()
			return nil, err
		}
		s.upSrvs = append(s.upSrvs, srv)
	}

	s.api = api.NewClientTLS(cfg.Control, s.controlTLSOptions())
	if err := s.api.Err(); err != nil {
		s.closeListeners()
		return nil, err
	}
	if cfg.controlTLS() && cfg.JoinToken == "" && s.api.Token == "" {
		s.closeListeners()
		return nil, fmt.Errorf("--control %s: a control plane that serves TLS takes sidecars' calls with their workload certificate: give --join-token (weft token create), or the API token in %s", cfg.Control, api.TokenEnv)
	}
	s.push = &push.Client{
		Base:    s.api.Base,
		HTTP:    &http.Client{Transport: s.api.HTTP.Transport}, // no overall timeout: the stream is long-lived
		Log:     s.log,
		OnState: s.applyState,
	}
	s.rec = newRegistration(s.api, s.proxyRecord(), cfg.LeaseTTL, s.log)
	if err := s.startCerts(); err != nil {
		s.closeListeners()
		return nil, err
	}
	if creds := s.Credentials(); creds != nil {
		s.table.SetPeerTLS(newPeerTLS(creds, s.log)) // to the peers that take mutual TLS
	}
	if s.report, err = newReporter(s.api, deps.Registry, cfg.Service, cfg.ID, cfg.ReportInterval, s.log); err != nil {
		s.closeListeners()
		return nil, err
	}
	if cfg.AppPort != 0 {
		app := net.JoinHostPort(cfg.AppHost, strconv.Itoa(cfg.AppPort))
		in := stdhttp.NewInbound(cfg.Service, cfg.ID, app, stdhttp.NewTransport(), metrics)
		in.RecordInto(s.table.Recent(), s.accessLog) // explain --request-id and the access log see the inbound too
		in.TraceWith(s.tracer)
		s.in = in
		declared := cfg.AppProtocol == "tcp"
		inCfg := proxy.Config{Name: "inbound", Resolve: in.Resolve, H2: in, Metrics: metrics, Log: s.log,
			Opaque: func() (*plan.Cluster, bool) { return in.AppCluster(), declared }, TCP: bytes, DetectTimeout: cfg.DetectTimeout}
		if creds := s.Credentials(); creds != nil {
			// Peer sidecars' mutual TLS (told from the app's own TLS by
			// ALPN), and in strict mode nothing else.
			meshTLS := creds.ServerConfig()
			meshTLS.NextProtos = conn.MeshALPN
			inCfg.MeshTLS = meshTLS
		}
		s.inMode.strict, s.inMode.by = cfg.MTLSMode == MTLSStrict, "--mtls" // until a PeerAuthentication says otherwise
		inCfg.Strict = s.inMode.Strict
		if cfg.InboundTLSCert != "" {
			cert, err := tls.LoadX509KeyPair(cfg.InboundTLSCert, cfg.InboundTLSKey)
			if err != nil {
				s.closeListeners()
				return nil, fmt.Errorf("--inbound-tls-cert %s, --inbound-tls-key %s: %w", cfg.InboundTLSCert, cfg.InboundTLSKey, err)
			}
			inCfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}, MinVersion: tls.VersionTLS12}
		}
		if cfg.AppProtocol == "h2c" {
			// Every request reaches the app as HTTP/2, whatever the caller
			// spoke: HTTP/1 goes through net/http, and out as HTTP/2.
			h2 := stdhttp.NewH2CTransport()
			in.Transport, in.H2 = h2, h2
			inCfg.H1 = in
			if cfg.HTTP2Engine == "weft" {
				inCfg.H2Frames = in.RouteH2
			}
		}
		if s.inSrv, err = proxy.NewListener(inCfg); err != nil {
			s.closeListeners()
			return nil, err
		}
		s.health = newHealth(app, cfg.HealthPath, cfg.HealthInterval, s.log)
		// A failed connect to the app withdraws the instance at once, not
		// at the next check: TCP callers have no error to retry on.
		in.OnAppUnreachable(s.health.checkSoon)
		in.AnswerProbes(s.health.ok.Load) // peer sidecars' active checks
		s.rec.setInstance(s.instance())
		s.reg = s.rec
	}
	s.adminSrv = &http.Server{Handler: s.adminMux(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: errLog}
	return s, nil
}

// Addrs reports the bound addresses (useful when configured with port 0).
func (s *Sidecar) Addrs() (outbound, inbound, admin string) {
	outbound, admin = s.outLn.Addr().String(), s.adminLn.Addr().String()
	if s.inLn != nil {
		inbound = s.inLn.Addr().String()
	}
	return
}

// UpstreamAddrs are the bound addresses of the --upstream listeners, in
// the order they were given.
func (s *Sidecar) UpstreamAddrs() []string {
	out := make([]string, len(s.upLns))
	for i, ln := range s.upLns {
		out[i] = ln.Addr().String()
	}
	return out
}

// ID is the instance id.
func (s *Sidecar) ID() string { return s.cfg.ID }

func (s *Sidecar) instance() registry.Instance {
	host, _ := os.Hostname()
	return registry.Instance{
		Service:  s.cfg.Service,
		ID:       s.cfg.ID,
		Address:  s.advertise(),
		Labels:   s.cfg.Labels,
		Protocol: s.cfg.AppProtocol,
		MTLS:     s.certs != nil, // (its inbound takes peers' mutual TLS once the certificate is in)
		Node:     host,
		Since:    time.Now().UTC().Truncate(time.Second),
	}
}

// advertise is the address peers dial: --advertise, or the inbound
// listener's address with a wildcard host replaced by this host's address.
func (s *Sidecar) advertise() string {
	if s.cfg.Advertise != "" {
		return s.cfg.Advertise
	}
	host, port, _ := net.SplitHostPort(s.inLn.Addr().String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = hostIP()
	}
	return net.JoinHostPort(host, port)
}

// Run serves until ctx ends, then stops in order: deregister, drain
// inbound, BeforeStop, drain outbound, close admin.
func (s *Sidecar) Run(ctx context.Context) error {
	bg, stopBg := context.WithCancel(context.Background())
	defer stopBg()
	done := make(chan struct{})
	var workers int
	spawn := func(f func(context.Context)) {
		workers++
		go func() { f(bg); done <- struct{}{} }()
	}
	serveErr := make(chan error, 3+len(s.upSrvs))
	serve := func(srv interface{ Serve(net.Listener) error }, ln net.Listener, name string) {
		spawn(func(context.Context) {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				serveErr <- fmt.Errorf("%s listener: %w", name, err)
			}
		})
	}
	serve(s.outSrv, s.outLn, "outbound")
	for i, srv := range s.upSrvs {
		serve(srv, s.upLns[i], "upstream "+s.cfg.Upstreams[i].String())
	}
	serve(s.adminSrv, s.adminLn, "admin")
	spawn(func(c context.Context) {
		if s.awaitIdentity(c) {
			_ = s.push.Run(c)
		}
	})
	if s.accessLog != nil {
		spawn(func(c context.Context) { _ = s.accessLog.Run(c) }) // writes what is queued before it returns
	}
	spawn(func(c context.Context) { s.peers.run(c, s) })
	spawn(func(c context.Context) {
		if s.awaitIdentity(c) {
			s.report.run(c)
		}
	})
	if s.certs != nil {
		spawn(func(c context.Context) { s.certs.run(c) })
	}

	regCtx, stopReg := context.WithCancel(bg)
	regDone := make(chan struct{})
	if s.reg != nil {
		// Register with the app's real state, not a guess.
		s.reg.setReady(s.health.check(ctx))
		serve(s.inSrv, s.inLn, "inbound")
		spawn(func(c context.Context) { s.health.run(c, s.reg.setReady) })
	}
	go func() {
		defer close(regDone)
		if s.awaitIdentity(regCtx) {
			s.rec.run(regCtx)
		}
	}()
	out, in, admin := s.Addrs()
	s.log.Info("sidecar started", "outbound", out, "inbound", in, "admin", admin, "control", s.cfg.Control)
	for i, u := range s.cfg.Upstreams {
		s.log.Info("upstream listener", "upstream_service", u.Service, "address", s.upLns[i].Addr().String(), "tcp", u.TCP)
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-serveErr:
	}
	s.log.Info("sidecar stopping: deregistering and draining")
	drain, cancelDrain := context.WithTimeout(context.Background(), s.cfg.DrainTimeout)
	defer cancelDrain()
	stopReg()
	<-regDone
	s.rec.deregister(drain)
	if s.reg != nil {
		_ = s.inSrv.Shutdown(drain)
	}
	if s.deps.BeforeStop != nil {
		s.deps.BeforeStop(drain)
	}
	for _, srv := range s.upSrvs {
		_ = srv.Shutdown(drain)
	}
	_ = s.outSrv.Shutdown(drain)
	s.out.CloseMirrors() // mirrored copies still in flight are cancelled
	// Connections to peers and the app carry nothing now: GOAWAY and close.
	s.table.CloseIdle()
	if s.in != nil {
		s.in.CloseIdle()
	}
	s.report.last() // what the drained listeners counted last
	s.adminSrv.Close()
	stopBg()
	for ; workers > 0; workers-- {
		<-done
	}
	if s.accessLogFile != nil {
		s.accessLogFile.Close()
	}
	if s.tracing != nil {
		// The spans still queued go out, for as long as draining may take.
		ctx, cancel := context.WithTimeout(context.Background(), max(s.cfg.DrainTimeout, time.Second))
		if err := s.tracing.Shutdown(ctx); err != nil {
			s.log.Warn("spans not sent at stop", "err", err)
		}
		cancel()
	}
	s.log.Info("sidecar stopped")
	return runErr
}

func (s *Sidecar) closeListeners() {
	if s.tracing != nil { // (New failed after the exporter was made)
		_ = s.tracing.Shutdown(context.Background())
	}
	for _, ln := range append([]net.Listener{s.outLn, s.inLn, s.adminLn}, s.upLns...) {
		if ln != nil {
			ln.Close()
		}
	}
}

func listen(flag, addr string) (net.Listener, error) {
	// Keep-alive probes are for peers across the network; a loopback
	// listener (the app's side) skips their per-connection system calls.
	lc := net.ListenConfig{}
	if conn.IsLoopback(addr) {
		lc.KeepAlive = -1
	}
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w (is another sidecar using it? choose another with %s)", flag, addr, err, flag)
	}
	return ln, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// hostIP is this host's first non-loopback IPv4 address, or 127.0.0.1.
func hostIP() string {
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
				return n.IP.String()
			}
		}
	}
	return "127.0.0.1"
}
