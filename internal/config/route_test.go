package config

import (
	"errors"
	"strings"
	"testing"
)

const routeHead = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: catalog, namespace: gateway-conformance-mesh}
spec:
  parentRefs: [{group: "", kind: Service, name: catalog, port: 80}]
`

// A GAMMA manifest as written for Kubernetes applies as it is: metadata
// namespace, parentRefs of kind Service with a port, backendRefs with
// ports and weights.
func TestRoutesAcceptGAMMAManifests(t *testing.T) {
	in := routeHead + `  rules:
  - matches:
    - path: {type: PathPrefix, value: /v2}
      headers: [{name: version, value: two}]
      queryParams: [{name: canary, type: RegularExpression, value: "y(es)?"}]
      method: GET
    backendRefs:
    - {name: echo-v2, port: 80, weight: 90}
    - {group: weftmesh.io, kind: ServiceSubset, name: echo-canary, weight: 10}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: grpc-echo}
spec:
  parentRefs: [{group: "", kind: Service, name: grpc-echo}]
  rules:
  - matches: [{method: {service: grpc.Echo, method: Echo}}, {method: {type: RegularExpression, service: "grpc\\..*"}}]
    backendRefs: [{name: grpc-echo-v2, port: 7070}]
`
	rs, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	parents, rules, err := CompileRoute(&rs[0])
	if err != nil || len(parents) != 1 || parents[0] != "catalog" || len(rules) != 1 {
		t.Fatalf("got %v %+v %v, want catalog's one rule", parents, rules, err)
	}
	r := rules[0]
	if r.PathType != PathPrefix || r.Path != "/v2" || r.Method != "GET" || len(r.Headers) != 1 || !r.Query[0].Regex ||
		len(r.Backends) != 2 || r.Backends[0] != (RouteBackend{Service: "echo-v2", Weight: 90}) || r.Backends[1] != (RouteBackend{Subset: "echo-canary", Weight: 10}) {
		t.Errorf("compiled %+v", r)
	}
	_, grules, err := CompileRoute(&rs[1])
	if err != nil || len(grules) != 2 || grules[0].Path != "/grpc.Echo/Echo" || grules[0].PathType != PathExact ||
		grules[1].PathType != PathRegex || !grules[0].GRPC {
		t.Errorf("GRPCRoute compiled %+v %v", grules, err)
	}
}

// Each mistake gets the field path, a message that says what is wrong,
// and the line.
func TestRouteErrorsNameTheField(t *testing.T) {
	for _, c := range []struct {
		name, in, field, msg string
		line                 int
	}{
		{"a Gateway parent", "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  parentRefs: [{name: gw}]\n",
			"spec.parentRefs[0].kind", "is Gateway, the default; a mesh route's parent is a service", 5},
		{"no parent", "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  rules: []\n",
			"spec.parentRefs", "needs at least one parent", 0},
		{"the wrong apiVersion", "apiVersion: weftmesh.io/v1alpha1\nkind: HTTPRoute\nmetadata: {name: r}\nspec: {}\n",
			"apiVersion", `want "gateway.networking.k8s.io/v1" for kind HTTPRoute`, 1},
		{"bad regex", routeHead + "  rules:\n  - matches: [{path: {type: RegularExpression, value: \"/a(\"}}]\n",
			"spec.rules[0].matches[0].path.value", `"/a(" is not a regular expression (RE2): missing closing )`, 7},
		{"weight as a string", routeHead + "  rules:\n  - backendRefs: [{name: a, weight: ten}]\n",
			"spec.rules[0].backendRefs[0].weight", "a whole number", 7},
		{"negative weight", routeHead + "  rules:\n  - backendRefs: [{name: a, weight: -1}]\n",
			"spec.rules[0].backendRefs[0].weight", "-1 must be between 0 and 1000000", 7},
		{"unknown field", routeHead + "  rules:\n  - matchs: []\n",
			"spec.rules[0].matchs", `unknown field "matchs"`, 7},
		{"a filter", routeHead + "  rules:\n  - filters: [{type: CORS, cors: {allowOrigins: [\"https://a.example\"]}}]\n",
			"spec.rules[0].filters[0]", "filters of type CORS (RequestHeaderModifier, ResponseHeaderModifier, RequestMirror, URLRewrite, RequestRedirect and ExtensionRef to a Fault are) are not followed by this version of Weft yet", 7},
		{"a redirect with backends", routeHead + "  rules:\n  - filters: [{type: RequestRedirect, requestRedirect: {hostname: example.com}}]\n    backendRefs: [{name: a}]\n",
			"spec.rules[0].backendRefs", "a rule with a RequestRedirect answers itself: it takes no backendRefs", 0},
		{"a rewrite and a redirect", routeHead + "  rules:\n  - filters: [{type: URLRewrite, urlRewrite: {hostname: a}}, {type: RequestRedirect, requestRedirect: {hostname: b}}]\n",
			"spec.rules[0].filters[1]", "a rule takes one URLRewrite or RequestRedirect filter", 7},
		{"a redirect status", routeHead + "  rules:\n  - filters: [{type: RequestRedirect, requestRedirect: {statusCode: 305}}]\n",
			"spec.rules[0].filters[0].requestRedirect.statusCode", "305: want 301, 302, 303, 307 or 308", 7},
		{"a prefix replaced on an exact match", routeHead + "  rules:\n  - matches: [{path: {type: Exact, value: /a}}]\n    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}}}]\n",
			"spec.rules[0].matches[0].path.type", "is Exact, but the rule's ReplacePrefixMatch needs PathPrefix", 0},
		{"a full path without a value", routeHead + "  rules:\n  - filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath}}}]\n",
			"spec.rules[0].filters[0].urlRewrite.path.replaceFullPath", "is required with type ReplaceFullPath", 7},
		{"a rewrite to a path with a query", routeHead + "  rules:\n  - filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: \"/a?b=1\"}}}]\n",
			"spec.rules[0].filters[0].urlRewrite.path.replaceFullPath", "must be a path only", 7},
		{"a rewrite to a path with a tab", routeHead + "  rules:\n  - filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: \"/a\\tb\"}}}]\n",
			"spec.rules[0].filters[0].urlRewrite.path.replaceFullPath", `"\t" is not one`, 7},
		{"a rewrite host with a port", routeHead + "  rules:\n  - filters: [{type: URLRewrite, urlRewrite: {hostname: \"a:80\"}}]\n",
			"spec.rules[0].filters[0].urlRewrite.hostname", `"a:80" is not a hostname`, 7},
		{"a mirror with percent and fraction", routeHead + "  rules:\n  - filters: [{type: RequestMirror, requestMirror: {backendRef: {name: shadow}, percent: 5, fraction: {numerator: 1}}}]\n",
			"spec.rules[0].filters[0].requestMirror", "percent and fraction are given both", 7},
		{"a mirror fraction above 1", routeHead + "  rules:\n  - filters: [{type: RequestMirror, requestMirror: {backendRef: {name: shadow}, fraction: {numerator: 3, denominator: 2}}}]\n",
			"spec.rules[0].filters[0].requestMirror.fraction", "3/2: want a numerator from 0 to a denominator of at least 1", 7},
		{"a mirror percent above 100", routeHead + "  rules:\n  - filters: [{type: RequestMirror, requestMirror: {backendRef: {name: shadow}, percent: 101}}]\n",
			"spec.rules[0].filters[0].requestMirror.percent", "101 must be between 0 and 100", 7},
		{"a mirror without its filter", routeHead + "  rules:\n  - filters: [{type: RequestMirror}]\n",
			"spec.rules[0].filters[0].requestMirror", "is required with type RequestMirror", 7},
		{"a mirror of another kind", routeHead + "  rules:\n  - filters: [{type: RequestMirror, requestMirror: {backendRef: {kind: Pod, name: a}}}]\n",
			"spec.rules[0].filters[0].requestMirror.backendRef.kind", "Pod of group \"\" is not a backend Weft knows", 7},
		{"a modifier of Host", routeHead + "  rules:\n  - filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: Host, value: b}]}}]\n",
			"spec.rules[0].filters[0].requestHeaderModifier.set[0].name", `"Host" is not modified by routes`, 7},
		{"a header set and removed", routeHead + "  rules:\n  - filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {set: [{name: X-A, value: b}], remove: [x-a]}}]\n",
			"spec.rules[0].filters[0].responseHeaderModifier.remove[0]", `"x-a" is named already at spec.rules[0].filters[0].responseHeaderModifier.set[0].name`, 7},
		{"a header value that ends its field", routeHead + "  rules:\n  - filters: [{type: RequestHeaderModifier, requestHeaderModifier: {add: [{name: X-A, value: \"b\\r\\nX-Evil: 1\"}]}}]\n",
			"spec.rules[0].filters[0].requestHeaderModifier.add[0].value", `holds a CR, LF or NUL`, 7},
		{"an extension of another kind", routeHead + "  rules:\n  - filters: [{type: ExtensionRef, extensionRef: {group: example.com, kind: Magic, name: m}}]\n",
			"spec.rules[0].filters[0].extensionRef", `Magic of group "example.com" is not an extension Weft knows`, 7},
		{"a timeout that is no duration", routeHead + "  rules:\n  - timeouts: {request: 1.5s}\n",
			"spec.rules[0].timeouts.request", `"1.5s" is not a Gateway API duration`, 7},
		{"a backend timeout above the request's", routeHead + "  rules:\n  - timeouts: {request: 1s, backendRequest: 2s}\n",
			"spec.rules[0].timeouts.backendRequest", "2s must not be above request (1s)", 7},
		{"a retry on 404", routeHead + "  rules:\n  - retry: {codes: [404]}\n",
			"spec.rules[0].retry.codes[0]", "404: Weft retries 5xx statuses only", 7},
		{"a fault with nothing", "apiVersion: weftmesh.io/v1alpha1\nkind: Fault\nmetadata: {name: f}\nspec: {delay: null}\n",
			"spec", "needs a delay, an abort or both", 0},
		{"a fault delay that is no duration", "apiVersion: weftmesh.io/v1alpha1\nkind: Fault\nmetadata: {name: f}\nspec: {delay: {fixedDelay: soon, percent: 10}}\n",
			"spec.delay.fixedDelay", `"soon" must be a duration above 0`, 4},
		{"a fault percent above 100", "apiVersion: weftmesh.io/v1alpha1\nkind: Fault\nmetadata: {name: f}\nspec: {abort: {httpStatus: 503, percent: 150}}\n",
			"spec.abort.percent", "150 must be between 0 and 100", 4},
		{"an abort with no status", "apiVersion: weftmesh.io/v1alpha1\nkind: Fault\nmetadata: {name: f}\nspec: {abort: {percent: 5}}\n",
			"spec.abort", "needs httpStatus, grpcStatus or both", 4},
		{"a backend of another kind", routeHead + "  rules:\n  - backendRefs: [{kind: Pod, name: a}]\n",
			"spec.rules[0].backendRefs[0].kind", "Pod of group \"\" is not a backend Weft knows", 7},
		{"a path without /", routeHead + "  rules:\n  - matches: [{path: {value: api}}]\n",
			"spec.rules[0].matches[0].path.value", `"api" must begin with /`, 7},
		{"a method that is none", routeHead + "  rules:\n  - matches: [{method: FETCH}]\n",
			"spec.rules[0].matches[0].method", `"FETCH" is not one of GET`, 7},
		{"a header twice", routeHead + "  rules:\n  - matches: [{headers: [{name: X-A, value: a}, {name: x-a, value: b}]}]\n",
			"spec.rules[0].matches[0].headers[1].name", "matched already", 7},
		{"a gRPC method with /", "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: g}\nspec:\n  parentRefs: [{group: \"\", kind: Service, name: s}]\n  rules:\n  - matches: [{method: {service: a/b}}]\n",
			"spec.rules[0].matches[0].method.service", "must not contain /", 7},
		{"a subset without labels", "apiVersion: weftmesh.io/v1alpha1\nkind: ServiceSubset\nmetadata: {name: v2}\nspec: {service: catalog}\n",
			"spec.labels", "needs at least one label", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.in))
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("got %v, want a field error", err)
			}
			if fe.Field != c.field || !strings.Contains(fe.Msg, c.msg) {
				t.Errorf("got %s: %q, want %s: %q", fe.Field, fe.Msg, c.field, c.msg)
			}
			if c.line != 0 && fe.Line != c.line {
				t.Errorf("line %d, want %d (%v)", fe.Line, c.line, err)
			}
		})
	}
}

// A RequestMirror filter compiles to its backend and share: percent,
// fraction (denominator 100 by default), or every request.
func TestRouteMirrors(t *testing.T) {
	in := routeHead + `  rules:
  - filters:
    - {type: RequestMirror, requestMirror: {backendRef: {name: shadow, port: 80}, percent: 25}}
    - {type: RequestMirror, requestMirror: {backendRef: {group: weftmesh.io, kind: ServiceSubset, name: v3}, fraction: {numerator: 1, denominator: 8}}}
    - {type: RequestMirror, requestMirror: {backendRef: {name: audit}, fraction: {numerator: 7}}}
    - {type: RequestMirror, requestMirror: {backendRef: {name: all}}}
