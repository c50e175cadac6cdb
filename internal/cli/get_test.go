package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/registry"
)

// weftOut runs one command line of the CLI as the binary would and
// returns its standard output.
func weftOut(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, _, err := weftOutErr(t, args...)
	return out, err
}

// weftOutErr is weftOut with standard error too.
func weftOutErr(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = Run(ctx, args, &out, &errOut)
	return out.String(), errOut.String(), err
}

// revisionsOut is apply's output without its "(revision N)" notes.
var revisionsOut = regexp.MustCompile(` \(revision \d+\)`)

// mustWeft runs a command line that must succeed.
func mustWeft(t *testing.T, args ...string) string {
	t.Helper()
	out, err := weftOut(t, args...)
	if err != nil {
		t.Fatalf("weft %s: got error %v, want nil", strings.Join(args, " "), err)
	}
	return out
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// withStdin runs f with os.Stdin reading in, as `... | weft apply -f -`.
func withStdin(t *testing.T, in string, f func()) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		w.WriteString(in)
		w.Close()
	}()
	old := os.Stdin
	os.Stdin = r
	defer func() { os.Stdin = old; r.Close() }()
	f()
}

const twoServices = `apiVersion: weftmesh.io/v1alpha1
kind: ExternalService
metadata:
  name: legacy
  labels:
    team: billing
    example.com/tier: "1"
spec:
  endpoints:
  - address: 127.0.0.1:1
    labels: {dc: east, port: "8080"}
  - address: legacy.example:443
---
apiVersion: weftmesh.io/v1alpha1
kind: ExternalService
metadata:
  name: ledger
spec:
  protocol: tcp
  endpoints:
  - address: 10.0.0.7:5432
`

// What get prints in JSON and YAML, one resource or a list, applies back
// unchanged: through a file and through standard input.
func TestGetOutputAppliesBack(t *testing.T) {
	cp := startControl(t)
	file := writeFile(t, "two.yaml", twoServices)
	if got, want := revisionsOut.ReplaceAllString(mustWeft(t, "apply", "-f", file, "--control", cp), ""), "ExternalService/legacy created\nExternalService/ledger created\n"; got != want {
		t.Fatalf("apply: got %q, want %q", got, want)
	}
	for _, format := range []string{"yaml", "json"} {
		for _, args := range [][]string{{"externalservices"}, {"externalservice", "legacy"}} {
			name := format + " " + strings.Join(args, " ")
			t.Run(name, func(t *testing.T) {
				got := mustWeft(t, append([]string{"get", "-o", format, "--control", cp}, args...)...)
				if !strings.Contains(got, "billing") || !strings.Contains(got, "example.com/tier") {
					t.Errorf("get -o %s: got\n%s\nwant metadata.labels in it", format, got)
				}
				want := "ExternalService/legacy unchanged\n"
				if len(args) == 1 {
					want = "ExternalService/ledger unchanged\nExternalService/legacy unchanged\n"
				}
				back := writeFile(t, "back."+format, got)
				if out, err := weftOut(t, "apply", "-f", back, "--control", cp); err != nil || out != want {
					t.Errorf("apply -f of get -o %s output: got (%q, %v), want (%q, nil); the output was\n%s", format, out, err, want, got)
				}
				var out string
				var err error
				withStdin(t, got, func() { out, err = weftOut(t, "apply", "-f", "-", "--control", cp) })
				if err != nil || out != want {
					t.Errorf("apply -f - of get -o %s output: got (%q, %v), want (%q, nil)", format, out, err, want)
				}
			})
		}
	}
}

