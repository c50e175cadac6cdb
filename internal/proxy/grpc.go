package proxy

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// withGRPCDeadline applies a request's grpc-timeout: the request's context
// ends when it runs out, and setGRPCTimeout rewrites the header to what is
// left, so each hop shortens the deadline by the time it took.
func withGRPCDeadline(r *http.Request) (*http.Request, context.CancelFunc) {
	d, ok := parseGRPCTimeout(r.Header.Get("Grpc-Timeout"))
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
	r.Header.Set("Grpc-Timeout", formatGRPCTimeout(max(time.Until(dl), 0)))
}

// parseGRPCTimeout reads "100m", "5S", ... (gRPC over HTTP/2: at most 8
// digits and a unit of H, M, S, m, u or n).
func parseGRPCTimeout(v string) (time.Duration, bool) {
	if len(v) < 2 || len(v) > 9 {
		return 0, false
	}
	var unit time.Duration
	switch v[len(v)-1] { // a switch, not a map literal: no allocation per call
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	n, err := strconv.ParseInt(v[:len(v)-1], 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	if n > int64(math.MaxInt64/unit) {
		return math.MaxInt64, true // 99999999H does not fit in a Duration
	}
	return time.Duration(n) * unit, true
}

// formatGRPCTimeout writes d in the finest unit that fits in 8 digits.
func formatGRPCTimeout(d time.Duration) string {
	for _, u := range []struct {
		unit time.Duration
		name string
	}{{time.Microsecond, "u"}, {time.Millisecond, "m"}, {time.Second, "S"}, {time.Minute, "M"}} {
		if n := d / u.unit; n < 1e8 {
			return strconv.FormatInt(int64(n), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(min(d/time.Hour, 1e8-1)), 10) + "H"
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
