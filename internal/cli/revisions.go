package cli

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/config"
)

// Revisions of resources: weft diff -f, weft history, weft rollback
// (and apply --dry-run's diff).

func init() {
	addVerb("diff", "show how the resources of a file differ from those in force (exit 1 when they do): weft diff -f FILE", runDiff)
	addVerb("history", "list the revisions of a resource: weft history KIND NAME", runHistory)
	addVerb("rollback", "apply a resource as an earlier revision left it: weft rollback KIND NAME --to REV", runRollback)
}

// differ is the error of a weft diff that found differences (exit 1).
type differ int

func (d differ) Error() string {
	return fmt.Sprintf("%d of the file's resources differ from those in force", int(d))
}

func runDiff(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "diff")
	control := controlFlag(fs)
	file := fs.String("f", "", "file with resources in YAML or JSON, a directory of them, or - for standard input")
	rest, err := fs.parse(args)
	if err != nil {
		return err
	}
	if *file == "" || len(rest) > 0 {
		return usagef("diff: want diff -f FILE|DIR|-")
	}
	_, list, err := readResources(*file)
	if err != nil {
		return err
	}
	c := api.NewClient(*control)
	n := 0
	for _, r := range list {
		changed, err := diffResource(ctx, e, c, *file, r)
		if err != nil {
			return err
		}
		if changed {
			n++
		}
	}
	if n > 0 {
		return differ(n)
	}
	return nil
}

// diffResource writes the diff between the resource in force and r (of
// file), both as weft get -o yaml prints them; it reports a difference.
func diffResource(ctx context.Context, e *env, c *api.Client, file string, r config.Resource) (bool, error) {
	from, old := r.Ref()+" (none in force)", ""
	stored, err := c.Resource(ctx, r.Kind, r.Metadata.Name)
	switch {
	case err == nil:
		from = fmt.Sprintf("%s (revision %d, in force)", r.Ref(), stored.Metadata.Revision)
		stored.Metadata.Revision = 0
		if old, err = yamlText(stored); err != nil {
			return false, err
		}
	case !isNotFound(err):
		return false, err
	}
	r.Metadata.Revision = 0
	next, err := yamlText(r)
	if err != nil {
		return false, err
	}
	if file == "-" {
		file = "<stdin>"
	}
	return writeDiff(e.stdout, from, r.Ref()+" ("+file+")", old, next), nil
}

func yamlText(v any) (string, error) {
	var b bytes.Buffer
	err := writeYAML(&b, v)
	return b.String(), err
}

// kindName reads the KIND NAME (or KIND/NAME) arguments of a verb.
func kindName(verb string, rest []string) (kind, name string, err error) {
	if len(rest) == 1 {
		if k, n, ok := strings.Cut(rest[0], "/"); ok && k != "" && n != "" {
			rest = []string{k, n}
		}
	}
	if len(rest) != 2 {
		return "", "", usagef("%s: want %s KIND NAME", verb, verb)
	}
	kind, ok := config.KindFor(rest[0])
	if !ok {
		return "", "", usagef("%s: unknown kind %q (kinds: %s)", verb, rest[0], kindWords())
	}
	return kind, rest[1], nil
}

func runHistory(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "history")
	control := controlFlag(fs)
	out := outputFlag(fs)
	rest, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := out.check(); err != nil {
		return err
	}
	kind, name, err := kindName("history", rest)
	if err != nil {
		return err
	}
	h, err := api.NewClient(*control).History(ctx, kind, name)
	if err != nil {
		return err
	}
	return out.print(e.stdout, h, func(tw *tabwriter.Writer) {
		row(tw, "REVISION", "TIME", "ACTION", "NOTE")
		for _, c := range h {
			note := ""
			if c.RollbackTo != 0 {
				note = "rollback to " + strconv.FormatInt(c.RollbackTo, 10)
			}
			row(tw, c.Revision, c.Time.Local().Format(time.DateTime), c.Action, note)
		}
	})
}

func runRollback(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "rollback")
	control := controlFlag(fs)
	to := fs.Int64("to", 0, "the revision to go back to (weft history KIND NAME lists them)")
	rest, err := fs.parse(args)
	if err != nil {
		return err
	}
	kind, name, err := kindName("rollback", rest)
	if err != nil {
		return err
	}
	if *to <= 0 {
		return usagef("rollback: want --to REV (weft history %s %s lists them)", kind, name)
	}
	r, err := api.NewClient(*control).Rollback(ctx, kind, name, *to)
	if err != nil {
		return err
	}
	if r.Outcome == config.Unchanged {
		fmt.Fprintf(e.stdout, "%s unchanged (it is as revision %d left it)\n", r.Ref, *to)
		return nil
	}
	fmt.Fprintf(e.stdout, "%s %s (revision %d, as revision %d left it)\n", r.Ref, r.Outcome, r.Revision, *to)
	return nil
}
