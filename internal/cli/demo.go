//go:build !sidecaronly

package cli

import (
	"context"
	"log/slog"
	"time"

	"github.com/weftmesh/weft/internal/demo"
)

func init() {
	addVerb("demo", "run a control plane, sample services with sidecars, and light load", runDemo)
}

func runDemo(ctx context.Context, e *env, args []string) error {
	cfg := demo.Config{Control: "127.0.0.1:15010", Outbound: "127.0.0.1:15001", Admin: "127.0.0.1:15000", Out: e.stdout}
	fs := newFlags(e, "demo")
	fs.StringVar(&cfg.Control, "listen", cfg.Control, "control plane address")
	fs.StringVar(&cfg.Outbound, "outbound", cfg.Outbound, "outbound listener of web's sidecar, to curl through")
	fs.StringVar(&cfg.Admin, "admin", cfg.Admin, "admin listener of web's sidecar")
	fs.DurationVar(&cfg.Interval, "load-interval", 200*time.Millisecond, "time between load requests to web; 0 for none")
	lvl := logLevelFlagDefault(fs, slog.LevelWarn)
	rest, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("demo: unexpected argument %q", rest[0])
	}
	handleBrokenPipe()
	return demo.Run(ctx, cfg, newLogger(e, lvl))
}
