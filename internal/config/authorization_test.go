package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func authzDoc(name, spec string) string {
	return "apiVersion: weftmesh.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata:\n  name: " + name + "\nspec:\n" + spec
}

func TestAuthorizationPolicyCompiles(t *testing.T) {
	rs, err := Parse([]byte(authzDoc("catalog", `  service: catalog
  action: deny
  rules:
  - from: [{service: web}, {service: "*"}, {service: unknown}]
    to: [{methods: [GET], paths: ["/items", "/items/*", "*"]}]
    when: [{header: x-user, values: [beta, "test-*", "*"]}]
`)))
	if err != nil {
		t.Fatalf("Parse: got %v, want nil", err)
	}
	got, err := CompileAuthorizationPolicy(&rs[0])
	if err != nil {
		t.Fatalf("CompileAuthorizationPolicy: %v", err)
	}
	want := Authorization{Name: "catalog", Service: "catalog", Action: AuthzDeny, Rules: []AuthorizationRule{{
		From: []AuthorizationSource{{"web"}, {"*"}, {"unknown"}},
		To:   []AuthorizationOperation{{Methods: []string{"GET"}, Paths: []string{"/items", "/items/*", "*"}}},
		When: []AuthorizationCondition{{Header: "x-user", Values: []string{"beta", "test-*", "*"}}},
	}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}

	rs, err = Parse([]byte(authzDoc("mesh", "  default: DENY\n")))
	if err != nil {
		t.Fatalf("Parse mesh: got %v, want nil", err)
	}
	if got, err := CompileAuthorizationPolicy(&rs[0]); err != nil || got.Default != DefaultDeny || got.Action != AuthzAllow || got.Service != "" {
		t.Errorf("mesh policy: got %+v, %v; want default deny, action ALLOW, no service", got, err)
	}
}

func TestAuthorizationPolicyErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		name, spec, field, msg string
		line                   int
	}{
		{"catalog", "  action: ALLOW\n", "spec.service", "is required", 5},
		{"catalog", "  service: Catalog\n", "spec.service", "not a valid service name", 6},
		{"mesh", "  service: catalog\n", "spec.service", "applies to every service", 6},
		{"catalog", "  service: catalog\n  default: deny\n", "spec.default", `only the policy named "mesh"`, 7},
		{"mesh", "  default: block\n", "spec.default", "want allow or deny", 6},
		{"catalog", "  service: catalog\n  action: AUDIT\n", "spec.action", "want ALLOW or DENY", 7},
		{"catalog", "  service: catalog\n  rules:\n  - from: [{service: Web}]\n", "spec.rules[0].from[0].service", "not a valid service name", 8},
		{"catalog", "  service: catalog\n  rules:\n  - from: [{}]\n", "spec.rules[0].from[0].service", "is required", 8},
		{"catalog", "  service: catalog\n  rules:\n  - from: [{name: web}]\n", "spec.rules[0].from[0].name", `unknown field "name"`, 8},
		{"catalog", "  service: catalog\n  rules:\n  - {}\n  - to: [{methods: [get]}]\n", "spec.rules[1].to[0].methods[0]", "upper case", 9},
		{"catalog", "  service: catalog\n  rules:\n  - to: [{paths: [items]}]\n", "spec.rules[0].to[0].paths[0]", "beginning with /", 8},
		{"catalog", "  service: catalog\n  rules:\n  - to: [{paths: [\"/a*/b\"]}]\n", "spec.rules[0].to[0].paths[0]", "may only end a path", 8},
		{"catalog", "  service: catalog\n  rules:\n  - to: [{paths: [\"/a?b=1\"]}]\n", "spec.rules[0].to[0].paths[0]", "without the query", 8},
		{"catalog", "  service: catalog\n  rules:\n  - to: [{paths: /items}]\n", "spec.rules[0].to[0].paths", "must be a list", 8},
		{"catalog", "  service: catalog\n  rules:\n  - when: [{header: \"bad header\", values: [x]}]\n", "spec.rules[0].when[0].header", "header's name", 8},
		{"catalog", "  service: catalog\n  rules:\n  - when: [{header: x-user}]\n", "spec.rules[0].when[0].values", "at least one value", 8},
		{"catalog", "  service: catalog\n  rules:\n  - when: [{header: x-user, values: [\"*a\"]}]\n", "spec.rules[0].when[0].values[0]", "may only end a value", 8},
		{"catalog", "  service: catalog\n  rules:\n  - when: [{header: x-user, values: [1]}]\n", "spec.rules[0].when[0].values[0]", "must be a string", 8},
		{"catalog", "  service: catalog\n  rule: []\n", "spec.rule", `unknown field "rule"`, 7},
	} {
		t.Run(tc.field+" "+tc.msg, func(t *testing.T) {
			_, err := Parse([]byte(authzDoc(tc.name, tc.spec)))
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("got %v, want a FieldError", err)
			}
			if fe.Field != tc.field || !strings.Contains(fe.Msg, tc.msg) || fe.Line != tc.line || fe.Ref != "AuthorizationPolicy/"+tc.name {
				t.Errorf("got %s (field %s, line %d), want field %s, line %d, a message with %q", err, fe.Field, fe.Line, tc.field, tc.line, tc.msg)
			}
		})
	}
}

func TestAuthorizationPolicyKindAndReferences(t *testing.T) {
	for _, w := range []string{"AuthorizationPolicy", "authorizationpolicy", "authorizationpolicies", "authz", "ap"} {
		if k, ok := KindFor(w); !ok || k != "AuthorizationPolicy" {
			t.Errorf("KindFor(%q): got %q %v, want AuthorizationPolicy", w, k, ok)
		}
	}
	rs, err := Parse([]byte(authzDoc("catalog", "  service: catalog\n  rules:\n  - from: [{service: web}, {service: \"*\"}, {service: unknown}, {service: admin}]\n")))
	if err != nil {
		t.Fatal(err)
	}
	if got := References(&rs[0]).Services; strings.Join(got, ",") != "admin,catalog,web" {
		t.Errorf("References: got %v, want [admin catalog web] (not * or unknown)", got)
	}
}
