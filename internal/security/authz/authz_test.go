package authz

import (
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/config"
)

// req is a request as the matcher reads it (reading it allocates
// nothing).
type req struct {
	method, path []byte
	headers      [][2][]byte
}

func (r *req) Method() []byte { return r.method }
func (r *req) Path() []byte   { return r.path }
func (r *req) Header(name string) []byte {
	for _, h := range r.headers {
		if strings.EqualFold(string(h[0]), name) {
			return h[1]
		}
	}
	return nil
}

func request(method, path string, kv ...string) *req {
	r := &req{method: []byte(method), path: []byte(path)}
	for i := 0; i+1 < len(kv); i += 2 {
		r.headers = append(r.headers, [2][]byte{[]byte(kv[i]), []byte(kv[i+1])})
	}
	return r
}

func get(path string, kv ...string) *req { return request("GET", path, kv...) }

// policy parses one AuthorizationPolicy from YAML, as apply would.
func policy(t testing.TB, name, spec string) config.Authorization {
	t.Helper()
	in := "apiVersion: weftmesh.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: " + name + "}\nspec:\n" + spec
	rs, err := config.Parse([]byte(in))
	if err != nil {
		t.Fatalf("parse %s: %v", name, err)
	}
	a, err := config.CompileAuthorizationPolicy(&rs[0])
	if err != nil {
		t.Fatalf("compile %s: %v", name, err)
	}
	return a
}

func compile(t testing.TB, service string, ps ...config.Authorization) *Matcher {
	t.Helper()
	m, err := Compile(service, ps)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return m
}

func TestDecide(t *testing.T) {
	allowWeb := func(t *testing.T) config.Authorization {
		return policy(t, "catalog", `  service: catalog
  action: ALLOW
  rules:
  - from: [{service: web}]
    to: [{methods: [GET], paths: ["/items", "/items/*"]}]
`)
	}
	denyBeta := func(t *testing.T) config.Authorization {
		return policy(t, "catalog-deny", `  service: catalog
  action: DENY
  rules:
  - when: [{header: x-user, values: [beta, "test-*"]}]
`)
	}
	meshDeny := func(t *testing.T) config.Authorization {
		return policy(t, "mesh", "  default: deny\n")
	}
	tests := []struct {
		name     string
		policies func(t *testing.T) []config.Authorization
		source   string
		r        *req
		allow    bool
		rule     string
	}{
		{"no policy: allowed", func(t *testing.T) []config.Authorization { return nil }, "web", get("/x"), true, "default allow"},
		{"allow rule matches", func(t *testing.T) []config.Authorization { return []config.Authorization{allowWeb(t)} },
			"web", get("/items"), true, "AuthorizationPolicy/catalog rule 0"},
		{"prefix matches below", func(t *testing.T) []config.Authorization { return []config.Authorization{allowWeb(t)} },
			"web", get("/items/42?full=1"), true, "AuthorizationPolicy/catalog rule 0"},
		{"prefix is no match for a longer name", func(t *testing.T) []config.Authorization { return []config.Authorization{allowWeb(t)} },
			"web", get("/itemsx"), false, "no ALLOW rule"},
		{"other source: no ALLOW rule matches", func(t *testing.T) []config.Authorization { return []config.Authorization{allowWeb(t)} },
			"ratings", get("/items"), false, "no ALLOW rule"},
		{"unknown source", func(t *testing.T) []config.Authorization { return []config.Authorization{allowWeb(t)} },
			"", get("/items"), false, "no ALLOW rule"},
		{"method not allowed", func(t *testing.T) []config.Authorization { return []config.Authorization{allowWeb(t)} },
			"web", request("POST", "/items"), false, "no ALLOW rule"},
		{"deny wins over allow", func(t *testing.T) []config.Authorization { return []config.Authorization{allowWeb(t), denyBeta(t)} },
			"web", get("/items", "x-user", "beta"), false, "AuthorizationPolicy/catalog-deny rule 0"},
		{"deny header prefix", func(t *testing.T) []config.Authorization { return []config.Authorization{denyBeta(t)} },
			"web", get("/", "X-User", "test-7"), false, "AuthorizationPolicy/catalog-deny rule 0"},
		{"deny that does not match: default allow", func(t *testing.T) []config.Authorization { return []config.Authorization{denyBeta(t)} },
			"web", get("/", "x-user", "alpha"), true, "default allow"},
		{"deny without the header", func(t *testing.T) []config.Authorization { return []config.Authorization{denyBeta(t)} },
			"web", get("/"), true, "default allow"},
		{"default deny", func(t *testing.T) []config.Authorization { return []config.Authorization{meshDeny(t)} },
			"web", get("/"), false, "default deny"},
		{"default deny, only DENY policies", func(t *testing.T) []config.Authorization { return []config.Authorization{meshDeny(t), denyBeta(t)} },
			"web", get("/"), false, "default deny"},
		{"default deny, an ALLOW rule matches", func(t *testing.T) []config.Authorization { return []config.Authorization{meshDeny(t), allowWeb(t)} },
			"web", get("/items"), true, "AuthorizationPolicy/catalog rule 0"},
		{"a policy of another service does not apply", func(t *testing.T) []config.Authorization {
			return []config.Authorization{policy(t, "ratings", "  service: ratings\n  action: DENY\n  rules: [{}]\n")}
		}, "web", get("/"), true, "default allow"},
		{"ALLOW without rules allows nothing", func(t *testing.T) []config.Authorization {
			return []config.Authorization{policy(t, "nothing", "  service: catalog\n")}
		}, "web", get("/"), false, "no ALLOW rule"},
		{"any mesh service", func(t *testing.T) []config.Authorization {
			return []config.Authorization{policy(t, "any", "  service: catalog\n  rules: [{from: [{service: \"*\"}]}]\n")}
		}, "ratings", get("/"), true, "AuthorizationPolicy/any rule 0"},
		{"any mesh service is not an unknown caller", func(t *testing.T) []config.Authorization {
			return []config.Authorization{policy(t, "any", "  service: catalog\n  rules: [{from: [{service: \"*\"}]}]\n")}
		}, "", get("/"), false, "no ALLOW rule"},
		{"deny unknown callers", func(t *testing.T) []config.Authorization {
			return []config.Authorization{policy(t, "no-strangers", "  service: catalog\n  action: DENY\n  rules: [{from: [{service: unknown}]}]\n")}
		}, "", get("/"), false, "AuthorizationPolicy/no-strangers rule 0"},
		{"mesh-wide DENY rule", func(t *testing.T) []config.Authorization {
			return []config.Authorization{policy(t, "mesh", "  action: DENY\n  rules: [{to: [{paths: [\"/admin/*\"]}]}]\n")}
		}, "web", get("/admin/users"), false, "AuthorizationPolicy/mesh rule 0"},
		{"second rule decides", func(t *testing.T) []config.Authorization {
			return []config.Authorization{policy(t, "two", "  service: catalog\n  rules:\n  - from: [{service: a}]\n  - to: [{paths: [\"*\"], methods: [GET, HEAD]}]\n")}
		}, "web", request("HEAD", "/"), true, "AuthorizationPolicy/two rule 1"},
		{"path not in normal form", func(t *testing.T) []config.Authorization {
			return []config.Authorization{policy(t, "admin", "  service: catalog\n  action: DENY\n  rules: [{to: [{paths: [\"/admin/*\"]}]}]\n")}
		}, "web", get("/x/../admin/users"), false, "path not in normal form"},
		{"path not in normal form is fine without path rules", func(t *testing.T) []config.Authorization { return []config.Authorization{denyBeta(t)} },
			"web", get("/x/../admin"), true, "default allow"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := compile(t, "catalog", tt.policies(t)...)
			d := m.Decide(tt.source, tt.r)
			if d.Allow != tt.allow || d.Rule != tt.rule {
				t.Errorf("got allow=%v by %q (%s), want allow=%v by %q", d.Allow, d.Rule, d.Text, tt.allow, tt.rule)
			}
			verb := "denied"
			if tt.allow {
				verb = "allowed"
			}
			if !strings.HasPrefix(d.Text, verb) {
				t.Errorf("text: got %q, want it to begin with %q", d.Text, verb)
			}
		})
	}
}

