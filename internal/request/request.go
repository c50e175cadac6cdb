// Package request is the one view of a request that balancers, routes and
// policies read, whatever engine carries it: an HTTP/1.1 head parsed in
// place, an HTTP/2 header block, or a net/http request.
//
//	h1.Head ─┐
//	hpack    ├─> View ─> lb.Balancer.Pick, (later) route match, limits
//	net/http ┘
//
// Byte slices a View returns are read-only and valid only while the
// request is being routed; on the HTTP/1.1 path they point into the
// parsed head, so reading them allocates nothing.
package request

import "bytes"

// View is a read-only look at one request.
type View interface {
	// Method is the request method, e.g. GET.
	Method() []byte
	// Authority is what the request names as its destination (Host or
	// :authority, or the authority of an absolute target).
	Authority() []byte
	// Path is the request target's path and query (origin form).
	Path() []byte
	// Header returns the first value of the named field (case-insensitive
	// name), or nil.
	Header(name string) []byte
	// Replayable reports whether the request may be sent again after its
	// connection broke: a safe method (GET, HEAD, OPTIONS) and no body.
	Replayable() bool
	// GRPC reports a gRPC call (content-type application/grpc...).
	GRPC() bool
	// Cookie returns the value of the named cookie (Cookie header
	// fields, case-sensitive name), or nil.
	Cookie(name string) []byte
	// Source is the address of the client that sent the request, as the
	// listener saw it (the IP, without a port), or nil.
	Source() []byte
}

// CookieValue finds the cookie name in one Cookie field value
// ("a=1; b=2"), without allocating; nil when it is not there.
func CookieValue(field []byte, name string) []byte {
	for len(field) > 0 {
		var pair []byte
		pair, field, _ = bytes.Cut(field, []byte{';'})
		pair = bytes.TrimSpace(pair)
		if len(pair) > len(name) && pair[len(name)] == '=' && string(pair[:len(name)]) == name {
			v := pair[len(name)+1:]
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			return v
		}
	}
	return nil
}

// Safe reports the methods that may be repeated without asking: those
// RFC 9110 calls safe and that proxies retry (GET, HEAD, OPTIONS).
func Safe(method []byte) bool {
	switch string(method) { // no allocation: the compiler compares in place
	case "GET", "HEAD", "OPTIONS":
		return true
	}
	return false
}

// IsGRPC reports whether a content-type names gRPC.
func IsGRPC(contentType []byte) bool {
	const p = "application/grpc"
	return len(contentType) >= len(p) && string(contentType[:len(p)]) == p
}

// None is the view of a connection that carries no request (TCP).
var None View = none{}

type none struct{}

func (none) Method() []byte       { return nil }
func (none) Authority() []byte    { return nil }
func (none) Path() []byte         { return nil }
func (none) Header(string) []byte { return nil }
func (none) Replayable() bool     { return false }
func (none) GRPC() bool           { return false }
func (none) Cookie(string) []byte { return nil }
func (none) Source() []byte       { return nil }
