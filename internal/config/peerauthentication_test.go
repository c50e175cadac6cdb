package config

import (
	"errors"
	"strings"
	"testing"
)

func peerAuthDoc(name, spec string) string {
	return "apiVersion: weftmesh.io/v1alpha1\nkind: PeerAuthentication\nmetadata:\n  name: " + name + "\nspec:\n" + spec
}

func TestPeerAuthentication(t *testing.T) {
	var got []PeerAuth
	for _, doc := range []string{
		peerAuthDoc("mesh", "  mtls: {mode: STRICT}\n"),
		peerAuthDoc("legacy", "  service: legacy\n  mtls:\n    mode: PERMISSIVE\n"),
	} {
		rs, err := Parse([]byte(doc))
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		p, err := CompilePeerAuthentication(&rs[0])
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p)
	}
	for _, c := range []struct{ service, mode, ref string }{
		{"legacy", PeerAuthPermissive, "PeerAuthentication/legacy"}, // its own wins over the mesh's
		{"web", PeerAuthStrict, "PeerAuthentication/mesh"},
	} {
		if mode, ref := PeerAuthModeFor(c.service, got); mode != c.mode || ref != c.ref {
			t.Errorf("%s: got %s by %s, want %s by %s", c.service, mode, ref, c.mode, c.ref)
		}
	}
	if mode, ref := PeerAuthModeFor("web", got[1:]); mode != "" || ref != "" {
		t.Errorf("without a mesh policy: got %q by %q, want none (the sidecar's flag decides)", mode, ref)
	}
}

func TestPeerAuthenticationErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		name, spec, field, msg string
		line                   int
	}{
		{"web", "  mtls: {mode: STRICT}\n", "spec.service", "is required", 5},
		{"mesh", "  service: web\n  mtls: {mode: STRICT}\n", "spec.service", "sets every service's mode", 6},
		{"web", "  service: Web\n  mtls: {mode: STRICT}\n", "spec.service", "not a valid service name", 6},
		{"web", "  service: web\n", "spec.mtls.mode", "is required", 5},
		{"web", "  service: web\n  mtls: {mode: strict}\n", "spec.mtls.mode", "want STRICT or PERMISSIVE", 7},
		{"web", "  service: web\n  mtls: {mode: DISABLE}\n", "spec.mtls.mode", "DISABLE is not offered", 7},
		{"web", "  service: web\n  mode: STRICT\n", "spec.mode", `unknown field "mode"`, 7},
	} {
		t.Run(tc.field+" "+tc.msg, func(t *testing.T) {
			_, err := Parse([]byte(peerAuthDoc(tc.name, tc.spec)))
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("got %v, want a FieldError", err)
			}
			if fe.Field != tc.field || !strings.Contains(fe.Msg, tc.msg) || fe.Line != tc.line || fe.Ref != "PeerAuthentication/"+tc.name {
				t.Errorf("got %s (field %s, line %d), want field %s, line %d, a message with %q", err, fe.Field, fe.Line, tc.field, tc.line, tc.msg)
			}
		})
	}
}
