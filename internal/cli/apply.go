package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/registry"
)

func readFile(name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(os.Stdin)
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("-f: %w", err)
	}
	return b, nil
}

func runApply(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "apply")
	control := controlFlag(fs)
	file := fs.String("f", "", "file with resources in YAML or JSON; - for standard input")
	rest, err := fs.parse(args)
	if err != nil {
		return err
	}
	if *file == "" || len(rest) > 0 {
		return usagef("apply: want apply -f FILE")
	}
	doc, err := readFile(*file)
	if err != nil {
		return err
	}
	// Check locally first: the same validation the control plane runs,
	// with the file name in front of the field that is wrong.
	if _, err := config.Parse(doc); err != nil {
		return fmt.Errorf("%s: %w", *file, err)
	}
	results, err := api.NewClient(*control).Apply(ctx, doc)
	if err != nil {
		return err
	}
	for _, r := range results {
		fmt.Fprintf(e.stdout, "%s %s\n", r.Ref, r.Outcome)
	}
	return nil
}

func runDelete(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "delete")
	control := controlFlag(fs)
	file := fs.String("f", "", "delete the resources named in this file")
	rest, err := fs.parse(args)
	if err != nil {
		return err
	}
	c := api.NewClient(*control)
	type ref struct{ kind, name string }
	var refs []ref
	switch {
	case *file != "" && len(rest) == 0:
		doc, err := readFile(*file)
		if err != nil {
			return err
		}
		list, err := config.Parse(doc)
		if err != nil {
			return fmt.Errorf("%s: %w", *file, err)
		}
		for _, r := range list {
			refs = append(refs, ref{r.Kind, r.Metadata.Name})
		}
	case *file == "" && len(rest) == 2:
		kind, ok := config.KindFor(rest[0])
		if !ok {
			return usagef("delete: unknown kind %q (kinds: %s)", rest[0], kindWords())
		}
		refs = append(refs, ref{kind, rest[1]})
	default:
		return usagef("delete: want delete KIND NAME, or delete -f FILE")
	}
	for _, r := range refs {
		if err := c.Delete(ctx, r.kind, r.name); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%s/%s deleted\n", r.kind, r.name)
	}
	return nil
}

// runRegister adds an endpoint to the ExternalService of that name,
// creating it if needed: the way to put a service without a sidecar in the mesh.
func runRegister(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "register")
	control := controlFlag(fs)
	lbls := labels{}
	fs.Var(lbls, "label", "endpoint label k=v (repeatable)")
	rest, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(rest) != 2 {
		return usagef("register: want register SERVICE HOST:PORT")
	}
	name, addr := rest[0], rest[1]
	if err := registry.ValidName(name); err != nil {
		return usageError{err.Error()}
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return usagef("register: %q is not host:port", addr)
	}
	c := api.NewClient(*control)
	var spec config.ExternalService
	if r, err := c.Resource(ctx, "ExternalService", name); err == nil {
		if spec, err = config.DecodeExternalService(&r); err != nil {
			return err
		}
	} else if !isNotFound(err) {
		return err
	}
	ep := config.Endpoint{Address: addr}
	if len(lbls) > 0 {
		ep.Labels = lbls
	}
	replaced := false
	for i := range spec.Endpoints {
		if spec.Endpoints[i].Address == addr {
			spec.Endpoints[i], replaced = ep, true
		}
	}
	if !replaced {
		spec.Endpoints = append(spec.Endpoints, ep)
	}
	raw, _ := json.Marshal(spec)
	doc, _ := json.Marshal(config.Resource{APIVersion: config.APIVersion, Kind: "ExternalService",
		Metadata: config.Metadata{Name: name}, Spec: raw})
	results, err := c.Apply(ctx, doc)
	if err != nil {
		return err
	}
	for _, r := range results {
		fmt.Fprintf(e.stdout, "%s %s (endpoint %s)\n", r.Ref, r.Outcome, addr)
	}
	return nil
}
