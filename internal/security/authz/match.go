package authz

import (
	"bytes"

	"github.com/weftmesh/weft/internal/config"
)

// Decide is the decision on a request from source: the calling
// service's name, or "" (or "unknown") when the caller names none. A
// nil Matcher allows everything. It allocates nothing.
func (m *Matcher) Decide(source string, r Request) Decision {
	if m == nil {
		return defaultAllow
	}
	if source == config.SourceUnknown {
		source = ""
	}
	path := r.Path()
	if i := bytes.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if m.paths && !Normal(path) {
		return notNormal
	}
	method := r.Method()
	for i := range m.deny {
		if m.deny[i].matches(source, method, path, r) {
			return m.deny[i].decision
		}
	}
	for i := range m.allow {
		if m.allow[i].matches(source, method, path, r) {
			return m.allow[i].decision
		}
	}
	if m.hasAllow {
		return m.noAllow
	}
	return m.def
}

// DecideConn is the decision on a TCP connection from source (as
// Decide takes it). A connection has no method, path or header, so only
// a rule's from can match it; a rule with to or when, fields only HTTP
// has, is read as Istio reads them on TCP, so that the result fails
// closed:
//
//   - an ALLOW rule with to or when never matches a connection;
//   - a DENY rule's to and when are left out: it matches by its from
//     alone, and one without from denies every connection.
//
// Deny still wins, then ALLOW rules, then the default. It allocates
// nothing.
func (m *Matcher) DecideConn(source string) Decision {
	if m == nil {
		return defaultAllow
	}
	if source == config.SourceUnknown {
		source = ""
	}
	for i := range m.deny {
		if r := &m.deny[i]; r.fromMatches(source) {
			return r.conn
		}
	}
	for i := range m.allow {
		if r := &m.allow[i]; !r.http && r.fromMatches(source) {
			return r.conn
		}
	}
	if m.hasAllow {
		return m.noAllowConn
	}
	return m.def
}

func (r *rule) matches(src string, method, path []byte, req Request) bool {
	return r.fromMatches(src) && r.toMatches(method, path) && r.whenMatches(req)
}

func (r *rule) fromMatches(src string) bool {
	if len(r.sources) == 0 {
		return true
	}
	for i := range r.sources {
		s := &r.sources[i]
		switch s.kind {
		case sourceAny:
			if src != "" {
				return true
			}
		case sourceUnknown:
			if src == "" {
				return true
			}
		default:
			if src == s.name {
				return true
			}
		}
	}
	return false
}

func (r *rule) toMatches(method, path []byte) bool {
	if len(r.ops) == 0 {
		return true
	}
	for i := range r.ops {
		if r.ops[i].matches(method, path) {
			return true
		}
	}
	return false
}

func (o *operation) matches(method, path []byte) bool {
	if len(o.methods) > 0 {
		ok := false
		for _, m := range o.methods {
			if string(method) == m {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if len(o.paths) == 0 {
		return true
	}
	for i := range o.paths {
		if o.paths[i].match(path) {
			return true
		}
	}
	return false
}

func (r *rule) whenMatches(req Request) bool {
	for i := range r.conds {
		c := &r.conds[i]
		v := req.Header(c.header)
		if v == nil {
			return false
		}
		ok := false
		for j := range c.values {
			if c.values[j].match(v) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// Normal reports whether a path (without its query) reads one way: no
// dot segment, no "//", no backslash, and no percent-encoded character
// an app would decode into another path (a letter, digit, "-", ".",
// "_", "~", "/" or "\"). A path that is not could reach the app as a
// path other than the one the rules matched, so services whose rules
// match paths deny it.
func Normal(path []byte) bool {
	for i := 0; i < len(path); i++ {
		switch path[i] {
		case '\\':
			return false
		case '/':
			rest := path[i+1:]
			if len(rest) > 0 && rest[0] == '/' {
				return false
			}
			if dotSegment(rest) {
				return false
			}
		case '%':
			if i+2 >= len(path) {
				return false // a truncated escape
			}
			c, ok := unhex(path[i+1], path[i+2])
			if !ok || unreserved(c) || c == '/' || c == '\\' {
				return false
			}
		}
	}
	return !dotSegment(path) // a relative path that starts with . or ..
}

// dotSegment reports whether p begins with the segment "." or "..".
func dotSegment(p []byte) bool {
	n := 0
	for n < len(p) && n < 3 && p[n] == '.' {
		n++
	}
	return (n == 1 || n == 2) && (len(p) == n || p[n] == '/')
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

func unhex(a, b byte) (byte, bool) {
	x, ok1 := hexDigit(a)
	y, ok2 := hexDigit(b)
	return x<<4 | y, ok1 && ok2
}

func hexDigit(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
