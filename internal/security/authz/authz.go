// Package authz decides whether a service's inbound lets a request
// through, by the service's AuthorizationPolicy resources and the
// mesh-wide default:
//
//	[]config.Authorization ──Compile(service)──▶ *Matcher (immutable)
//	                                                 │
//	source service, method, path, headers ──Decide──▶ Decision: allow or
//	                                                  deny, and the rule
//	                                                  that decided
//	source service of a TCP connection ──DecideConn──▶ Decision
//
// Deny wins: any DENY rule that matches denies; else, when ALLOW
// policies apply, a request must match one of their rules; else the
// mesh-wide default decides. Decide allocates nothing.
//
// A TCP connection (DecideConn) has no method, path or header: only a
// rule's from can match it, and a rule with to or when is read as Istio
// reads HTTP-only fields on TCP, failing closed (an ALLOW rule with
// them never matches; a DENY rule matches by its from alone).
//
// The source is an argument: the caller says who is calling. Package
// plan reads it: over mutual TLS the peer's proven service (of a request
// or a TCP connection), else the service a plain caller names in
// x-weft-source (a plain TCP connection names none); where it comes
// from changes nothing here.
package authz

import (
	"fmt"
	"slices"
	"strings"

	"github.com/weftmesh/weft/internal/config"
)

// Request is what the matcher reads of a request (request.View has it).
type Request interface {
	Method() []byte
	// Path is the request target's path and query (origin form).
	Path() []byte
	// Header is the first value of the named field, or nil.
	Header(name string) []byte
}

// Decision is what Decide says of one request.
type Decision struct {
	Allow bool
	// Rule names what decided: "AuthorizationPolicy/NAME rule N",
	// "no ALLOW rule", "default allow", "default deny", or
	// "path not in normal form".
	Rule string
	// Text says it as a sentence: "denied by AuthorizationPolicy/NAME
	// rule N" (no allocation: made when compiled).
	Text string
}

// Matcher is the compiled authorization of one service's inbound;
// immutable, safe for concurrent use.
type Matcher struct {
	service  string
	deny     []rule
	allow    []rule
	hasAllow bool // an ALLOW policy applies (even one without rules)
	paths    bool // a rule matches by path
	noAllow  Decision
	// noAllowConn is noAllow for a TCP connection (DecideConn).
	noAllowConn Decision
	def         Decision
	policies    []string // the policies that apply, "AuthorizationPolicy/NAME", sorted
}

type rule struct {
	decision Decision
	sources  []source    // any of them (none: any caller)
	ops      []operation // any of them (none: any request)
	conds    []condition // all of them
	// http: the rule has fields only HTTP has (a method, a path, a
	// header condition); conn is its decision on a TCP connection.
	http bool
	conn Decision
}

type sourceKind uint8

const (
	sourceName    sourceKind = iota // the service named
	sourceAny                       // any mesh service
	sourceUnknown                   // a caller that names none
)

type source struct {
	kind sourceKind
	name string
}

type operation struct {
	methods []string  // any of them (none: any)
	paths   []pattern // any of them (none: any)
}

type condition struct {
	header string
	values []pattern // any of them
}

// pattern is exact, a prefix (written with a trailing *), or any ("*").
type pattern struct {
	s      string
	prefix bool
	any    bool
}

func newPattern(s string) pattern {
	switch {
	case s == "*":
		return pattern{any: true}
	case strings.HasSuffix(s, "*"):
		return pattern{s: s[:len(s)-1], prefix: true}
	}
	return pattern{s: s}
}

func (p *pattern) match(b []byte) bool {
	switch {
	case p.any:
		return true
	case p.prefix:
		return len(b) >= len(p.s) && string(b[:len(p.s)]) == p.s
	}
	return string(b) == p.s
}

// Default decisions.
var (
	defaultAllow = Decision{Allow: true, Rule: "default allow", Text: "allowed by the mesh-wide default (allow)"}
	defaultDeny  = Decision{Rule: "default deny", Text: "denied by the mesh-wide default (deny, AuthorizationPolicy/" + config.MeshPolicy + ")"}
	notNormal    = Decision{Rule: "path not in normal form",
		Text: `denied: the path has dot segments, "//", a backslash or a percent-encoded letter, digit, "-", ".", "_", "~", "/" or "\", and rules match paths`}
)

