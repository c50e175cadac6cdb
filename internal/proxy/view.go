package proxy

import (
	"strings"

	"golang.org/x/net/http2/hpack"

	"github.com/weftmesh/weft/internal/h1"
	"github.com/weftmesh/weft/internal/proxy/plan"
	"github.com/weftmesh/weft/internal/request"
)

// The request views of the fast path and of the HTTP/2 engine (package
// request): each is a pointer conversion of what the engine already holds, so making one
// allocates nothing.
var (
	_ request.View = (*h1View)(nil)
	_ request.View = (*h2View)(nil)
)

// h1View is the view of a parsed HTTP/1.1 request head.
type h1View h1.Head

func viewH1(req *h1.Head) *h1View { return (*h1View)(req) }

func (v *h1View) head() *h1.Head         { return (*h1.Head)(v) }
func (v *h1View) Method() []byte         { return v.head().Method() }
func (v *h1View) Authority() []byte      { host, _ := destinationOf(v.head()); return host }
func (v *h1View) Path() []byte           { return originForm(v.head().Target()) }
func (v *h1View) Header(n string) []byte { return v.head().Get(n) }
func (v *h1View) Replayable() bool       { return replayableHead(v.head()) }
func (v *h1View) GRPC() bool             { return request.IsGRPC(v.head().Get("Content-Type")) }

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
