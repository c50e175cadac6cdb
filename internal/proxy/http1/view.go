package http1

import (
	"bytes"
	"strings"

	"github.com/weftmesh/weft/internal/h1"
	"github.com/weftmesh/weft/internal/proxy/plan"
	"github.com/weftmesh/weft/internal/request"
)

// The request view of the fast path (package request): two pointers
// kept in the connection's state, so making one allocates nothing.
var (
	_ request.View     = (*h1View)(nil)
	_ plan.TraceFields = (*h1View)(nil)
)

// h1View is the view of a parsed HTTP/1.1 request head, from the client
// at ip. It lives in the client connection's state (Conn.view).
type h1View struct {
	h  *h1.Head
	ip []byte
	// peer is the calling service its mutual-TLS certificate proves (nil:
	// none): the request's source (plan.SourceHeader) whatever it says.
	peer []byte
}

func (v *h1View) head() *h1.Head    { return v.h }
func (v *h1View) Method() []byte    { return v.h.Method() }
func (v *h1View) Authority() []byte { host, _ := destinationOf(v.h); return host }
func (v *h1View) Path() []byte      { return originForm(v.h.Target()) }
func (v *h1View) Header(n string) []byte {
	if v.peer != nil && len(n) == len(plan.SourceHeader) && strings.EqualFold(n, plan.SourceHeader) {
		return v.peer
	}
	return v.h.Get(n)
}

// TraceFields gives the plan the request's trace context headers in
// one pass over its fields (plan.TraceFields).
func (v *h1View) TraceFields() (h plan.TraceHeaders) {
	for i := range v.h.NumFields() {
		h.Field(v.h.FieldAt(i))
	}
	return h
}
func (v *h1View) Replayable() bool { return replayableHead(v.h) }
func (v *h1View) GRPC() bool       { return request.IsGRPC(v.h.Get("Content-Type")) }
func (v *h1View) Source() []byte   { return v.ip }

// Cookie reads the request's Cookie fields (RFC 6265 allows one; some
// clients send several).
func (v *h1View) Cookie(name string) []byte {
	for i := range v.h.NumFields() {
		if n, val := v.h.FieldAt(i); len(n) == 6 && bytes.EqualFold(n, []byte("Cookie")) {
			if c := request.CookieValue(val, name); c != nil {
				return c
			}
		}
	}
	return nil
}