func TestCompileNilWhenNothingApplies(t *testing.T) {
	m := compile(t, "catalog", policy(t, "mesh", "  default: allow\n"), policy(t, "ratings", "  service: ratings\n  rules: [{}]\n"))
	if m != nil {
		t.Errorf("got a matcher of %v, want nil (every request allowed)", m.Policies())
	}
	if d := m.Decide("", get("/")); !d.Allow {
		t.Errorf("nil matcher: got %+v, want allowed", d)
	}
}

func TestNoAllowMessageNamesThePolicies(t *testing.T) {
	m := compile(t, "catalog", policy(t, "b", "  service: catalog\n  rules: [{from: [{service: x}]}]\n"),
		policy(t, "a", "  service: catalog\n  rules: [{from: [{service: y}]}]\n"))
	d := m.Decide("web", get("/"))
	if want := "denied: no rule of AuthorizationPolicy/a, AuthorizationPolicy/b (ALLOW) matches"; d.Text != want {
		t.Errorf("got %q, want %q", d.Text, want)
	}
}

func TestNormal(t *testing.T) {
	for path, want := range map[string]bool{
		"/": true, "/items": true, "/items/42": true, "/a%20b": true, "/a%3Fb": true, "/...": true, "/.well-known/x": true,
		"": true, "//items": false, "/a//b": false, "/./a": false, "/a/.": false, "/a/..": false, "/a/../b": false,
		"/a\\b": false, "/%61dmin": false, "/a%2Fb": false, "/a%2fb": false, "/a%2e%2e/b": false, "/a%5Cb": false,
		"/a%": false, "/a%2": false, "/a%zz": false, "..": false, "./a": false,
	} {
		if got := Normal([]byte(path)); got != want {
			t.Errorf("Normal(%q): got %v, want %v", path, got, want)
		}
	}
}

func TestDecideAllocatesNothing(t *testing.T) {
	m := compile(t, "catalog",
		policy(t, "catalog", "  service: catalog\n  rules:\n  - from: [{service: web}]\n    to: [{methods: [GET], paths: [\"/items/*\"]}]\n    when: [{header: x-user, values: [\"*\"]}]\n"),
		policy(t, "catalog-deny", "  service: catalog\n  action: DENY\n  rules: [{when: [{header: x-user, values: [beta]}]}]\n"))
	r := get("/items/42?x=1", "x-user", "alpha")
	var sink Decision
	if n := testing.AllocsPerRun(1000, func() { sink = m.Decide("web", r) }); n != 0 {
		t.Errorf("Decide: got %v allocations per request, want 0", n)
	}
	if !sink.Allow {
		t.Errorf("got %+v, want allowed", sink)
	}
}
