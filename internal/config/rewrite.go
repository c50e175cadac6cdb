package config

import (
	"fmt"
	"strings"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Path modifier types (Gateway API's HTTPPathModifier).
const (
	ReplaceFullPath    = "ReplaceFullPath"
	ReplacePrefixMatch = "ReplacePrefixMatch"
)

// PathModifier replaces a request's path whole (ReplaceFullPath) or the
// part its rule's PathPrefix matched (ReplacePrefixMatch) with Value.
type PathModifier struct {
	Type  string
	Value string
}

// Apply is path with the modifier applied; prefix is the PathPrefix the
// rule matched (for ReplacePrefixMatch: whole path elements, a trailing
// / of either ignored, as Gateway API's table gives).
func (m *PathModifier) Apply(path, prefix string) string {
	if m.Type == ReplaceFullPath {
		return m.Value
	}
	prefix = strings.TrimSuffix(prefix, "/")
	rest := ""
	if len(path) >= len(prefix) {
		rest = path[len(prefix):]
	}
	out := strings.TrimSuffix(m.Value, "/") + rest
	if !strings.HasPrefix(out, "/") {
		out = "/" + out
	}
	return out
}

// RouteRewrite is a URLRewrite filter: the Host (HTTP/2 :authority) and
// the path the instance gets ("" and nil: unchanged).
type RouteRewrite struct {
	Hostname string
	Path     *PathModifier
}

// RouteRedirect is a RequestRedirect filter: the mesh answers with
// Status (302 by default) and a Location made of the request's URL with
// the parts given replaced (Port 0: derived as Gateway API says).
type RouteRedirect struct {
	Scheme, Hostname string
	Port             int
	Path             *PathModifier
	Status           int
}

// checkPathModifier reads an HTTPPathModifier.
func checkPathModifier(p *gwv1.HTTPPathModifier, at string) (*PathModifier, *FieldError) {
	if p == nil {
		return nil, nil
	}
	var v *string
	switch p.Type {
	case gwv1.FullPathHTTPPathModifier:
		if p.ReplacePrefixMatch != nil {
			return nil, &FieldError{Field: at + ".replacePrefixMatch", Msg: "is for type ReplacePrefixMatch; this one is ReplaceFullPath"}
		}
		v = p.ReplaceFullPath
	case gwv1.PrefixMatchHTTPPathModifier:
		if p.ReplaceFullPath != nil {
			return nil, &FieldError{Field: at + ".replaceFullPath", Msg: "is for type ReplaceFullPath; this one is ReplacePrefixMatch"}
		}
		v = p.ReplacePrefixMatch
	default:
		return nil, &FieldError{Field: at + ".type", Msg: fmt.Sprintf("%q: want ReplaceFullPath or ReplacePrefixMatch", p.Type)}
	}
	field := at + ".replaceFullPath"
	if p.Type == gwv1.PrefixMatchHTTPPathModifier {
		field = at + ".replacePrefixMatch"
	}
	if v == nil {
		if p.Type == gwv1.FullPathHTTPPathModifier {
			return nil, &FieldError{Field: field, Msg: "is required with type ReplaceFullPath"}
		}
		v = new(string) // ReplacePrefixMatch of "": the prefix is dropped
	}
	if *v != "" && !strings.HasPrefix(*v, "/") {
		return nil, &FieldError{Field: field, Msg: fmt.Sprintf("%q must begin with /", *v)}
	}
	if i := strings.IndexFunc(*v, func(r rune) bool { return !pathChar(r) }); i >= 0 {
		return nil, &FieldError{Field: field, Msg: fmt.Sprintf("%q must be a path only (RFC 3986 path characters, %%-escaped otherwise): %q is not one", *v, (*v)[i:i+1])}
	}
	return &PathModifier{Type: string(p.Type), Value: *v}, nil
}

// pathChar: what a path may hold unescaped (RFC 3986 pchar and "/").
func pathChar(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return true
	}
	return strings.ContainsRune("-._~!$&'()*+,;=:@/%", r)
}

func checkHostname(h *gwv1.PreciseHostname, at string) (string, *FieldError) {
	if h == nil {
		return "", nil
	}
	s := string(*h)
	ok := s != "" && len(s) <= 253
	for _, label := range strings.Split(s, ".") {
		ok = ok && label != "" && len(label) <= 63 && label[0] != '-' && label[len(label)-1] != '-' &&
			strings.IndexFunc(label, func(r rune) bool {
				return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-')
			}) < 0
	}
	if !ok {
		return "", &FieldError{Field: at, Msg: fmt.Sprintf("%q is not a hostname (RFC 1123 labels of letters, digits and -; no port, no wildcard)", s)}
	}
	return strings.ToLower(s), nil
}

// checkRewrite reads a URLRewrite filter.
func checkRewrite(f *gwv1.HTTPURLRewriteFilter, at string) (*RouteRewrite, *FieldError) {
	if f == nil {
		return nil, &FieldError{Field: at, Msg: "is required with type URLRewrite"}
	}
	host, fe := checkHostname(f.Hostname, at+".hostname")
	if fe != nil {
		return nil, fe
	}
	path, fe := checkPathModifier(f.Path, at+".path")
	if fe != nil {
		return nil, fe
	}
	return &RouteRewrite{Hostname: host, Path: path}, nil
}

// checkRedirect reads a RequestRedirect filter.
func checkRedirect(f *gwv1.HTTPRequestRedirectFilter, at string) (*RouteRedirect, *FieldError) {
	if f == nil {
		return nil, &FieldError{Field: at, Msg: "is required with type RequestRedirect"}
	}
	r := &RouteRedirect{Status: 302}
	if f.Scheme != nil {
		if *f.Scheme != "http" && *f.Scheme != "https" {
			return nil, &FieldError{Field: at + ".scheme", Msg: fmt.Sprintf("%q: want http or https", *f.Scheme)}
		}
		r.Scheme = *f.Scheme
	}
	var fe *FieldError
	if r.Hostname, fe = checkHostname(f.Hostname, at+".hostname"); fe != nil {
		return nil, fe
	}
	if r.Path, fe = checkPathModifier(f.Path, at+".path"); fe != nil {
		return nil, fe
	}
	if f.Port != nil {
		if *f.Port < 1 || *f.Port > 65535 {
			return nil, &FieldError{Field: at + ".port", Msg: fmt.Sprintf("%d: want 1 to 65535", *f.Port)}
		}
		r.Port = int(*f.Port)
	}
	if f.StatusCode != nil {
		switch *f.StatusCode {
		case 301, 302, 303, 307, 308:
			r.Status = *f.StatusCode
		default:
			return nil, &FieldError{Field: at + ".statusCode", Msg: fmt.Sprintf("%d: want 301, 302, 303, 307 or 308", *f.StatusCode)}
		}
	}
	return r, nil
}
