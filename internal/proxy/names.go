package proxy

import "github.com/weftmesh/weft/internal/proxy/plan"

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
