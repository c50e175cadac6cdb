// Package cli implements the weft command line: one file per verb. Every
// verb returns an error; only main turns it into an exit code.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/weftmesh/weft/internal/telemetry"
)

// env carries what every verb needs.
type env struct {
	stdout, stderr io.Writer
}

type verb struct {
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

// verbs holds every verb of this build. The verbs every build has are added
// here; control and demo are added by control.go and demo.go, or, in a
// build with -tags sidecaronly, by sidecaronly.go as stubs that say so.
var verbs = map[string]verb{}

func init() {
	addVerb("sidecar", "run the proxy beside one app instance", runSidecar)
	addVerb("run", "run an app and its sidecar as one unit: weft run --service NAME --app-port P -- CMD ARGS", runRun)
	addVerb("get", "list services, instances, proxies or resources: weft get services|instances [SERVICE]|proxies [SERVICE]|KIND [NAME]", runGet)
	addVerb("describe", "show one service in detail, and its instances as each sidecar sees them: weft describe service NAME", runDescribe)
	addVerb("explain", "what a sidecar of one service would do with a request to another, and why: weft explain --from web --to catalog GET /items -H 'x-user: beta'", runExplain)
	addVerb("apply", "create or update resources: weft apply -f FILE (- for stdin)", runApply)
	addVerb("delete", "delete resources: weft delete KIND NAME, or weft delete -f FILE", runDelete)
	addVerb("register", "add an endpoint of an external service: weft register SERVICE HOST:PORT [--label k=v]", runRegister)
	addVerb("version", "print the version of this binary and of the control plane", runVersion)
}

// addVerb registers a verb; it is called from init functions only.
func addVerb(name, summary string, run func(ctx context.Context, e *env, args []string) error) {
	if _, dup := verbs[name]; dup {
		panic("cli: verb " + name + " registered twice")
	}
	verbs[name] = verb{summary, run}
}

// usageError marks a mistake in how weft was called (exit code 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// ExitCode maps an error to the process exit code: 2 for usage, the app's
// status for `weft run`, 1 otherwise.
func ExitCode(err error) int {
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	var st exitStatus
	if errors.As(err, &st) {
		return int(st)
	}
	return 1
}

// Run runs one weft command line: [global flags] COMMAND [flags and arguments].
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	e := &env{stdout: stdout, stderr: stderr}
	global, args, err := splitGlobal(args)
	if err != nil {
		return err
	}
	if len(args) == 0 && len(global) > 0 {
		return usagef("want a command after %s (see weft help)", strings.Join(global, " "))
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return nil
	}
	v, ok := verbs[args[0]]
	if !ok {
		return usagef("unknown command %q (see weft help)", args[0])
	}
	// Global flags go first, so that the same flag after the verb wins.
	err = v.run(ctx, e, append(global, args[1:]...))
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

// globalFlags may also come before the command, as in
// `weft --control 10.0.0.5:15010 get services`. Each takes a value.
var globalFlags = []string{"control", "log-level", "o"}

// splitGlobal takes the global flags off the front of args, in the
// --name=value form, and returns them with what follows.
func splitGlobal(args []string) (global, rest []string, err error) {
	for len(args) > 0 {
		a := args[0]
		if len(a) < 2 || a[0] != '-' || a == "--" || a == "-h" || a == "--help" || a == "-help" {
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !slices.Contains(globalFlags, name) {
			return nil, nil, usagef("unknown flag %s before the command (flags there: --control, --log-level, -o; others go after the command)", a)
		}
		if !hasValue {
			if len(args) < 2 {
				return nil, nil, usagef("flag %s needs a value", a)
			}
			value, args = args[1], args[1:]
		}
		global = append(global, "--"+name+"="+value)
		args = args[1:]
	}
	return global, args, nil
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "weft: a service mesh. Usage: weft [--control ADDR] [--log-level L] [-o FORMAT] COMMAND [flags]")
	fmt.Fprintln(w, "(weft COMMAND -h for its flags; the ones in brackets may come before or after COMMAND)")
	fmt.Fprintln(w)
	names := make([]string, 0, len(verbs))
	for n := range verbs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-9s %s\n", n, verbs[n].summary)
	}
}

// flags is a verb's flag set; -h prints its flags to help.
type flags struct {
	*flag.FlagSet
	help io.Writer
}

// newFlags returns a flag set whose errors come back as one-line usage
// errors.
func newFlags(e *env, name string) *flags {
	fs := flag.NewFlagSet("weft "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &flags{FlagSet: fs, help: e.stderr}
}

// parse parses flags, allowing them before and after positional arguments.
// Everything after a "--" is positional, untouched.
func (fs *flags) parse(args []string) ([]string, error) {
	var tail []string
	for i, a := range args {
		if a == "--" {
			args, tail = args[:i], args[i+1:]
			break
		}
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprintf(fs.help, "Usage of %s:\n", fs.Name())
				fs.SetOutput(fs.help)
				fs.PrintDefaults()
				return nil, err
			}
			return nil, flagError(fs.Name(), err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return append(pos, tail...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// flagError is a flag package error as a usage error that names the
// command ("sidecar: flag provided but not defined: -servce"), and for an
// unknown flag says where to look.
func flagError(cmd string, err error) error {
	verb := strings.TrimPrefix(cmd, "weft ")
	if strings.HasPrefix(err.Error(), "flag provided but not defined: ") {
		return usagef("%s: %v (see weft %s -h)", verb, err, verb)
	}
	return usagef("%s: %v", verb, err)
}

// handleBrokenPipe makes a write to a closed standard output or error (the
// reader of `weft run ... | tee` went first, at Ctrl-C) fail with EPIPE
// instead of killing the process with SIGPIPE, so that a long-running
// command still deregisters and drains. It uses signal.Notify, not
// signal.Ignore: an ignored signal stays ignored in the app `weft run`
// starts, while a caught one is reset to its default there.
func handleBrokenPipe() {
	brokenPipeOnce.Do(func() {
		signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE) // nobody reads: the signal is dropped
	})
}

var brokenPipeOnce sync.Once

// labels is a repeatable --label k=v flag.
type labels map[string]string

func (l labels) String() string {
	parts := make([]string, 0, len(l))
	for k, v := range l {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func (l labels) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q: want key=value", s)
	}
	l[k] = v
	return nil
}

// logLevelFlag is a --log-level flag, info by default.
func logLevelFlag(fs *flags) *slog.Level { return logLevelFlagDefault(fs, slog.LevelInfo) }

func logLevelFlagDefault(fs *flags, def slog.Level) *slog.Level {
	lvl := new(slog.Level)
	fs.TextVar(lvl, "log-level", def, "log level: debug, info, warn, error")
	return lvl
}

func newLogger(e *env, lvl *slog.Level) *slog.Logger {
	return telemetry.NewLogger(e.stderr, *lvl)
}

// controlAddr is the --control flag with its WEFT_CONTROL default.
func controlFlag(fs *flags) *string {
	def := os.Getenv("WEFT_CONTROL")
	if def == "" {
		def = "127.0.0.1:15010"
	}
	return fs.String("control", def, "control plane address: HOST:PORT, or https://HOST:PORT when its API serves TLS (env WEFT_CONTROL)")
}
