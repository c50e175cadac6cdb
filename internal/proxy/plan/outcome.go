package plan

import (
	"errors"
	"unsafe"
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
