package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/weftmesh/weft/internal/sidecar"
)

// exitStatus is the app's exit code, passed on by `weft run`.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("app exited with status %d", int(e)) }

// runRun starts an app and its sidecar as one unit, like a pod on a plain
// host. Stop order on SIGTERM: deregister, drain inbound, stop the app
// (SIGTERM, then SIGKILL after the drain timeout), close outbound. If the
// app exits, the sidecar deregisters and weft run exits with the app's
// status, unless --restart on-failure restarts it. If weft run itself dies,
// the kernel kills the app (parent-death signal): it never runs unmeshed.
func runRun(ctx context.Context, e *env, args []string) error {
	cfg := newSidecarConfig()
	fs := newFlags(e, "run")
	sidecarFlags(fs.FlagSet, &cfg)
	control := controlFlag(fs)
	restart := fs.String("restart", "no", "restart the app: no, on-failure")
	lvl := logLevelFlag(fs)
	cmdline, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(cmdline) == 0 {
		return usagef("run: want weft run --service NAME --app-port PORT -- COMMAND [ARGS]")
	}
	if *restart != "no" && *restart != "on-failure" {
		return usagef("--restart %q: want no or on-failure", *restart)
	}
	cfg.Control = *control
	if err := cfg.Validate(); err != nil {
		return usageError{err.Error()}
	}
	if _, err := exec.LookPath(cmdline[0]); err != nil {
		return usagef("run: %v", err)
	}
	handleBrokenPipe()
	log, reg := depsFor(e, lvl)
	sup := &supervisor{argv: cmdline, env: e, grace: cfg.DrainTimeout}
	sc, err := sidecar.New(cfg, sidecar.Deps{Logger: log, Registry: reg, BeforeStop: sup.stop})
	if err != nil {
		return err
	}
	out, _, _ := sc.Addrs()
	sup.environ = append(os.Environ(),
		"HTTP_PROXY=http://"+out, "http_proxy=http://"+out,
		"WEFT_SERVICE="+cfg.Service, "WEFT_INSTANCE="+sc.ID())
	if os.Getenv("NO_PROXY") == "" && os.Getenv("no_proxy") == "" {
		sup.environ = append(sup.environ, "NO_PROXY=localhost,127.0.0.1,::1", "no_proxy=localhost,127.0.0.1,::1")
	}

	scCtx, stopSidecar := context.WithCancel(context.Background())
	defer stopSidecar()
	scDone := make(chan error, 1)
	go func() { scDone <- sc.Run(scCtx) }()

	result := sup.supervise(ctx, *restart == "on-failure", scDone, log.Info)
	stopSidecar() // deregister, drain, stop the app if still running, close
	scErr := <-scDone
	if result == nil && scErr != nil {
		result = scErr
	}
	return result
}

// supervisor runs the app and restarts it per policy.
type supervisor struct {
	argv    []string
	environ []string
	env     *env
	grace   time.Duration

	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{} // closed when cmd has been waited for
	stopping bool
}

func (s *supervisor) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return errors.New("stopping")
	}
	cmd := exec.Command(s.argv[0], s.argv[1:]...)
	cmd.Env = s.environ
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, s.env.stdout, s.env.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.argv[0], err)
	}
	s.cmd, s.exited = cmd, make(chan struct{})
	return nil
}

// supervise returns when the unit should stop: nil on a signal, the app's
// status when it exits for good, or the sidecar's error.
func (s *supervisor) supervise(ctx context.Context, onFailure bool, scDone <-chan error, logf func(string, ...any)) error {
	backoff := time.Second
	for {
		if err := s.start(); err != nil {
			return err
		}
		waited := make(chan error, 1)
		cmd, exited := s.cmd, s.exited
		go func() { err := cmd.Wait(); close(exited); waited <- err }()
		var err error
		select {
		case <-ctx.Done():
			return nil
		case err := <-scDone:
			if err == nil {
				err = errors.New("sidecar stopped")
			}
			return fmt.Errorf("sidecar failed, stopping the app: %w", err)
		case err = <-waited:
		}
		code := exitCode(err)
		if code == 0 || !onFailure {
			if code == 0 {
				return nil
			}
			return exitStatus(code)
		}
		logf("app failed, restarting", "status", code, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	return 1
}

// stop is the sidecar's BeforeStop: SIGTERM the app, SIGKILL it if it is
// still running when ctx ends.
func (s *supervisor) stop(ctx context.Context) {
	s.mu.Lock()
	s.stopping = true
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-exited
	}
}