func TestGetWideAndName(t *testing.T) {
	cp := startControl(t)
	mustWeft(t, "apply", "-f", writeFile(t, "two.yaml", twoServices), "--control", cp)
	ctx := context.Background()
	since := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	_, err := api.NewClient(cp).Register(ctx, api.RegisterRequest{Instance: registry.Instance{
		Service: "web", ID: "web-1", Address: "127.0.0.1:9", Labels: map[string]string{"version": "v1"},
		Ready: true, Node: "node-a", Since: since, Protocol: "h2c"}})
	if err != nil {
		t.Fatalf("Register: %v", err)
	}

	tests := []struct {
		args  []string
		lines []string // each a row, columns joined by one space
	}{
		{[]string{"get", "externalservices", "-o", "name"}, []string{"ExternalService/ledger", "ExternalService/legacy"}},
		{[]string{"get", "services", "-o", "name"}, []string{"service/ledger", "service/legacy", "service/web"}},
		{[]string{"get", "instances", "-o", "name"}, []string{"instance/web/web-1"}},
		{[]string{"get", "externalservices", "-o", "wide"}, []string{
			"NAME KIND REVISION PROTOCOL LABELS ENDPOINTS",
			"ledger ExternalService 3 tcp <none> 10.0.0.7:5432",
			"legacy ExternalService 2 http example.com/tier=1,team=billing 127.0.0.1:1{dc=east,port=8080},legacy.example:443"}},
		{[]string{"get", "externalservices"}, []string{
			"NAME KIND REVISION SUMMARY",
			"ledger ExternalService 3 10.0.0.7:5432",
			"legacy ExternalService 2 127.0.0.1:1,legacy.example:443"}},
		{[]string{"get", "services", "-o", "wide"}, []string{
			"NAME KIND INSTANCES READY ENDPOINTS",
			"ledger external 1 unchecked 10.0.0.7:5432",
			"legacy external 2 unchecked 127.0.0.1:1,legacy.example:443",
			"web mesh 1 1 -"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out := mustWeft(t, append(tt.args, "--control", cp)...)
			if got, want := squeeze(out), strings.Join(tt.lines, "\n"); got != want {
				t.Errorf("got\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// External endpoints are not health-checked: they show as unchecked,
// never as ready, even one where nothing listens.
func TestExternalEndpointsAreUnchecked(t *testing.T) {
	cp := startControl(t)
	mustWeft(t, "apply", "-f", writeFile(t, "two.yaml", twoServices), "--control", cp)
	since := time.Now().Add(-time.Hour)
	if _, err := api.NewClient(cp).Register(context.Background(), api.RegisterRequest{Instance: registry.Instance{
		Service: "legacy", ID: "legacy-9", Address: "127.0.0.1:9", Ready: true, Node: "node-a", Since: since}}); err != nil {
		t.Fatalf("Register: %v", err)
	}
	tests := []struct {
		args  []string
		lines []string
	}{
		{[]string{"get", "instances", "legacy"}, []string{
			"SERVICE ID ADDRESS PROTOCOL READY LABELS AGE",
			"legacy legacy-9 127.0.0.1:9 http true <none> 1h",
			"legacy (external) 127.0.0.1:1 http unchecked dc=east,port=8080 -",
			"legacy (external) legacy.example:443 http unchecked <none> -"}},
		{[]string{"get", "instances", "-o", "wide"}, []string{
			"SERVICE ID ADDRESS PROTOCOL READY LABELS AGE NODE SINCE",
			"legacy legacy-9 127.0.0.1:9 http true <none> 1h node-a " + since.UTC().Format(time.RFC3339),
			"ledger (external) 10.0.0.7:5432 tcp unchecked <none> - - -",
			"legacy (external) 127.0.0.1:1 http unchecked dc=east,port=8080 - - -",
			"legacy (external) legacy.example:443 http unchecked <none> - - -"}},
		{[]string{"get", "services"}, []string{
			"NAME KIND INSTANCES READY",
			"ledger external 1 unchecked",
			"legacy mesh 3 1 (+2 unchecked)"}},
		{[]string{"describe", "service", "ledger"}, []string{
			"Name: ledger",
			"Kind: external",
			"Endpoints: 1 external (not health-checked)",
			"",
			"EXTERNAL ENDPOINT READY LABELS",
			"10.0.0.7:5432 unchecked <none>"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out := mustWeft(t, append(tt.args, "--control", cp)...)
			if got, want := squeeze(out), strings.Join(tt.lines, "\n"); got != want {
				t.Errorf("got\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// squeeze joins the columns of each line with one space.
func squeeze(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}

// weft get on routes names the rules that never win: a rule first in
// Gateway API's precedence matches the same requests.
func TestGetRoutesShowsWhichRuleWins(t *testing.T) {
	cp := startControl(t)
	route := func(name, backend string) string {
		return `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ` + name + `}
spec:
  parentRefs: [{group: "", kind: Service, name: catalog}]
  rules:
  - matches: [{path: {value: /api}}]
    backendRefs: [{name: ` + backend + `}]
`
	}
	mustWeft(t, "apply", "-f", writeFile(t, "a.yaml", route("a-team", "catalog-v2")), "--control", cp)
	if out := mustWeft(t, "get", "httproutes", "--control", cp); strings.Contains(out, "NEVER WIN") {
		t.Errorf("one route: got\n%s\nwant no conflicts", out)
	}
	mustWeft(t, "apply", "-f", writeFile(t, "b.yaml", route("b-team", "catalog-v3")), "--control", cp)
	want := "RULES THAT NEVER WIN (a rule first in Gateway API's precedence matches the same requests):\n  HTTPRoute/b-team rule 0 on catalog (PathPrefix /api): HTTPRoute/a-team rule 0 wins\n"
	for _, args := range [][]string{{"httproutes"}, {"httproute", "b-team"}, {"httproute", "a-team"}} {
		if out := mustWeft(t, append([]string{"get", "--control", cp}, args...)...); !strings.HasSuffix(out, want) {
			t.Errorf("get %v: got\n%s\nwant it to end with\n%s", args, out, want)
		}
	}
}
