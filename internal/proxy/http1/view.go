package http1

import (
	"github.com/weftmesh/weft/internal/h1"
	"github.com/weftmesh/weft/internal/request"
)

// The request view of the fast path (package request): a pointer
// conversion of what the engine already holds, so making one
// allocates nothing.
var (
	_ request.View = (*h1View)(nil)
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
