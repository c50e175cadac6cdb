package authz

import (
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/config"
)

// A TCP connection is decided by its source alone: deny still wins,
// then ALLOW rules, then the default; a rule with fields only HTTP has
// (to, when) reads as Istio reads it on TCP: an ALLOW rule never
// matches, a DENY rule matches by its from alone.
func TestDecideConn(t *testing.T) {
	tests := []struct {
		name     string
		policies []string // name: spec
		source   string
		allow    bool
		rule     string
		text     string // a part of the decision's words ("": not checked)
	}{
		{"no policy: allowed", nil, "web", true, "default allow", ""},
		{"ALLOW by source", []string{"echo: {service: echo, rules: [{from: [{service: web}]}]}"},
			"web", true, "AuthorizationPolicy/echo rule 0", "allowed by AuthorizationPolicy/echo rule 0"},
		{"ALLOW by source, another caller", []string{"echo: {service: echo, rules: [{from: [{service: web}]}]}"},
			"ratings", false, "no ALLOW rule", "no rule of AuthorizationPolicy/echo (ALLOW) matches"},
		{"ALLOW by source, a plain connection", []string{"echo: {service: echo, rules: [{from: [{service: web}]}]}"},
			"", false, "no ALLOW rule", ""},
		{"ALLOW of any mesh service", []string{`echo: {service: echo, rules: [{from: [{service: "*"}]}]}`},
			"ratings", true, "AuthorizationPolicy/echo rule 0", ""},
		{"ALLOW of any mesh service is not a plain connection", []string{`echo: {service: echo, rules: [{from: [{service: "*"}]}]}`},
			"", false, "no ALLOW rule", ""},
		{"ALLOW of unknown callers admits a plain connection", []string{"echo: {service: echo, rules: [{from: [{service: unknown}]}]}"},
			"unknown", true, "AuthorizationPolicy/echo rule 0", ""},
		{"ALLOW with paths never matches", []string{`echo: {service: echo, rules: [{from: [{service: web}], to: [{paths: ["*"]}]}]}`},
			"web", false, "no ALLOW rule", "a rule with to or when never matches a TCP connection"},
		{"ALLOW with methods never matches", []string{"echo: {service: echo, rules: [{to: [{methods: [GET]}]}]}"},
			"web", false, "no ALLOW rule", "never matches a TCP connection"},
		{"ALLOW with when never matches", []string{`echo: {service: echo, rules: [{from: [{service: web}], when: [{header: x-user, values: ["*"]}]}]}`},
			"web", false, "no ALLOW rule", ""},
		{"ALLOW with an empty to entry has no HTTP-only field", []string{"echo: {service: echo, rules: [{from: [{service: web}], to: [{}]}]}"},
			"web", true, "AuthorizationPolicy/echo rule 0", ""},
		{"the ALLOW rule without HTTP-only fields decides", []string{
			`echo: {service: echo, rules: [{from: [{service: web}], to: [{paths: [/items]}]}, {from: [{service: web}]}]}`},
			"web", true, "AuthorizationPolicy/echo rule 1", ""},
		{"DENY by source", []string{"echo-deny: {service: echo, action: DENY, rules: [{from: [{service: ratings}]}]}"},
			"ratings", false, "AuthorizationPolicy/echo-deny rule 0", "denied by AuthorizationPolicy/echo-deny rule 0"},
		{"DENY by source, another caller: default", []string{"echo-deny: {service: echo, action: DENY, rules: [{from: [{service: ratings}]}]}"},
			"web", true, "default allow", ""},
		{"DENY with paths matches by its from alone", []string{
			`echo-deny: {service: echo, action: DENY, rules: [{from: [{service: ratings}], to: [{methods: [POST], paths: ["/admin/*"]}]}]}`},
			"ratings", false, "AuthorizationPolicy/echo-deny rule 0", "the rule's to and when are left out, it matches by from alone"},
		{"DENY with paths leaves other callers alone", []string{
			`echo-deny: {service: echo, action: DENY, rules: [{from: [{service: ratings}], to: [{paths: ["/admin/*"]}]}]}`},
			"web", true, "default allow", ""},
		{"DENY with only HTTP-only fields denies every connection", []string{"echo-deny: {service: echo, action: DENY, rules: [{to: [{methods: [GET]}]}]}"},
			"web", false, "AuthorizationPolicy/echo-deny rule 0", ""},
		{"DENY with when denies every connection", []string{"echo-deny: {service: echo, action: DENY, rules: [{when: [{header: x-user, values: [beta]}]}]}"},
			"", false, "AuthorizationPolicy/echo-deny rule 0", ""},
		{"deny wins over allow", []string{
			"echo: {service: echo, rules: [{from: [{service: ratings}]}]}",
			`echo-deny: {service: echo, action: DENY, rules: [{from: [{service: ratings}], to: [{paths: ["/admin/*"]}]}]}`},
			"ratings", false, "AuthorizationPolicy/echo-deny rule 0", ""},
		{"deny of HTTP-only fields wins over allow", []string{
			"echo: {service: echo, rules: [{from: [{service: web}]}]}",
			"echo-deny: {service: echo, action: DENY, rules: [{to: [{methods: [DELETE]}]}]}"},
			"web", false, "AuthorizationPolicy/echo-deny rule 0", ""},
		{"DENY of unknown callers", []string{"echo-deny: {service: echo, action: DENY, rules: [{from: [{service: unknown}]}]}"},
			"", false, "AuthorizationPolicy/echo-deny rule 0", ""},
		{"default deny", []string{"mesh: {default: deny}"}, "web", false, "default deny", ""},
		{"default deny, an ALLOW rule admits", []string{"mesh: {default: deny}", "echo: {service: echo, rules: [{from: [{service: web}]}]}"},
			"web", true, "AuthorizationPolicy/echo rule 0", ""},
		{"default deny, only ALLOW rules with paths", []string{"mesh: {default: deny}", `echo: {service: echo, rules: [{to: [{paths: ["*"]}]}]}`},
			"web", false, "no ALLOW rule", ""},
		{"a mesh-wide DENY on a path denies every connection", []string{`mesh: {action: DENY, rules: [{to: [{paths: ["/debug/*"]}]}]}`},
			"web", false, "AuthorizationPolicy/mesh rule 0", ""},
		{"a policy of another service does not apply", []string{"other: {service: other, action: DENY, rules: [{}]}"},
			"web", true, "default allow", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ps []config.Authorization
			for _, p := range tt.policies {
				name, spec, _ := strings.Cut(p, ": ")
				ps = append(ps, policy(t, name, "  "+spec+"\n"))
			}
			d := compile(t, "echo", ps...).DecideConn(tt.source)
			if d.Allow != tt.allow || d.Rule != tt.rule {
				t.Errorf("got allow=%v by %q (%s), want allow=%v by %q", d.Allow, d.Rule, d.Text, tt.allow, tt.rule)
			}
			verb := "denied"
			if tt.allow {
				verb = "allowed"
			}
			if !strings.HasPrefix(d.Text, verb) || !strings.Contains(d.Text, tt.text) {
				t.Errorf("text: got %q, want it to begin with %q and say %q", d.Text, verb, tt.text)
			}
		})
	}
}

