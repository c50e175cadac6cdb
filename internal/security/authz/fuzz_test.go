package authz

import (
	"bytes"
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/config"
)

// FuzzMatch builds policies and a request from its input and checks
// what must hold whatever they are: Decide does not panic and decides
// the same twice; a DENY rule that matches the request denies it
// whatever else applies; an ALLOW rule added never overturns a DENY
// rule's denial; and taking the DENY policies away never denies a
// request that was allowed. Of a TCP connection from the same source
// (DecideConn): decided the same twice; a DENY rule naming the source
// denies it whatever its to; an ALLOW rule with to or when never admits
// it; and a connection allowed means every request from its source is.
func FuzzMatch(f *testing.F) {
	f.Add("web", "GET", "/items/42?x=1", "beta", "web", "/items/*", "beta", uint8(0))
	f.Add("", "POST", "/admin", "", "unknown", "/admin", "*", uint8(1))
	f.Add("ratings", "GET", "/a/../admin", "x", "*", "/admin/*", "x*", uint8(2))
	f.Add("web", "HEAD", "/", "", "web", "*", "", uint8(3))
	f.Add("a", "GET", "/%61", "v", "a", "/a", "v", uint8(7))
	f.Fuzz(func(t *testing.T, source, method, path, header, ruleSource, rulePath, ruleValue string, shape uint8) {
		policies := fuzzPolicies(ruleSource, rulePath, ruleValue, shape)
		m, err := Compile("svc", policies)
		if err != nil {
			return // (policies no validation would pass)
		}
		r := request(method, path, "x-user", header)
		if header == "" {
			r = request(method, path)
		}
		d := m.Decide(source, r)
		if again := m.Decide(source, r); again != d {
			t.Fatalf("decided %+v, then %+v", d, again)
		}
		if d.Text == "" || d.Rule == "" {
			t.Fatalf("a decision that names nothing: %+v", d)
		}
		c := m.DecideConn(source)
		if again := m.DecideConn(source); again != c || c.Text == "" || c.Rule == "" {
			t.Fatalf("a connection: decided %+v, then %+v", c, again)
		}
		httpRule := shape&16 == 0 && rulePath != "" || shape&32 == 0 && ruleValue != "" // (as fuzzPolicies makes it)
		if c.Allow && c.Rule == "AuthorizationPolicy/allow rule 0" && httpRule {
			t.Fatalf("a connection allowed by an ALLOW rule with to or when: %+v", c)
		}
		if c.Allow && !d.Allow && d.Rule != notNormal.Rule {
			t.Fatalf("a connection from %q allowed by %q, a request from it denied by %q", source, c.Rule, d.Rule)
		}

		// A DENY rule that matches this very request denies it.
		exact := config.AuthorizationRule{}
		if source == "" {
			exact.From = []config.AuthorizationSource{{Service: config.SourceUnknown}}
		} else {
			exact.From = []config.AuthorizationSource{{Service: source}}
		}
		if p, _, _ := strings.Cut(path, "?"); p != "" && !strings.Contains(p, "*") {
			exact.To = []config.AuthorizationOperation{{Methods: []string{method}, Paths: []string{p}}}
		}
		denyIt := config.Authorization{Name: "zz-deny", Service: "svc", Action: config.AuthzDeny, Rules: []config.AuthorizationRule{exact}}
		md, err := Compile("svc", append(clone(policies), denyIt))
		if err != nil {
			t.Fatalf("Compile with a DENY rule added: %v", err)
		}
		if dd := md.Decide(source, r); dd.Allow {
			t.Fatalf("a DENY rule matching the request is in force, got allowed by %q", dd.Rule)
		}
		if dc := md.DecideConn(source); dc.Allow {
			t.Fatalf("a DENY rule naming the source %q is in force, got its connection allowed by %q", source, dc.Rule)
		}

		// An ALLOW rule for everything does not overturn a DENY rule.
		if !d.Allow && strings.HasPrefix(d.Rule, "AuthorizationPolicy/") {
			allowAll := config.Authorization{Name: "allow-all", Service: "svc", Action: config.AuthzAllow, Rules: []config.AuthorizationRule{{}}}
			ma, err := Compile("svc", append(clone(policies), allowAll))
			if err != nil {
				t.Fatalf("Compile with an ALLOW rule added: %v", err)
			}
			if da := ma.Decide(source, r); da.Allow || da.Rule != d.Rule {
				t.Fatalf("denied by %q; with an ALLOW rule for everything added, got %+v", d.Rule, da)
			}
		}

		// Without the DENY policies, what was allowed stays allowed.
		if d.Allow {
			var allows []config.Authorization
			for _, p := range policies {
				if p.Action != config.AuthzDeny {
					allows = append(allows, p)
				}
			}
			mw, err := Compile("svc", allows)
			if err != nil {
				t.Fatalf("Compile without DENY policies: %v", err)
			}
			if dw := mw.Decide(source, r); !dw.Allow {
				t.Fatalf("allowed by %q; without the DENY policies, denied by %q", d.Rule, dw.Rule)
			}
		}
	})
}

