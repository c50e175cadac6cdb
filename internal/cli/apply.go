package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"

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
	file := fs.String("f", "", "file with resources in YAML or JSON, a directory of them, or - for standard input")
	dry := fs.Bool("dry-run", false, "validate and print what would change (and its diff), applying nothing")
	rest, err := fs.parse(args)
	if err != nil {
		return err
	}
	if *file == "" || len(rest) > 0 {
		return usagef("apply: want apply -f FILE|DIR|- [--dry-run]")
	}
	doc, list, err := readResources(*file)
	if err != nil {
		return err
	}
	c := api.NewClient(*control)
	if *dry {
		results, err := c.DryRun(ctx, doc)
		if err != nil {
			return err
		}
		for i, r := range results {
			fmt.Fprintf(e.stdout, "%s %s (dry run)\n", r.Ref, r.Outcome)
			warn(e, r)
			if r.Outcome != config.Unchanged && i < len(list) {
				if _, err := diffResource(ctx, e, c, *file, list[i]); err != nil {
					return err
				}
			}
		}
		return nil
	}
	results, err := c.Apply(ctx, doc)
	if err != nil {
		return err
	}
	for _, r := range results {
		if r.Outcome == config.Unchanged || r.Revision == 0 {
			fmt.Fprintf(e.stdout, "%s %s\n", r.Ref, r.Outcome)
		} else {
			fmt.Fprintf(e.stdout, "%s %s (revision %d)\n", r.Ref, r.Outcome, r.Revision)
		}
		warn(e, r)
	}
	return nil
}

// readResources reads and checks a file of resources locally: the same
// validation the control plane runs, with the file name and line in
// front of the field that is wrong. A directory is every .yaml, .yml and
// .json file in it (not below), in name order, as one stream.
func readResources(file string) ([]byte, []config.Resource, error) {
	files := []string{file}
	if st, err := os.Stat(file); err == nil && st.IsDir() {
		if files, err = resourceFiles(file); err != nil {
			return nil, nil, err
		}
	}
	var doc []byte
	var list []config.Resource
	for _, f := range files {
		b, err := readFile(f)
		if err != nil {
			return nil, nil, err
		}
		rs, err := config.Parse(b)
		if err != nil {
			return nil, nil, inFile(f, err)
		}
		if len(doc) > 0 {
			doc = append(doc, "\n---\n"...)
		}
		doc, list = append(doc, b...), append(list, rs...)
	}
	return doc, list, nil
}

// resourceFiles are the resource files of a directory, sorted.
func resourceFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("-f: %w", err)
	}
	var out []string
	for _, e := range entries {
		if ext := filepath.Ext(e.Name()); !e.IsDir() && (ext == ".yaml" || ext == ".yml" || ext == ".json") {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("-f %s: the directory has no .yaml, .yml or .json file", dir)
	}
	return out, nil
}

// warn prints an apply result's warnings on standard error.
func warn(e *env, r api.ApplyResult) {
	for _, w := range r.Warnings {
		fmt.Fprintf(e.stderr, "warning: %s: %s\n", r.Ref, w)
	}
}

// inFile puts the file name in front of an error, and the line when the
// error has one: "FILE:LINE: Kind/name: field: message".
func inFile(name string, err error) error {
	if name == "-" {
		name = "<stdin>"
	}
	return &fileError{name, err}
}

type fileError struct {
	name string
	err  error
}

func (e *fileError) Unwrap() error { return e.err }

func (e *fileError) Error() string {
	var fe *config.FieldError
	if errors.As(e.err, &fe) && fe.Line > 0 {
		return fmt.Sprintf("%s:%d: %s: %s: %s", e.name, fe.Line, fe.Ref, fe.Field, fe.Msg)
	}
	return e.name + ": " + e.err.Error()
}

func runDelete(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "delete")
	control := controlFlag(fs)
	file := fs.String("f", "", "delete the resources named in this file (only kind and metadata.name are read)")
	rest, err := fs.parse(args)
	if err != nil {
		return err
	}
	ids, err := deleteIDs(*file, rest)
	if err != nil {
		return err
	}
	c := api.NewClient(*control)
	for _, id := range ids {
		if id.Kind == "service" {
			// The mesh forgets the name of a service with no instance left.
			err = c.ForgetService(ctx, id.Name)
		} else {
			err = c.Delete(ctx, id.Kind, id.Name)
		}
		if err != nil {
			return err // names the resource
		}
		fmt.Fprintf(e.stdout, "%s deleted\n", id)
	}
	return nil
}

// isServiceWord: `weft delete service NAME` forgets a service record.
func isServiceWord(w string) bool { return w == "service" || w == "services" || w == "svc" }

// deleteIDs reads what to delete: the kind and name of each resource in a
// file, KIND NAME, or KIND/NAME... as weft get -o name prints them.
func deleteIDs(file string, rest []string) ([]config.ID, error) {
	const want = "want delete KIND NAME, delete KIND/NAME..., delete service NAME, or delete -f FILE"
	switch {
	case file != "" && len(rest) == 0:
		doc, err := readFile(file)
		if err != nil {
			return nil, err
		}
		ids, err := config.ParseIDs(doc)
		if err != nil {
			return nil, inFile(file, err)
		}
		return ids, nil
	case file != "" || len(rest) == 0:
		return nil, usagef("delete: %s", want)
	case len(rest) == 2 && !strings.Contains(rest[0], "/"):
		rest = []string{rest[0] + "/" + rest[1]}
	}
	ids := make([]config.ID, 0, len(rest))
	for _, a := range rest {
		word, name, ok := strings.Cut(a, "/")
		if !ok || name == "" {
			return nil, usagef("delete: %q is not KIND/NAME (%s)", a, want)
		}
		if isServiceWord(word) {
			ids = append(ids, config.ID{Kind: "service", Name: name})
			continue
		}
		kind, ok := config.KindFor(word)
		if !ok {
			return nil, usagef("delete: unknown kind %q (kinds: %s)", word, kindWords())
		}
		ids = append(ids, config.ID{Kind: kind, Name: name})
	}
	return ids, nil
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
	meta := config.Metadata{Name: name}
	if r, err := c.Resource(ctx, "ExternalService", name); err == nil {
		if spec, err = config.DecodeExternalService(&r); err != nil {
			return err
		}
		meta.Labels = r.Metadata.Labels // keep what the resource had
	} else if !isNotFound(err) {
		return err
	}
	ep := config.Endpoint{Address: addr}
	if len(lbls) > 0 {
		ep.Labels = lbls
	}
	replaced := false
	for i := range spec.Endpoints {
		if config.SameEndpoint(spec.Endpoints[i].Address, addr) {
			spec.Endpoints[i], replaced = ep, true
		}
	}
	if !replaced {
		spec.Endpoints = append(spec.Endpoints, ep)
	}
	raw, _ := json.Marshal(spec)
	doc, _ := json.Marshal(config.Resource{APIVersion: config.APIVersion, Kind: "ExternalService",
		Metadata: meta, Spec: raw})
	if _, err := config.Parse(doc); err != nil {
		return fmt.Errorf("register: %w", err)
	}
	results, err := c.Apply(ctx, doc)
	if err != nil {
		return err
	}
	for _, r := range results {
		fmt.Fprintf(e.stdout, "%s %s (endpoint %s)\n", r.Ref, r.Outcome, addr)
	}
	return nil
}
