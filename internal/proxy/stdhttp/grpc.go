package stdhttp

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/weftmesh/weft/internal/proxy/plan"
)

// withGRPCDeadline applies a request's grpc-timeout: the request's context
// ends when it runs out, and setGRPCTimeout rewrites the header to what is
// left, so each hop shortens the deadline by the time it took.
func withGRPCDeadline(r *http.Request) (*http.Request, context.CancelFunc) {
	d, ok := plan.ParseGRPCTimeout(r.Header.Get("Grpc-Timeout"))
	if !ok {
		return r, func() {}
	}
	ctx, cancel := context.WithTimeout(r.Context(), d)
	return r.WithContext(ctx), cancel
}

// setGRPCTimeout sets grpc-timeout to the time left on r's deadline.
func setGRPCTimeout(r *http.Request) {
	dl, ok := r.Context().Deadline()
	if !ok || r.Header.Get("Grpc-Timeout") == "" {
		return
	}
	r.Header.Set("Grpc-Timeout", plan.FormatGRPCTimeout(max(time.Until(dl), 0)))
}

func isGRPC(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc")
}

// trailerKey is http.TrailerPrefix+k, without an allocation for the
// trailers every gRPC response carries.
func trailerKey(k string) string {
	switch k {
	case "Grpc-Status":
		return http.TrailerPrefix + "Grpc-Status"
	case "Grpc-Message":
		return http.TrailerPrefix + "Grpc-Message"
	case "Grpc-Status-Details-Bin":
		return http.TrailerPrefix + "Grpc-Status-Details-Bin"
	}
	return http.TrailerPrefix + k
}
