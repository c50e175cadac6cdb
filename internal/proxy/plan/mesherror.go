package plan

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/net/http2/hpack"
)

// Reasons carried in the x-weft-error header.
const (
	ReasonUnknownService  = "unknown-service"
	ReasonNoReadyInstance = "no-ready-instance"
	ReasonConnectFailed   = "upstream-connect-failed"
	ReasonUpstreamTimeout = "upstream-timeout"
	ReasonUpstreamReset   = "upstream-request-failed"
	ReasonBadRequest      = "bad-request"
)

// HeaderError names the header that marks an answer the mesh made itself.
const HeaderError = "X-Weft-Error"

// MeshError is an answer the mesh makes itself, not the app (with no
// Reason: an answer that is no error, such as a probe's). The one
// place its wire forms are made is this file: an HTTP/1.1 response
// (WriteH1), a net/http response (WriteStd) and an HTTP/2 header block
// with its body (H2Parts); to a gRPC caller, each is a trailers-only
// gRPC response whose grpc-status fits the failure (GRPCCode).
type MeshError struct {
	Status   int    `json:"-"`
	Reason   string `json:"error"`
	Service  string `json:"service,omitempty"`
	Instance string `json:"instance,omitempty"`
	Message  string `json:"message"`
	// RetryAfter, when set, is sent as Retry-After (seconds).
	RetryAfter string `json:"-"`
	// Location, when set, is sent as Location (a route's redirect).
	Location string `json:"location,omitempty"`
	// GRPC, when set, is the grpc-status a gRPC caller gets (a fault's
	// abort), in place of GRPCCode's mapping of Status.
	GRPC string `json:"-"`
	// Fallback, when set, is the answer sent instead of the JSON body
	// (its status, headers and body; x-weft-error still says why). A gRPC
	// caller gets the trailers-only error as without it.
	Fallback *Fallback `json:"-"`
	// authz is the authorization decision that denied, and source the
	// calling service it denied (authz.go).
	authz, source string
}

// status is the HTTP status sent: the fallback's, if there is one.
func (e *MeshError) status() int {
	if e.Fallback != nil {
		return e.Fallback.Status
	}
	return e.Status
}

// payload is the body sent and its content type.
func (e *MeshError) payload() (ctype string, body []byte) {
	if f := e.Fallback; f != nil {
		if ct := f.Headers.Get("Content-Type"); ct != "" {
			return ct, f.Body
		}
		return "text/plain; charset=utf-8", f.Body
	}
	return "application/json", e.body()
}

// extra calls set for each header the answer carries besides its
// content type, length and x-weft-error.
func (e *MeshError) extra(set func(name, value string)) {
	if e.RetryAfter != "" {
		set("Retry-After", e.RetryAfter)
	}
	if e.Location != "" {
		set("Location", e.Location)
	}
	if f := e.Fallback; f != nil {
		for k, vs := range f.Headers {
			switch k {
			case "Content-Type", "Content-Length", HeaderError:
				continue
			}
			for _, v := range vs {
				set(k, v)
			}
		}
	}
}

// Error is the reason and the message.
func (e *MeshError) Error() string { return e.Reason + ": " + e.Message }

// body is the JSON body of the error, newline-terminated.
func (e *MeshError) body() []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // "<service>" stays readable
	_ = enc.Encode(e)        // plain strings only: cannot fail
	return buf.Bytes()
}

// GRPCCode is the gRPC status of a mesh error, as gRPC maps HTTP
// statuses (doc/http-grpc-status-mapping.md), except that a timeout is
// DEADLINE_EXCEEDED, what the caller's own deadline would give.
func (e *MeshError) GRPCCode() string {
	if e.GRPC != "" {
		return e.GRPC
	}
	if e.Reason == ReasonUpstreamTimeout {
		return "4" // DEADLINE_EXCEEDED
	}
	switch e.Status {
	case http.StatusBadRequest, http.StatusRequestHeaderFieldsTooLarge:
		return "13" // INTERNAL
	case http.StatusUnauthorized:
		return "16" // UNAUTHENTICATED
	case http.StatusForbidden:
		return "7" // PERMISSION_DENIED
	case http.StatusNotFound:
		return "12" // UNIMPLEMENTED
	case http.StatusMethodNotAllowed:
		return "12"
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return "14" // UNAVAILABLE
	}
	return "2" // UNKNOWN
}

