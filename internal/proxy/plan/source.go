package plan

import (
	"fmt"
	"time"
	"unsafe"
)

// SourceHeader names, from one hop to the next, the mesh service that
// sent the request: every sidecar's outbound sets it to its own service
// on requests to mesh services (replacing what the app sent), and the
// receiving sidecar passes it on to its app, which may read it. Per-source
// policies (rateLimit.server.perSource) key on it. It is not proof of
// identity: a client that reaches an inbound without a sidecar can set
// it; mutual TLS between sidecars is what will vouch for it.
const SourceHeader = "x-weft-source"

// unknownSource is the key of requests that name no source: clients
// outside the mesh, and apps calling an inbound directly.
const unknownSource = "-"

// StringOf is b as a string without a copy, for a lookup or a label
// that does not keep it.
func StringOf(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// sourceLimited answers a request from source over its share of the
// server-side limit (rateLimit.server.perSource).
func sourceLimited(service, source string, retryAfter time.Duration) *MeshError {
	e := rateLimited(service, retryAfter)
	who := "callers that name no source"
	if source != unknownSource {
		who = fmt.Sprintf("service %q", source)
	}
	e.Message = fmt.Sprintf("%s is over its rate limit for service %q (rateLimit.server.perSource); retry after %ss", who, service, e.RetryAfter)
	return e
}