// The same policies decide a request and a connection apart: the DENY
// rule on a path leaves web's other requests alone, and denies all of
// web's connections.
func TestDecideConnAndRequestDiffer(t *testing.T) {
	m := compile(t, "echo", policy(t, "echo-deny", `  {service: echo, action: DENY, rules: [{from: [{service: web}], to: [{paths: ["/admin/*"]}]}]}`+"\n"))
	if d := m.Decide("web", get("/items")); !d.Allow {
		t.Errorf("web GET /items: got %+v, want allowed", d)
	}
	if d := m.Decide("web", get("/admin/x")); d.Allow {
		t.Errorf("web GET /admin/x: got %+v, want denied", d)
	}
	if d := m.DecideConn("web"); d.Allow {
		t.Errorf("a TCP connection from web: got %+v, want denied", d)
	}
	var nilMatcher *Matcher
	if d := nilMatcher.DecideConn(""); !d.Allow || d.Rule != "default allow" {
		t.Errorf("nil matcher: got %+v, want default allow", d)
	}
}

func TestDecideConnAllocatesNothing(t *testing.T) {
	m := compile(t, "echo",
		policy(t, "echo", "  service: echo\n  rules:\n  - from: [{service: web}]\n    to: [{paths: [\"/x\"]}]\n  - from: [{service: web}]\n"),
		policy(t, "echo-deny", "  service: echo\n  action: DENY\n  rules: [{from: [{service: ratings}], when: [{header: x-user, values: [beta]}]}]\n"))
	var sink Decision
	if n := testing.AllocsPerRun(1000, func() { sink = m.DecideConn("web") }); n != 0 {
		t.Errorf("DecideConn: got %v allocations per connection, want 0", n)
	}
	if !sink.Allow || sink.Rule != "AuthorizationPolicy/echo rule 1" {
		t.Errorf("got %+v, want allowed by AuthorizationPolicy/echo rule 1", sink)
	}
}