`
	rs, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	_, rules, err := CompileRoute(&rs[0])
	if err != nil || len(rules) != 1 {
		t.Fatalf("got %+v %v, want one rule", rules, err)
	}
	want := []RouteMirror{{Backend: RouteBackend{Service: "shadow", Weight: 1}, Percent: 25}, {Backend: RouteBackend{Subset: "v3", Weight: 1}, Percent: 12.5},
		{Backend: RouteBackend{Service: "audit", Weight: 1}, Percent: 7}, {Backend: RouteBackend{Service: "all", Weight: 1}, Percent: 100}}
	got := rules[0].Mirrors
	if len(got) != len(want) {
		t.Fatalf("mirrors %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("mirror %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

// ReplacePrefixMatch follows Gateway API's table.
func TestPathModifier(t *testing.T) {
	for _, c := range [][4]string{
		{"/foo/bar", "/foo", "/xyz", "/xyz/bar"}, {"/foo/bar", "/foo", "/xyz/", "/xyz/bar"},
		{"/foo/bar", "/foo/", "/xyz", "/xyz/bar"}, {"/foo/bar", "/foo/", "/xyz/", "/xyz/bar"},
		{"/foo", "/foo", "/xyz", "/xyz"}, {"/foo/", "/foo", "/xyz", "/xyz/"},
		{"/foo/bar", "/foo", "", "/bar"}, {"/foo/", "/foo", "", "/"}, {"/foo", "/foo", "", "/"},
		{"/foo/", "/foo", "/", "/"}, {"/foo", "/foo", "/", "/"}, {"/a/b", "/", "/one", "/one/a/b"},
	} {
		m := PathModifier{Type: ReplacePrefixMatch, Value: c[2]}
		if got := m.Apply(c[0], c[1]); got != c[3] {
			t.Errorf("%s with prefix %s replaced by %q: got %s, want %s", c[0], c[1], c[2], got, c[3])
		}
	}
	if got := (&PathModifier{Type: ReplaceFullPath, Value: "/x"}).Apply("/a/b", "/a"); got != "/x" {
		t.Errorf("ReplaceFullPath: got %s", got)
	}
}
