package http2

import (
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/net/http2/hpack"

	"github.com/weftmesh/weft/internal/proxy/plan"
)

// h2Mirror is a stream's copy for its route rule's mirrors while its
// body arrives (plan.Routed.SendMirrors once it has ended): DATA is
// copied as it passes on, never held back, up to plan.MaxMirrorBody.
type h2Mirror struct {
	routed plan.Routed
	head   *http.Request
	body   []byte
}

// startMirror hands the request to r's mirrors: at once when it ended
// with its head, else once its body has (take). Called under mu, with
// s.req as the client sent it (before the rule's edits).
func (s *h2Stream) startMirror(r plan.Routed) {
	head := h2Head(s.req)
	switch {
	case head == nil:
		return // a :path that does not parse: not mirrored
	case s.clientEnd:
		r.SendMirrors(head, nil)
	case s.clen > plan.MaxMirrorBody:
		r.DropMirrors(plan.MirrorBodyTooLarge)
	default:
		s.mirror = &h2Mirror{routed: r, head: head}
	}
}

// take copies a DATA frame's payload for the mirrors; at the end of the
// body it sends them. Called under mu.
func (s *h2Stream) takeMirror(data []byte, end bool) {
	m := s.mirror
	if len(m.body)+len(data) > plan.MaxMirrorBody {
		s.dropMirror(plan.MirrorBodyTooLarge)
		return
	}
	m.body = append(m.body, data...)
	if end {
		m.routed.SendMirrors(m.head, m.body)
		s.mirror = nil
	}
}

// dropMirror gives the mirrors up: the body is too large, ends with
// trailers, or never ends. Called under mu.
func (s *h2Stream) dropMirror(outcome string) {
	if s.mirror != nil {
		s.mirror.routed.DropMirrors(outcome)
		s.mirror = nil
	}
}

// h2Head is an HTTP/2 request head as a net/http request for a mirror
// (nil: its :path does not parse).
func h2Head(fields []hpack.HeaderField) *http.Request {
	r := &http.Request{Proto: "HTTP/2.0", ProtoMajor: 2, Header: make(http.Header, len(fields))}
	path := ""
	for _, f := range fields {
		switch {
		case f.Name == ":method":
			r.Method = f.Value
		case f.Name == ":path":
			path = f.Value
		case f.Name == ":authority":
			r.Host = f.Value
		case strings.HasPrefix(f.Name, ":"):
		case f.Name == "host":
			if r.Host == "" {
				r.Host = f.Value
			}
		default:
			k := http.CanonicalHeaderKey(f.Name)
			r.Header[k] = append(r.Header[k], f.Value)
		}
	}
	u, err := url.ParseRequestURI(path)
	if err != nil {
		return nil
	}
	r.URL = u
	return r
}
