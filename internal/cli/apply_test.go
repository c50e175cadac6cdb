package cli

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/config"
)

// A bad file is refused before anything is sent, with the file, line,
// resource and field in front of the message.
func TestApplyErrorsNameFileLineAndField(t *testing.T) {
	const head = "apiVersion: weftmesh.io/v1alpha1\nkind: ExternalService\nmetadata:\n  name: pay\n"
	tests := []struct {
		name, in, want string
	}{
		{"metadata.owner", strings.Replace(head, "  name: pay\n", "  name: pay\n  owner: prod\n", 1) + "spec: {endpoints: [{address: a:1}]}\n",
			`:5: ExternalService/pay: metadata.owner: unknown field "owner"`},
		{"unknown endpoint field", head + "spec:\n  endpoints:\n  - address: a:1\n    weight: 2\n",
			`:8: ExternalService/pay: spec.endpoints[0].weight: unknown field "weight"`},
		{"bad label key", strings.Replace(head, "  name: pay\n", "  name: pay\n  labels:\n    \"bad key!\": x\n", 1) + "spec: {endpoints: [{address: a:1}]}\n",
			`:6: ExternalService/pay: metadata.labels: key "bad key!": name "bad key!" must be 1 to 63`},
		{"bad endpoint label value", head + "spec:\n  endpoints:\n  - address: a:1\n    labels: {zone: \"a b\"}\n",
			`:8: ExternalService/pay: spec.endpoints[0].labels: value "a b" of "zone"`},
		{"duplicate endpoint", head + "spec:\n  endpoints:\n  - address: a:1\n  - address: a:1\n",
			`:8: ExternalService/pay: spec.endpoints[1].address: "a:1" is the same endpoint as spec.endpoints[0]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := writeFile(t, "bad.yaml", tt.in)
			// Port 1 on loopback: nothing answers, so an error that came
			// from the control plane would say so.
			out, err := weftOut(t, "apply", "-f", file, "--control", "127.0.0.1:1")
			if err == nil || !strings.HasPrefix(err.Error(), file+tt.want) {
				t.Errorf("apply: got (%q, %v), want an error starting %q", out, err, file+tt.want)
			}
			var fe *config.FieldError
			if !errors.As(err, &fe) {
				t.Errorf("apply: got error %T, want one that unwraps to *config.FieldError", err)
			}
		})
	}
}

// Deleting by file reads only kind and metadata.name: a spec that apply
// would refuse, or none, still deletes.
func TestDeleteByFileNeedsOnlyKindAndName(t *testing.T) {
	cp := startControl(t)
	mustWeft(t, "apply", "-f", writeFile(t, "two.yaml", twoServices), "--control", cp)
	bad := writeFile(t, "bad.yaml", `apiVersion: weftmesh.io/v1
kind: ExternalService
metadata:
  name: legacy
  labels: {"bad key!": x}
spec:
  endpoints: []
---
kind: externalservice
metadata: {name: ledger}
`)
	if _, err := weftOut(t, "apply", "-f", bad, "--control", cp); err == nil {
		t.Fatalf("apply of the bad file: got nil, want an error (the test needs a file apply refuses)")
	}
	out, err := weftOut(t, "delete", "-f", bad, "--control", cp)
	if want := "ExternalService/legacy deleted\nExternalService/ledger deleted\n"; err != nil || out != want {
		t.Fatalf("delete -f: got (%q, %v), want (%q, nil)", out, err, want)
	}
	if out := mustWeft(t, "get", "externalservices", "-o", "name", "--control", cp); out != "" {
		t.Errorf("after delete -f: got resources %q, want none", out)
	}
	if _, err := weftOut(t, "delete", "-f", bad, "--control", cp); err == nil || !strings.Contains(err.Error(), "ExternalService/legacy not found") {
		t.Errorf("delete -f again: got %v, want not found naming ExternalService/legacy", err)
	}
	noName := writeFile(t, "noname.yaml", "kind: ExternalService\nmetadata: {}\n")
	if _, err := weftOut(t, "delete", "-f", noName, "--control", cp); err == nil || !strings.Contains(err.Error(), "noname.yaml:2: document 1: metadata.name:") {
		t.Errorf("delete -f without a name: got %v, want an error naming the file, line 2 and metadata.name", err)
	}
}

func TestDeleteArguments(t *testing.T) {
	tests := []struct {
		args []string
		want []config.ID
		err  string
	}{
		{[]string{"externalservice", "a"}, []config.ID{{Kind: "ExternalService", Name: "a"}}, ""},
		{[]string{"ExternalService/a", "externalservices/b"}, []config.ID{{Kind: "ExternalService", Name: "a"}, {Kind: "ExternalService", Name: "b"}}, ""},
		{[]string{"ExternalService/a"}, []config.ID{{Kind: "ExternalService", Name: "a"}}, ""},
		{nil, nil, "want delete KIND NAME"},
		{[]string{"a"}, nil, `"a" is not KIND/NAME`},
		{[]string{"widget/a"}, nil, `unknown kind "widget"`},
		{[]string{"ExternalService/"}, nil, "is not KIND/NAME"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			got, err := deleteIDs("", tt.args)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || ExitCode(err) != 2 {
					t.Errorf("got (%v, %v), want a usage error containing %q", got, err, tt.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got (%v, %v), want (%v, nil)", got, err, tt.want)
			}
		})
	}
	if _, err := deleteIDs("x.yaml", []string{"a"}); err == nil || ExitCode(err) != 2 {
		t.Errorf("-f with arguments: got %v, want a usage error", err)
	}
}

// weft register adds an endpoint and keeps what the resource had,
// metadata.labels included.
func TestRegisterKeepsMetadataLabels(t *testing.T) {
	cp := startControl(t)
	mustWeft(t, "apply", "-f", writeFile(t, "two.yaml", twoServices), "--control", cp)
	if out := mustWeft(t, "register", "legacy", "10.1.1.1:80", "--label", "dc=west", "--control", cp); !strings.Contains(out, "ExternalService/legacy configured") {
		t.Errorf("register: got %q, want configured", out)
	}
	// The same endpoint spelt another way replaces, not duplicates.
	mustWeft(t, "register", "legacy", "LEGACY.example:443", "--control", cp)
	out := mustWeft(t, "get", "externalservices", "legacy", "-o", "json", "--control", cp)
	rs, err := config.Parse([]byte(out))
	if err != nil {
		t.Fatalf("Parse of get -o json: %v\n%s", err, out)
	}
	if got, want := rs[0].Metadata.Labels, map[string]string{"team": "billing", "example.com/tier": "1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("metadata.labels after register: got %v, want %v", got, want)
	}
	s, _ := config.DecodeExternalService(&rs[0])
	var addrs []string
	for _, e := range s.Endpoints {
		addrs = append(addrs, e.Address)
	}
	if want := []string{"127.0.0.1:1", "LEGACY.example:443", "10.1.1.1:80"}; !reflect.DeepEqual(addrs, want) {
		t.Errorf("endpoints after register: got %v, want %v", addrs, want)
	}
	if _, err := weftOut(t, "register", "legacy", "10.1.1.2:80", "--label", "bad key=x", "--control", cp); err == nil ||
		!strings.Contains(err.Error(), `spec.endpoints[3].labels: key "bad key"`) {
		t.Errorf("register with a bad label: got %v, want an error naming spec.endpoints[3].labels", err)
	}
}
