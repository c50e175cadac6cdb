package endpoint

import "strconv"

// Status is what an instance answered an attempt with, when the engine
// knows it: an HTTP status code (HTTPStatus) or a gRPC status code
// (GRPCStatus). The zero Status is "not known" (TCP, or an engine that
// does not say).
type Status uint16

// grpcBase offsets gRPC codes from HTTP codes in a Status.
const grpcBase = 1000

// HTTPStatus is the Status of an HTTP response with code (100-999); any
// other code is the zero Status.
func HTTPStatus(code int) Status {
	if code < 100 || code > 999 {
		return 0
	}
	return Status(code)
}

// GRPCStatus is the Status of a gRPC call that ended with code (0 OK to
// 16 UNAUTHENTICATED; codes up to 999 are kept as sent); a negative or
// larger code is the zero Status.
func GRPCStatus(code int) Status {
	if code < 0 || code > 999 {
		return 0
	}
	return Status(grpcBase + code)
}

// gRPC codes that say the instance could not serve the call.
const (
	grpcResourceExhausted = 8
	grpcUnavailable       = 14
)

// HTTP reports the HTTP status code, if s is one.
func (s Status) HTTP() (int, bool) {
	if s >= 100 && s < grpcBase {
		return int(s), true
	}
	return 0, false
}

// GRPC reports the gRPC status code, if s is one.
func (s Status) GRPC() (int, bool) {
	if s >= grpcBase {
		return int(s - grpcBase), true
	}
	return 0, false
}

// Failed reports whether s says the instance could not serve the request,
// rather than answering it: HTTP 502, 503 and 504 (an instance that is
// itself a gateway, overloaded or shedding), 429 (overloaded; the HTTP
// form of RESOURCE_EXHAUSTED), and gRPC UNAVAILABLE and
// RESOURCE_EXHAUSTED. Other statuses, 500 included, are the
// application's answer, and count as successes of the instance.
func (s Status) Failed() bool {
	switch s {
	case 429, 502, 503, 504, grpcBase + grpcResourceExhausted, grpcBase + grpcUnavailable:
		return true
	}
	return false
}

func (s Status) String() string {
	if c, ok := s.HTTP(); ok {
		return "http " + strconv.Itoa(c)
	}
	if c, ok := s.GRPC(); ok {
		return "grpc " + strconv.Itoa(c)
	}
	return "none"
}

// gRPC INTERNAL, which the consecutive-5xx detector counts as a 5xx.
const grpcInternal = 13

// ServerError reports whether s is a server error for outlier detection
// (the consecutive-5xx detector and the success rate): any HTTP 5xx, and
// gRPC UNAVAILABLE, RESOURCE_EXHAUSTED and INTERNAL.
func (s Status) ServerError() bool {
	switch {
	case s >= 500 && s < 600:
		return true
	case s == grpcBase+grpcUnavailable, s == grpcBase+grpcResourceExhausted, s == grpcBase+grpcInternal:
		return true
	}
	return false
}

// GatewayError reports whether s is a gateway error for outlier
// detection: HTTP 502, 503 and 504, and gRPC UNAVAILABLE (what gRPC makes
// of those three).
func (s Status) GatewayError() bool {
	switch s {
	case 502, 503, 504, grpcBase + grpcUnavailable:
		return true
	}
	return false
}