// grpcMessage is the grpc-message of a mesh error, percent-encoded as
// gRPC over HTTP/2 requires.
func (e *MeshError) grpcMessage() string {
	msg := e.Reason + ": " + e.Message
	for i := 0; i < len(msg); i++ {
		if c := msg[i]; c < ' ' || c > '~' || c == '%' {
			return percentEncode(msg)
		}
	}
	return msg
}

func percentEncode(s string) string {
	const hex = "0123456789ABCDEF"
	out := make([]byte, 0, len(s)+16)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < ' ' || c > '~' || c == '%' {
			out = append(out, '%', hex[c>>4], hex[c&15])
		} else {
			out = append(out, c)
		}
	}
	return string(out)
}

// WriteH1 writes the error as an HTTP/1.1 response.
func (e *MeshError) WriteH1(bw *bufio.Writer, closing bool) {
	ctype, body := e.payload()
	status := e.status()
	bw.WriteString("HTTP/1.1 ")
	bw.WriteString(strconv.Itoa(status))
	bw.WriteByte(' ')
	bw.WriteString(http.StatusText(status))
	bw.WriteString("\r\nContent-Type: ")
	bw.WriteString(ctype)
	if e.Reason != "" {
		bw.WriteString("\r\nX-Weft-Error: ")
		bw.WriteString(e.Reason)
	}
	e.extra(func(name, value string) {
		bw.WriteString("\r\n")
		bw.WriteString(name)
		bw.WriteString(": ")
		bw.WriteString(value)
	})
	bw.WriteString("\r\nContent-Length: ")
	bw.WriteString(strconv.Itoa(len(body)))
	if closing {
		bw.WriteString("\r\nConnection: close")
	}
	bw.WriteString("\r\n\r\n")
	bw.Write(body)
}

// WriteStd writes the error through net/http; grpc: as a trailers-only
// gRPC response. It returns the HTTP status sent.
func (e *MeshError) WriteStd(w http.ResponseWriter, grpc bool) int {
	h := w.Header()
	if e.Reason != "" {
		h.Set(HeaderError, e.Reason)
	}
	h.Del("Content-Length")
	if grpc {
		h.Set("Content-Type", "application/grpc")
		h.Set("Grpc-Status", e.GRPCCode())
		h.Set("Grpc-Message", e.grpcMessage())
		w.WriteHeader(http.StatusOK)
		return http.StatusOK
	}
	ctype, body := e.payload()
	h.Set("Content-Type", ctype)
	e.extra(func(name, value string) { h.Add(name, value) })
	status := e.status()
	w.WriteHeader(status)
	w.Write(body)
	return status
}

// H2Parts is the error as an HTTP/2 response: its header block, and the
// body that follows it (nil for gRPC, whose answer is trailers-only and
// ends with the block).
func (e *MeshError) H2Parts(grpc bool) (fields []hpack.HeaderField, body []byte) {
	if grpc {
		return []hpack.HeaderField{
			{Name: ":status", Value: "200"},
			{Name: "content-type", Value: "application/grpc"},
			{Name: "grpc-status", Value: e.GRPCCode()},
			{Name: "grpc-message", Value: e.grpcMessage()},
			{Name: "x-weft-error", Value: e.Reason},
		}, nil
	}
	ctype, body := e.payload()
	fields = []hpack.HeaderField{
		{Name: ":status", Value: strconv.Itoa(e.status())},
		{Name: "content-type", Value: ctype},
	}
	if e.Reason != "" {
		fields = append(fields, hpack.HeaderField{Name: "x-weft-error", Value: e.Reason})
	}
	e.extra(func(name, value string) {
		fields = append(fields, hpack.HeaderField{Name: strings.ToLower(name), Value: value})
	})
	return append(fields, hpack.HeaderField{Name: "content-length", Value: strconv.Itoa(len(body))}), body
}