// fuzzPolicies makes policies of shape's bits: a DENY and an ALLOW
// policy for svc, a mesh default of deny, and which conditions the
// rules carry.
func fuzzPolicies(src, path, value string, shape uint8) []config.Authorization {
	rule := config.AuthorizationRule{}
	if shape&8 == 0 && src != "" {
		rule.From = []config.AuthorizationSource{{Service: src}}
	}
	if shape&16 == 0 && path != "" {
		rule.To = []config.AuthorizationOperation{{Paths: []string{path}}}
	}
	if shape&32 == 0 && value != "" {
		rule.When = []config.AuthorizationCondition{{Header: "x-user", Values: []string{value}}}
	}
	var out []config.Authorization
	if shape&1 != 0 {
		out = append(out, config.Authorization{Name: "deny", Service: "svc", Action: config.AuthzDeny, Rules: []config.AuthorizationRule{rule}})
	}
	if shape&2 != 0 {
		out = append(out, config.Authorization{Name: "allow", Service: "svc", Action: config.AuthzAllow, Rules: []config.AuthorizationRule{rule}})
	}
	if shape&4 != 0 {
		out = append(out, config.Authorization{Name: config.MeshPolicy, Action: config.AuthzAllow, Default: config.DefaultDeny})
	}
	if shape&64 != 0 {
		out = append(out, config.Authorization{Name: "other", Service: "other", Action: config.AuthzDeny, Rules: []config.AuthorizationRule{{}}})
	}
	return out
}

func clone(ps []config.Authorization) []config.Authorization {
	return append([]config.Authorization(nil), ps...)
}

// FuzzCompile feeds any input to the config side: what config.Parse
// accepts as an AuthorizationPolicy compiles, its matcher compiles,
// and deciding on a request neither panics nor changes its mind.
func FuzzCompile(f *testing.F) {
	const head = "apiVersion: weftmesh.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: catalog}\nspec:\n"
	f.Add([]byte(head + "  service: catalog\n  action: DENY\n  rules:\n  - from: [{service: web}, {service: \"*\"}]\n    to: [{methods: [GET], paths: [\"/items\", \"/items/*\"]}]\n    when: [{header: x-user, values: [beta]}]\n"))
	f.Add([]byte(head + "  service: catalog\n  rules: [{}]\n"))
	f.Add([]byte(head + "  service: catalog\n  action: allow\n  rules: [{from: [{service: unknown}]}, {to: [{paths: [\"*\"]}]}]\n"))
	f.Add([]byte(strings.Replace(head, "name: catalog", "name: mesh", 1) + "  default: deny\n  action: DENY\n  rules: [{to: [{paths: [/admin/*]}]}]\n"))
	f.Add([]byte(`{"apiVersion":"weftmesh.io/v1alpha1","kind":"AuthorizationPolicy","metadata":{"name":"x"},"spec":{"service":"catalog","rules":[{"when":[{"header":"a","values":["*"]}]}]}}`))
	f.Add([]byte(head + "  service: catalog\n  rules: [{to: [{paths: [\"/a*b\"]}]}]\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		rs, err := config.Parse(in)
		if err != nil {
			return
		}
		var policies []config.Authorization
		for i := range rs {
			if rs[i].Kind != "AuthorizationPolicy" {
				continue
			}
			a, err := config.CompileAuthorizationPolicy(&rs[i])
			if err != nil {
				t.Fatalf("%s passed validation, then: %v", rs[i].Ref(), err)
			}
			policies = append(policies, a)
		}
		for _, svc := range []string{"catalog", "svc"} {
			m, err := Compile(svc, policies)
			if err != nil {
				t.Fatalf("valid policies, then Compile(%s): %v", svc, err)
			}
			for _, r := range []*req{get("/items/1", "x-user", "beta"), request("POST", "/"), get(string(bytes.ToLower(in[:min(len(in), 16)])))} {
				for _, src := range []string{"", "web"} {
					if d, again := m.Decide(src, r), m.Decide(src, r); d != again || d.Text == "" {
						t.Fatalf("decided %+v, then %+v", d, again)
					}
				}
			}
		}
	})
}
