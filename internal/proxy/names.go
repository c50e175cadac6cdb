package proxy

import (
	xhttp2 "golang.org/x/net/http2"

	"github.com/weftmesh/weft/internal/proxy/plan"
	"github.com/weftmesh/weft/internal/proxy/stdhttp"
)

// What callers outside the data path (tests of the whole mesh, tools)
// match answers against, under the listener's package: the header and
// reasons of a mesh error (package plan has them).
const (
	HeaderError           = plan.HeaderError
	ReasonUnknownService  = plan.ReasonUnknownService
	ReasonNoReadyInstance = plan.ReasonNoReadyInstance
	ReasonConnectFailed   = plan.ReasonConnectFailed
	ReasonUpstreamTimeout = plan.ReasonUpstreamTimeout
	ReasonUpstreamReset   = plan.ReasonUpstreamReset
	ReasonBadRequest      = plan.ReasonBadRequest
)

// NewH2CTransport is stdhttp.NewH2CTransport: the HTTP/2 cleartext client
// the sidecars use, for callers that speak to them as sidecars do.
func NewH2CTransport() *xhttp2.Transport { return stdhttp.NewH2CTransport() }
