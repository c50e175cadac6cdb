package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/security"
)

func init() {
	addVerb("token", "join tokens, which let sidecars get their certificates: weft token create --service NAME [--ttl 24h] | --mesh; weft token list; weft token delete ID", runToken)
}

// runToken is `weft token create|list|delete`.
func runToken(ctx context.Context, e *env, args []string) error {
	sub, rest := "", args
	for i, a := range args {
		if len(a) > 0 && a[0] != '-' {
			sub, rest = a, append(append([]string(nil), args[:i]...), args[i+1:]...)
			break
		}
	}
	switch sub {
	case "create":
		return tokenCreate(ctx, e, rest)
	case "list":
		return tokenList(ctx, e, rest)
	case "delete":
		return tokenDelete(ctx, e, rest)
	case "":
		return usagef("token: want create, list or delete (weft token create --service NAME)")
	default:
		return usagef("token: unknown subcommand %q: want create, list or delete", sub)
	}
}

// tokenCreate prints the token alone on standard output (so that
// TOKEN=$(weft token create --service web) works) and what it is on
// standard error. The secret is shown this once.
func tokenCreate(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "token create")
	control := controlFlag(fs)
	service := fs.String("service", "", "the service whose sidecars may join with the token")
	mesh := fs.Bool("mesh", false, "a mesh-wide token: any service (for trusted hosts only)")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token may be used (up to a year)")
	rest, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("token create: unexpected argument %q", rest[0])
	}
	switch {
	case *service == "" && !*mesh:
		return usagef("token create: want --service NAME, or --mesh for a mesh-wide token")
	case *service != "" && *mesh:
		return usagef("token create: --service and --mesh: give one")
	case *ttl < time.Second:
		return usagef("token create: --ttl %s: must be at least 1s", *ttl)
	}
	req := security.TokenRequest{Service: *service, Mesh: *mesh, TTLSeconds: int64(*ttl / time.Second)}
	var out security.TokenCreated
	if err := api.NewClient(*control).Do(ctx, http.MethodPost, "/v1/tokens", jsonReader(req), &out); err != nil {
		return fmt.Errorf("token create: %w", err)
	}
	fmt.Fprintln(e.stdout, out.Secret)
	fmt.Fprintf(e.stderr, "join token %s for %s, expires %s; it is shown only now: give it to the sidecars with --join-token or WEFT_JOIN_TOKEN\n",
		out.ID, out.Scope(), out.Expires.Local().Format(time.RFC3339))
	return nil
}

func tokenList(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "token list")
	control := controlFlag(fs)
	out := outputFlag(fs, formatTable, formatJSON, formatYAML)
	rest, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := out.check(); err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("token list: unexpected argument %q", rest[0])
	}
	var list []security.Token
	if err := api.NewClient(*control).Do(ctx, http.MethodGet, "/v1/tokens", nil, &list); err != nil {
		return fmt.Errorf("token list: %w", err)
	}
	return out.print(e.stdout, list, func(tw *tabwriter.Writer) {
		row(tw, "ID", "SCOPE", "CREATED", "EXPIRES")
		for _, t := range list {
			row(tw, t.ID, t.Scope(), t.Created.Local().Format(time.RFC3339), t.Expires.Local().Format(time.RFC3339))
		}
	})
}

func tokenDelete(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "token delete")
	control := controlFlag(fs)
	rest, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usagef("token delete: want the token's ID (weft token list shows them)")
	}
	if err := api.NewClient(*control).Do(ctx, http.MethodDelete, "/v1/tokens/"+url.PathEscape(rest[0]), nil, nil); err != nil {
		return fmt.Errorf("token delete: %w", err)
	}
	fmt.Fprintf(e.stdout, "join token %s deleted: no sidecar can join with it now (those that joined keep renewing with their certificates)\n", rest[0])
	return nil
}

// secretFlag is a string flag whose value -h never prints (its default
// may come from the environment).
type secretFlag struct{ p *string }

func (s secretFlag) String() string { return "" }

func (s secretFlag) Set(v string) error { *s.p = v; return nil }

func jsonReader(v any) io.Reader {
	b, _ := json.Marshal(v)
	return bytes.NewReader(b)
}
