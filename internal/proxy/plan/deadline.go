package plan

import (
	"strconv"
	"time"
)

// TimeoutHeader carries, from one hop to the next, how long the sender
// will wait for the response head: the sending sidecar's try timeout, in
// whole milliseconds, counted from when the request has gone in full.
// The sidecar that receives it never waits longer than that for its app
// (or the next instance), and passes what is left on; an app may read
// it, and copy it to the requests it makes in turn, so the whole chain
// stops waiting when the first caller does (Envoy's
// x-envoy-expected-rq-timeout-ms is the same idea). Every hop replaces
// the value; external services are not sent it.
const TimeoutHeader = "x-weft-timeout-ms"

// maxTimeoutHeader bounds the value taken (about 11.5 days), so a
// garbled header cannot overflow a Duration.
const maxTimeoutHeader = 1e9

// ParseTimeoutHeader reads a TimeoutHeader value: decimal milliseconds,
// more than zero. Anything else is ignored (false), as a caller that
// sent none.
func ParseTimeoutHeader(v []byte) (time.Duration, bool) {
	if len(v) == 0 || len(v) > 10 {
		return 0, false
	}
	var n int64
	for _, b := range v {
		if b < '0' || b > '9' {
			return 0, false
		}
		n = n*10 + int64(b-'0')
	}
	if n == 0 || n > maxTimeoutHeader {
		return 0, false
	}
	return time.Duration(n) * time.Millisecond, true
}

// AppendTimeoutHeader appends d as a TimeoutHeader value: milliseconds,
// rounded up so a wait under 1 ms is not sent as none.
func AppendTimeoutHeader(b []byte, d time.Duration) []byte {
	ms := int64((d + time.Millisecond - 1) / time.Millisecond)
	return strconv.AppendInt(b, min(max(ms, 1), maxTimeoutHeader), 10)
}
