package plan

import (
	"errors"
	"net/http"
	"strconv"
	"time"
	"unsafe"

	"github.com/weftmesh/weft/internal/endpoint"
)

// Statuses recorded in metrics for exchanges that ended without a status
// of their own: StatusAborted for a response whose body the upstream cut
// off, StatusClientGone for a request whose client went away first
// (nginx's 499).
const (
	StatusAborted    = 502
	StatusClientGone = 499
)

// ErrHeadTimeout: no response head within the plan's timeout.
var ErrHeadTimeout = errors.New("timeout: no response head")

// ErrPeerCouldNotConnect: a peer sidecar answered 502
// upstream-connect-failed, its app refused the connection.
var ErrPeerCouldNotConnect = errors.New("its sidecar could not reach the app")

// BytesOf is s as bytes without a copy, for request views over strings.
// The bytes must not be changed: views hand them out read-only.
func BytesOf(s string) []byte {
	if s == "" {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// AnswerStatus is what an instance answered, as the plan records it:
// the grpc-status of a trailers-only gRPC answer (grpcStatus, "" when
// the head has none), else the HTTP status.
func AnswerStatus(httpStatus int, grpcStatus string) endpoint.Status {
	if grpcStatus != "" {
		if code, err := strconv.Atoi(grpcStatus); err == nil {
			return endpoint.GRPCStatus(code)
		}
	}
	return endpoint.HTTPStatus(httpStatus)
}

// RetryAfter is how long a Retry-After header value asks to wait: delay
// seconds or an HTTP date (0: none, or not understood).
func RetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}
