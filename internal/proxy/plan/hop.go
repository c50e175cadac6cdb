package plan

import (
	"bytes"
	"net/http"
	"strings"
)

// hopFields is the one list of fields that belong to a single connection
// (RFC 9110 §7.6.1, and the proxy authentication fields a proxy
// consumes): no engine forwards them, and each hop sets those it owns.
// h2 marks the ones HTTP/2 forbids outright (RFC 9113 §8.2.2): a request
// carrying them is malformed, a response loses them. The three views
// below are built from it once.
var hopFields = [...]struct {
	name string
	h2   bool
}{
	{"Connection", true}, {"Proxy-Connection", true}, {"Keep-Alive", true},
	{"Transfer-Encoding", true}, {"Upgrade", true},
	{"TE", false}, {"Proxy-Authenticate", false}, {"Proxy-Authorization", false},
}

var (
	// hopByLen holds hopFields by name length, for IsHopByHop.
	hopByLen [24][][]byte
	// hopHeaders are hopFields in canonical form (so deleting them from
	// an http.Header costs no allocation), with Trailer, which net/http
	// writes itself from the response's trailers.
	hopHeaders []string
	// h2Forbidden are the lower-case names HTTP/2 forbids.
	h2Forbidden []string
)

func init() {
	for _, f := range hopFields {
		hopByLen[len(f.name)] = append(hopByLen[len(f.name)], []byte(f.name))
		hopHeaders = append(hopHeaders, http.CanonicalHeaderKey(f.name))
		if f.h2 {
			h2Forbidden = append(h2Forbidden, strings.ToLower(f.name))
		}
	}
	hopHeaders = append(hopHeaders, "Trailer")
}

// IsHopByHop reports a connection-specific field of an HTTP/1 head.
func IsHopByHop(name []byte) bool {
	if len(name) >= len(hopByLen) {
		return false
	}
	for _, n := range hopByLen[len(name)] {
		if bytes.EqualFold(name, n) {
			return true
		}
	}
	return false
}

// ConnectionSpecific reports a field HTTP/2 forbids (names are lower case
// in HTTP/2).
func ConnectionSpecific(name string) bool {
	for _, n := range h2Forbidden {
		if name == n {
			return true
		}
	}
	return false
}

// RemoveHopHeaders deletes hop-by-hop fields, including those that
// Connection names.
func RemoveHopHeaders(h http.Header) {
	for _, f := range h["Connection"] {
		for _, name := range strings.Split(f, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
}
