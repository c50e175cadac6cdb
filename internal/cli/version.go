package cli

import (
	"context"
	"errors"
	"fmt"
	"runtime"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/version"
)

func isNotFound(err error) bool { return errors.Is(err, api.ErrNotFound) }

// runVersion prints this binary's version and the control plane's. When
// the control plane cannot be asked it says so and fails (exit 1), after
// printing what it knows.
func runVersion(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "version")
	control := controlFlag(fs)
	out := outputFlag(fs)
	rest, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("version: unexpected argument %q", rest[0])
	}
	if err := out.check(); err != nil {
		return err
	}
	type versions struct {
		Client  string       `json:"client"`
		Go      string       `json:"go"`
		Control *api.Version `json:"control,omitempty"`
		Error   string       `json:"controlError,omitempty"`
	}
	v := versions{Client: version.Version, Go: runtime.Version()}
	cv, cerr := api.NewClient(*control).Version(ctx)
	if cerr == nil {
		v.Control = &cv
	} else {
		v.Error = cerr.Error()
	}
	if out.format != "table" {
		if err := out.print(e.stdout, v, nil); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.stdout, "client: %s (%s)\n", v.Client, v.Go)
		if v.Control != nil {
			fmt.Fprintf(e.stdout, "control: %s (store: %s)\n", v.Control.Version, v.Control.Store)
		} else {
			fmt.Fprintln(e.stdout, "control: unknown (no answer)")
		}
	}
	if cerr != nil {
		return fmt.Errorf("version of the control plane: %w", cerr)
	}
	return nil
}
