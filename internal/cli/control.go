//go:build !sidecaronly

package cli

import (
	"context"
	"strings"

	"github.com/weftmesh/weft/internal/control"
)

func init() { addVerb("control", "run the control plane", runControl) }

func runControl(ctx context.Context, e *env, args []string) error {
	cfg := control.Default()
	fs := newFlags(e, "control")
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "address for sidecar streams, the API and /metrics")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory of the embedded etcd")
	endpoints := fs.String("etcd-endpoints", "", "comma-separated URLs of an external etcd cluster (instead of the embedded one)")
	fs.DurationVar(&cfg.LeaseTTL, "lease-ttl", cfg.LeaseTTL, "how long an instance outlives its sidecar's last heartbeat")
	fs.IntVar(&cfg.TraceMaxSpans, "trace-max-spans", cfg.TraceMaxSpans, "most spans of recent traces kept in memory (weft traces); the oldest traces go first")
	fs.IntVar(&cfg.TraceMaxTraces, "trace-max-traces", cfg.TraceMaxTraces, "most recent traces kept in memory")
	fs.IntVar(&cfg.StatsMaxSeries, "stats-max-series", cfg.StatsMaxSeries, "most series (per instance and per edge) the collection center keeps for weft stat; more are dropped and counted")
	fs.DurationVar(&cfg.AlertInterval, "alert-interval", cfg.AlertInterval, "how often AlertRules are evaluated (weft alerts)")
	fs.StringVar(&cfg.TrustDomain, "trust-domain", cfg.TrustDomain, "trust domain of workload identities, spiffe://<trust-domain>/service/<name>")
	fs.DurationVar(&cfg.CertTTL, "cert-ttl", cfg.CertTTL, "lifetime of workload certificates (sidecars renew at about 70%)")
	fs.StringVar(&cfg.CACert, "ca-cert", "", "PEM CA certificate (a root, or an intermediate then its chain) to sign with, instead of the root made in --data-dir/ca")
	fs.StringVar(&cfg.CAKey, "ca-key", "", "PEM private key of --ca-cert (mode 0600)")
	fs.BoolVar(&cfg.CARotate, "ca-rotate", false, "at this start, replace the generated root with a new one; the old stays trusted until it expires (give it once, not on every start)")
	fs.StringVar(&cfg.TLS, "tls", cfg.TLS, "whether the API serves HTTPS: auto (when --listen is not loopback), on, or off (loopback only); with it, sidecars call with their workload certificates")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "PEM server certificate (then its chain) for the API, instead of one from the CA")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "PEM private key of --tls-cert")
	hosts := fs.String("tls-host", "", "comma-separated extra names (DNS or IP) for the API certificate the CA issues; loopback, this host's name and the listen address are always in it")
	lvl := logLevelFlag(fs)
	rest, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("control: unexpected argument %q", rest[0])
	}
	if *endpoints != "" {
		cfg.EtcdEndpoints = strings.Split(*endpoints, ",")
	}
	if *hosts != "" {
		cfg.TLSHosts = strings.Split(*hosts, ",")
	}
	if err := cfg.Validate(); err != nil {
		return usageError{err.Error()}
	}
	handleBrokenPipe()
	deps, reg := depsFor(e, lvl)
	c, err := control.New(ctx, cfg, control.Deps{Logger: deps, Registry: reg})
	if err != nil {
		return err
	}
	return c.Run(ctx)
}
