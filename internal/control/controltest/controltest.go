// Package controltest runs a real control plane inside a test: control.New
// on an embedded etcd in a temporary directory, listening on 127.0.0.1:0,
// run until the test ends and then stopped, its Run checked for errors.
// For tests of the packages around the control plane (cli, sidecar,
// meshtest); the control package's own tests keep theirs (they cannot
// import this one).
package controltest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/control"
	"github.com/weftmesh/weft/internal/telemetry"
)

// Start runs a control plane until t ends, with edit applied to its config
// and logging to log (nil: nowhere), and returns it; its Addr is bound.
func Start(t testing.TB, log *slog.Logger, edit ...func(*control.Config)) *control.Control {
	t.Helper()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg := control.Default()
	cfg.Listen, cfg.DataDir = "127.0.0.1:0", t.TempDir()
	for _, e := range edit {
		e(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c, err := control.New(ctx, cfg, control.Deps{Logger: log, Registry: telemetry.NewRegistry()})
	if err != nil {
		cancel()
		t.Fatalf("control.New: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("control plane: Run returned %v, want nil after its context ended", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("control plane did not stop within 30s of its context ending")
		}
	})
	return c
}