// Compile builds the matcher of service from every AuthorizationPolicy
// of the mesh (validated): those whose spec.service is service, and the
// rules and default of the mesh policy. It is nil when none applies and
// the default allows: every request is let through.
func Compile(service string, policies []config.Authorization) (*Matcher, error) {
	ps := make([]*config.Authorization, 0, len(policies))
	def := defaultAllow
	for i := range policies {
		p := &policies[i]
		if p.Name == config.MeshPolicy {
			if p.Default == config.DefaultDeny {
				def = defaultDeny
			}
			if len(p.Rules) > 0 { // (without rules it holds the default, nothing more)
				ps = append(ps, p)
			}
			continue
		}
		if p.Service == service {
			ps = append(ps, p)
		}
	}
	if len(ps) == 0 && def.Allow {
		return nil, nil
	}
	slices.SortFunc(ps, func(a, b *config.Authorization) int { return strings.Compare(a.Name, b.Name) })
	m := &Matcher{service: service, def: def}
	var allowRefs []string
	for _, p := range ps {
		m.policies = append(m.policies, p.Ref())
		var action string
		switch strings.ToUpper(p.Action) {
		case "", config.AuthzAllow:
			action = config.AuthzAllow
			m.hasAllow = true
			allowRefs = append(allowRefs, p.Ref())
		case config.AuthzDeny:
			action = config.AuthzDeny
		default:
			return nil, fmt.Errorf("%s: action %q: want ALLOW or DENY", p.Ref(), p.Action)
		}
		for i := range p.Rules {
			r, err := compileRule(p, i, action)
			if err != nil {
				return nil, err
			}
			for _, op := range r.ops {
				for _, pt := range op.paths {
					m.paths = m.paths || !pt.any
				}
			}
			if action == config.AuthzDeny {
				m.deny = append(m.deny, r)
			} else {
				m.allow = append(m.allow, r)
			}
		}
	}
	m.noAllow = Decision{Rule: "no ALLOW rule",
		Text: fmt.Sprintf("denied: no rule of %s (ALLOW) matches", strings.Join(allowRefs, ", "))}
	m.noAllowConn = m.noAllow
	for i := range m.allow {
		if m.allow[i].http {
			m.noAllowConn.Text += " (a rule with to or when never matches a TCP connection)"
			break
		}
	}
	return m, nil
}

func compileRule(p *config.Authorization, i int, action string) (rule, error) {
	cr := &p.Rules[i]
	ref := fmt.Sprintf("%s rule %d", p.Ref(), i)
	r := rule{decision: Decision{Allow: action == config.AuthzAllow, Rule: ref}}
	if r.decision.Allow {
		r.decision.Text = "allowed by " + ref
	} else {
		r.decision.Text = "denied by " + ref
	}
	for _, s := range cr.From {
		switch s.Service {
		case config.SourceAny:
			r.sources = append(r.sources, source{kind: sourceAny})
		case config.SourceUnknown:
			r.sources = append(r.sources, source{kind: sourceUnknown})
		case "":
			return rule{}, fmt.Errorf("%s: from: a source names no service", ref)
		default:
			r.sources = append(r.sources, source{name: s.Service})
		}
	}
	for _, o := range cr.To {
		op := operation{methods: o.Methods}
		for _, path := range o.Paths {
			if path == "" {
				return rule{}, fmt.Errorf("%s: to: an empty path", ref)
			}
			op.paths = append(op.paths, newPattern(path))
		}
		r.ops = append(r.ops, op)
	}
	for _, c := range cr.When {
		if c.Header == "" || len(c.Values) == 0 {
			return rule{}, fmt.Errorf("%s: when: a condition needs a header and values", ref)
		}
		cond := condition{header: c.Header}
		for _, v := range c.Values {
			cond.values = append(cond.values, newPattern(v))
		}
		r.conds = append(r.conds, cond)
	}
	r.http = len(r.conds) > 0
	for _, op := range r.ops {
		r.http = r.http || len(op.methods) > 0 || len(op.paths) > 0
	}
	r.conn = r.decision
	if r.http && !r.decision.Allow {
		r.conn.Text += " (a TCP connection: the rule's to and when are left out, it matches by from alone)"
	}
	return r, nil
}

// Service is the service the matcher guards.
func (m *Matcher) Service() string { return m.service }

// Policies lists the policies that apply, "AuthorizationPolicy/NAME",
// sorted by name.
func (m *Matcher) Policies() []string { return m.policies }

// MatchesPaths reports whether a rule matches by path (and so a path
// not in normal form is denied).
func (m *Matcher) MatchesPaths() bool { return m.paths }
