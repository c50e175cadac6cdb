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

func runVersion(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "version")
	control := controlFlag(fs)
	out := outputFlag(fs)
	if _, err := fs.parse(args); err != nil {
		return err
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
	if cv, err := api.NewClient(*control).Version(ctx); err == nil {
		v.Control = &cv
	} else {
		v.Error = err.Error()
	}
	if out.format != "table" {
		return out.print(e.stdout, v, nil)
	}
	fmt.Fprintf(e.stdout, "client: %s (%s)\n", v.Client, v.Go)
	if v.Control != nil {
		fmt.Fprintf(e.stdout, "control: %s (store: %s)\n", v.Control.Version, v.Control.Store)
	} else {
		fmt.Fprintf(e.stdout, "control: unreachable: %s\n", v.Error)
	}
	return nil
}
