package cli

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const routeV1 = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: catalog}
spec:
  parentRefs: [{group: "", kind: Service, name: catalog}]
  rules:
  - backendRefs:
    - {name: catalog, weight: 90}
    - {name: catalog-next, weight: 10}
`

// A route's life through the CLI: apply warns of the services it names
// that do not exist yet; --dry-run and diff show a change without making
// it; history lists every revision; rollback brings an earlier one back.
func TestRevisionsDryRunDiffHistoryRollback(t *testing.T) {
	cp := startControl(t)
	v1 := writeFile(t, "v1.yaml", routeV1)
	v2 := writeFile(t, "v2.yaml", strings.Replace(strings.Replace(routeV1, "weight: 90", "weight: 50", 1), "weight: 10", "weight: 50", 1))

	out, errOut, err := weftOutErr(t, "apply", "-f", v1, "--control", cp)
	m := regexp.MustCompile(`^HTTPRoute/catalog created \(revision (\d+)\)\n$`).FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("apply: got (%q, %v), want created with its revision", out, err)
	}
	rev1 := m[1]
	for _, svc := range []string{`"catalog"`, `"catalog-next"`} {
		if !strings.Contains(errOut, "warning: HTTPRoute/catalog: service "+svc+" does not exist yet") {
			t.Errorf("apply's warnings: %q, want one for service %s", errOut, svc)
		}
	}

	out, err = weftOut(t, "apply", "-f", v2, "--dry-run", "--control", cp)
	if err != nil || !strings.HasPrefix(out, "HTTPRoute/catalog configured (dry run)\n--- HTTPRoute/catalog (revision "+rev1+", in force)\n+++ HTTPRoute/catalog ("+v2+")\n") ||
		!strings.Contains(out, "\n-      weight: 90\n") || !strings.Contains(out, "\n+      weight: 50\n") {
		t.Fatalf("apply --dry-run: got (%v)\n%s\nwant configured (dry run) and the diff of the weights", err, out)
	}
	out, err = weftOut(t, "diff", "-f", v2, "--control", cp)
	var d differ
	if !errors.As(err, &d) || d != 1 || !strings.Contains(out, "+      weight: 50") {
		t.Fatalf("diff: got (%v)\n%s\nwant exit 1 with the same diff", err, out)
	}
	if out, err = weftOut(t, "diff", "-f", v1, "--control", cp); err != nil || out != "" {
		t.Errorf("diff of the file in force: got (%q, %v), want nothing", out, err)
	}
	if out := mustWeft(t, "get", "httproute", "catalog", "-o", "yaml", "--control", cp); !strings.Contains(out, "weight: 90") {
		t.Fatalf("after the dry run and diff, the route in force is\n%s\nwant it unchanged", out)
	}

	out = mustWeft(t, "apply", "-f", v2, "--control", cp)
	m = regexp.MustCompile(`^HTTPRoute/catalog configured \(revision (\d+)\)\n$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("apply v2: %q", out)
	}
	rev2 := m[1]
	out = squeeze(mustWeft(t, "history", "httproute", "catalog", "--control", cp))
	if !regexp.MustCompile(`^REVISION TIME ACTION NOTE\n` + rev1 + ` \S+ \S+ created\n` + rev2 + ` \S+ \S+ configured$`).MatchString(out) {
		t.Errorf("history:\n%s\nwant revisions %s created and %s configured", out, rev1, rev2)
	}

	out = mustWeft(t, "rollback", "HTTPRoute/catalog", "--to", rev1, "--control", cp)
	if !regexp.MustCompile(`^HTTPRoute/catalog configured \(revision \d+, as revision ` + rev1 + ` left it\)\n$`).MatchString(out) {
		t.Errorf("rollback: %q", out)
	}
	if out, err = weftOut(t, "diff", "-f", v1, "--control", cp); err != nil || out != "" {
		t.Errorf("diff of v1 after the rollback: got (%q, %v), want nothing", out, err)
	}
	if out := squeeze(mustWeft(t, "history", "httproute", "catalog", "--control", cp)); !strings.HasSuffix(out, "configured rollback to "+rev1) {
		t.Errorf("history after the rollback:\n%s\nwant a last entry noting it", out)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"rollback", "httproute", "catalog", "--to", "99999"}, "no such revision: HTTPRoute/catalog has no revision 99999"},
		{[]string{"rollback", "httproute", "catalog"}, "rollback: want --to REV"},
		{[]string{"history", "httproute", "nope"}, "HTTPRoute/nope has no history"},
		{[]string{"history", "widget", "x"}, `history: unknown kind "widget"`},
	} {
		if _, err := weftOut(t, append(c.args, "--control", cp)...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("weft %s: got %v, want an error with %q", strings.Join(c.args, " "), err, c.want)
		}
	}
}

// apply -f DIR takes every resource file of the directory, in name
// order; a mistake names the file it is in; describe shows a route's
// rules, what it names that does not exist yet, and its revisions.
func TestApplyDirectoryAndDescribe(t *testing.T) {
	cp := startControl(t)
	dir := t.TempDir()
	for name, body := range map[string]string{"a-route.yaml": routeV1, "b-fault.json": `{"apiVersion": "weftmesh.io/v1alpha1", "kind": "Fault",
		"metadata": {"name": "slow"}, "spec": {"delay": {"fixedDelay": "1s", "percent": 5}}}`, "notes.txt": "not a resource"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out, err := weftOut(t, "apply", "-f", dir, "--control", cp)
	if err != nil || !regexp.MustCompile(`^HTTPRoute/catalog created \(revision \d+\)\nFault/slow created \(revision \d+\)\n$`).MatchString(out) {
		t.Fatalf("apply -f DIR: got (%q, %v), want the route and the fault created", out, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "c-bad.yaml"), []byte("apiVersion: weftmesh.io/v1alpha1\nkind: Fault\nmetadata: {name: x}\nspec: {delay: {fixedDelay: soon, percent: 5}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := weftOut(t, "apply", "-f", dir, "--control", cp); err == nil || !strings.Contains(err.Error(), "c-bad.yaml:4: Fault/x: spec.delay.fixedDelay") {
		t.Errorf("apply -f DIR with a bad file: got %v, want the error naming c-bad.yaml:4", err)
	}
	out = mustWeft(t, "describe", "httproute", "catalog", "--control", cp)
	for _, want := range []string{"HTTPRoute/catalog, revision ", "Rules:\n  rule 0: PathPrefix / -> catalog 90, catalog-next 10\n",
		`Warning: service "catalog-next" does not exist yet`, "Revisions (weft history HTTPRoute catalog):\n  "} {
		if !strings.Contains(out, want) {
			t.Errorf("describe httproute catalog:\n%s\nwant %q in it", out, want)
		}
	}
}
