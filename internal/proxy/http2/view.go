package http2

import (
	"strings"

	"golang.org/x/net/http2/hpack"

	"github.com/weftmesh/weft/internal/proxy/plan"
	"github.com/weftmesh/weft/internal/request"
)

var _ request.View = (*h2View)(nil)

// h2View is the view of a request on the HTTP/2 engine: the head as it
// goes on to the instance.
type h2View h2Stream

func (v *h2View) field(name string) []byte { return plan.BytesOf(fieldValue(v.req, name)) }
func (v *h2View) Method() []byte           { return v.field(":method") }
func (v *h2View) Authority() []byte        { return v.field(":authority") }
func (v *h2View) Path() []byte             { return v.field(":path") }
func (v *h2View) Header(n string) []byte   { return plan.BytesOf(fieldValueFold(v.req, n)) }
func (v *h2View) Replayable() bool         { return v.noBody && request.Safe(v.Method()) }
func (v *h2View) GRPC() bool               { return v.isGRPC }
func (v *h2View) Source() []byte           { return plan.BytesOf(v.front.ip) }

// Cookie reads every cookie field: HTTP/2 clients may split them
// (RFC 9113 §8.2.3).
func (v *h2View) Cookie(name string) []byte {
	for _, f := range v.req {
		if f.Name == "cookie" {
			if c := request.CookieValue(plan.BytesOf(f.Value), name); c != nil {
				return c
			}
		}
	}
	return nil
}

// fieldValueFold is fieldValue for a name in any case (HTTP/2 field
// names are lower case on the wire).
func fieldValueFold(fields []hpack.HeaderField, name string) string {
	for _, f := range fields {
		if strings.EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return ""
}
