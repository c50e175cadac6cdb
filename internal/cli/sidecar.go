package cli

import (
	"context"
	"flag"
	"github.com/weftmesh/weft/internal/api"
	"log/slog"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/internal/sidecar"
	"github.com/weftmesh/weft/internal/telemetry"
)

// sidecarFlags declares the flags shared by `weft sidecar` and `weft run`.
func sidecarFlags(fs *flag.FlagSet, cfg *sidecar.Config) {
	fs.StringVar(&cfg.Service, "service", "", "name of this app's service (required)")
	fs.StringVar(&cfg.ID, "id", "", "instance id (default SERVICE-<random>)")
	fs.IntVar(&cfg.AppPort, "app-port", 0, "port of the local app; 0 for a consumer-only sidecar")
	fs.StringVar(&cfg.AppHost, "app-host", cfg.AppHost, "host of the local app")
	fs.StringVar(&cfg.AppProtocol, "app-protocol", cfg.AppProtocol, "what the app speaks: http (HTTP/1.1), h2c (HTTP/2 cleartext, e.g. a gRPC server) or tcp (bytes, no protocol detection)")
	fs.Var(upstreams{&cfg.Upstreams}, "upstream", "local listener bound to a service, SERVICE=[HOST:]PORT[/tcp] (repeatable); /tcp skips protocol detection")
	fs.DurationVar(&cfg.DetectTimeout, "detect-timeout", cfg.DetectTimeout, "wait this long for a connection's first bytes before taking it for TCP (inbound and upstream listeners)")
	fs.StringVar(&cfg.AccessLog, "access-log", "", "write one JSON line per request to this file (appended), or - for standard output; off when empty")
	fs.StringVar(&cfg.HTTP2Engine, "http2-engine", cfg.HTTP2Engine, "what forwards HTTP/2 to hops that speak it: weft (frames passed through) or x/net (x/net/http2 server and Transport)")
	fs.StringVar(&cfg.InboundTLSCert, "inbound-tls-cert", "", "PEM certificate: terminate TLS on the inbound listener (ALPN h2, http/1.1) instead of passing it to the app")
	fs.StringVar(&cfg.InboundTLSKey, "inbound-tls-key", "", "PEM private key of --inbound-tls-cert")
	fs.DurationVar(&cfg.TCPIdleTimeout, "tcp-idle-timeout", cfg.TCPIdleTimeout, "close a TCP connection after no byte moved either way for this long (0: never)")
	fs.Var(labels(cfg.Labels), "label", "instance label k=v (repeatable), e.g. version=v2")
	fs.StringVar(&cfg.Outbound, "outbound", cfg.Outbound, "listener for the app's outgoing calls (HTTP_PROXY)")
	fs.StringVar(&cfg.Inbound, "inbound", cfg.Inbound, "listener for calls to the app from peers and plain clients")
	fs.StringVar(&cfg.Admin, "admin", cfg.Admin, "admin listener: /healthz /readyz /metrics /config /explain /recent pprof")
	fs.StringVar(&cfg.Advertise, "advertise", "", "host:port peers dial (default: the inbound address, wildcard host replaced by this host's address)")
	fs.StringVar(&cfg.HealthPath, "health-path", "", "check the app with HTTP GET of this path instead of a TCP connect")
	fs.DurationVar(&cfg.HealthInterval, "health-interval", cfg.HealthInterval, "how often to check the app")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "longest wait for an upstream's response headers")
	fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", cfg.DrainTimeout, "longest wait for in-flight requests on stop")
	fs.DurationVar(&cfg.LeaseTTL, "lease-ttl", cfg.LeaseTTL, "how long the instance outlives this sidecar's last heartbeat")
	fs.StringVar(&cfg.OTLPEndpoint, "otlp-endpoint", "", "where spans go by OTLP: http://HOST:PORT[/PATH] (OTLP/HTTP), grpc://HOST:PORT (OTLP/gRPC), or off (default: the control plane's receiver)")
	fs.Float64Var(&cfg.TraceSampling, "trace-sampling", cfg.TraceSampling, "share of the traces begun at this sidecar that are sampled, 0 to 1 (a trace begun elsewhere follows its caller)")
	fs.DurationVar(&cfg.ReportInterval, "report-interval", cfg.ReportInterval, "how often to send the control plane a summary of the requests carried, for weft stat")
	fs.StringVar(&cfg.ControlCA, "control-ca", os.Getenv(api.ControlCAEnv), "PEM file of the CA an https control plane's certificate chains to (env WEFT_CONTROL_CA; default: the file weft control left for its local user, else the system's roots)")
	cfg.JoinToken = os.Getenv("WEFT_JOIN_TOKEN")
	fs.Var(secretFlag{&cfg.JoinToken}, "join-token", "join token from weft token create: the control plane then issues this sidecar's workload certificate (env WEFT_JOIN_TOKEN, which keeps it out of ps)")
	fs.StringVar(&cfg.MTLSMode, "mtls", cfg.MTLSMode, "what the inbound takes: permissive (mutual TLS from peer sidecars with a certificate, plain connections from others) or strict (mutual TLS only; needs --join-token)")
}

func newSidecarConfig() sidecar.Config {
	cfg := sidecar.Default()
	cfg.Labels = map[string]string{}
	return cfg
}

func runSidecar(ctx context.Context, e *env, args []string) error {
	cfg := newSidecarConfig()
	fs := newFlags(e, "sidecar")
	sidecarFlags(fs.FlagSet, &cfg)
	control := controlFlag(fs)
	lvl := logLevelFlag(fs)
	rest, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("sidecar: unexpected argument %q", rest[0])
	}
	cfg.Control = *control
	if err := cfg.Validate(); err != nil {
		return usageError{err.Error()}
	}
	handleBrokenPipe()
	log, reg := depsFor(e, lvl)
	s, err := sidecar.New(cfg, sidecar.Deps{Logger: log, Registry: reg})
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

func depsFor(e *env, lvl *slog.Level) (*slog.Logger, *prometheus.Registry) {
	return newLogger(e, lvl), telemetry.NewRegistry()
}

// upstreams is the repeatable --upstream flag.
type upstreams struct{ list *[]sidecar.Upstream }

func (u upstreams) String() string {
	if u.list == nil {
		return ""
	}
	parts := make([]string, len(*u.list))
	for i, x := range *u.list {
		parts[i] = x.String()
	}
	return strings.Join(parts, ",")
}

func (u upstreams) Set(v string) error {
	x, err := sidecar.ParseUpstream(v)
	if err != nil {
		return err
	}
	*u.list = append(*u.list, x)
	return nil
}
