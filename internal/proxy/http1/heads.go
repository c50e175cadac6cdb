package http1

import (
	"bufio"
	"bytes"
	"strconv"
	"time"

	"github.com/weftmesh/weft/internal/h1"
	"github.com/weftmesh/weft/internal/proxy/plan"
)

var (
	xffName       = []byte("X-Forwarded-For")
	timeoutName   = []byte(plan.TimeoutHeader)
	sourceName    = []byte(plan.SourceHeader)
	requestIDName = []byte(plan.RequestIDHeader)
	traceName     = []byte(plan.TraceParentHeader)
)

// ownFields are the fields this hop writes in place of the client's:
// the x-request-id it made (nil: the client's is passed on), and the
// try's traceparent (nil: the client's is passed on).
type ownFields struct{ id, traceparent []byte }

// writeRequestHead writes the head sent upstream: origin-form target,
// end-to-end fields, X-Forwarded-For with the client's address appended,
// the try's timeout for the next hop (plan.TimeoutHeader, when pass;
// the client's is never passed on as it came), the calling service
// (plan.SourceHeader, when source is set, in place of the client's), and
// the framing and upgrade fields this hop owns; a route rule's edits
// drop fields and write their own after the ones kept, and its rewrite
// replaces the target and the Host; own are the request id and trace
// context this hop writes in place of the client's.
func writeRequestHead(bw *bufio.Writer, req *h1.Head, clientIP []byte, timeout time.Duration, pass bool, source string, edits *plan.HeaderEdits, rw plan.Rewrite, own ownFields) {
	bw.Write(req.Method())
	bw.WriteByte(' ')
	if rw.Path != "" {
		bw.WriteString(rw.Path)
	} else {
		bw.Write(originForm(req.Target()))
	}
	bw.WriteString(" HTTP/1.1\r\n")
	hasHost := rw.Host != ""
	if hasHost {
		writeStringField(bw, "Host", rw.Host)
	}
	xff := 0
	for i := 0; i < req.NumFields(); i++ {
		name, value := req.FieldAt(i)
		if plan.IsHopByHop(name) || req.NamedByConnection(name) || edits.Drops(name) {
			continue
		}
		if bytes.EqualFold(name, xffName) {
			xff++
			continue
		}
		if len(name) == len(timeoutName) && bytes.EqualFold(name, timeoutName) {
			continue
		}
		if source != "" && len(name) == len(sourceName) && bytes.EqualFold(name, sourceName) {
			continue // replaced by this sidecar's own
		}
		if own.id != nil && len(name) == len(requestIDName) && bytes.EqualFold(name, requestIDName) {
			continue // an empty or oversized id, replaced by own.id
		}
		if own.traceparent != nil && len(name) == len(traceName) && bytes.EqualFold(name, traceName) {
			continue // the caller's span is this try's parent
		}
		if bytes.EqualFold(name, []byte("Host")) {
			if rw.Host != "" {
				continue // rewritten
			}
			hasHost = true
		}
		writeField(bw, name, value)
	}
	edits.Each(func(name, value string) { writeStringField(bw, name, value) })
	if !hasHost { // an HTTP/1.0 request in proxy form
		if host, proxyForm := destinationOf(req); proxyForm {
			writeField(bw, []byte("Host"), host)
		}
	}
	bw.WriteString("X-Forwarded-For: ")
	if xff > 0 && !edits.Drops(xffName) {
		for i := 0; i < req.NumFields(); i++ {
			if name, value := req.FieldAt(i); bytes.EqualFold(name, xffName) {
				bw.Write(value)
				bw.WriteString(", ")
			}
		}
	}
	bw.Write(clientIP)
	bw.WriteString("\r\n")
	if pass {
		bw.WriteString("X-Weft-Timeout-Ms: ")
		bw.Write(plan.AppendTimeoutHeader(bw.AvailableBuffer(), timeout))
		bw.WriteString("\r\n")
	}
	if own.id != nil {
		bw.WriteString("X-Request-Id: ")
		bw.Write(own.id)
		bw.WriteString("\r\n")
	}
	if own.traceparent != nil {
		bw.WriteString("Traceparent: ")
		bw.Write(own.traceparent)
		bw.WriteString("\r\n")
	}
	if source != "" {
		bw.WriteString("X-Weft-Source: ")
		bw.WriteString(source)
		bw.WriteString("\r\n")
	}
	if req.Chunked {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if up := req.Upgrade(); len(up) > 0 && req.NamedByConnection([]byte("Upgrade")) {
		bw.WriteString("Connection: Upgrade\r\n")
		writeField(bw, []byte("Upgrade"), up)
	}
	if req.TrailersOK {
		bw.WriteString("TE: trailers\r\n")
	}
	bw.WriteString("\r\n")
}

// writeResponseHead writes the head sent to the client, with a route
// rule's edits on a final response (nil for 1xx).
func writeResponseHead(bw *bufio.Writer, resp, req *h1.Head, closing bool, edits *plan.HeaderEdits) {
	bw.WriteString("HTTP/1.1 ")
	bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(resp.Status), 10))
	bw.WriteByte(' ')
	bw.Write(resp.Reason())
	bw.WriteString("\r\n")
	for i := 0; i < resp.NumFields(); i++ {
		name, value := resp.FieldAt(i)
		if plan.IsHopByHop(name) || resp.NamedByConnection(name) || edits.Drops(name) {
			continue
		}
		writeField(bw, name, value)
	}
	edits.Each(func(name, value string) { writeStringField(bw, name, value) })
	switch {
	case resp.Status == 101:
		bw.WriteString("Connection: Upgrade\r\n")
		writeField(bw, []byte("Upgrade"), resp.Upgrade())
	case resp.Status < 200:
	case closing:
		bw.WriteString("Connection: close\r\n")
	case req.Minor == 0:
		bw.WriteString("Connection: keep-alive\r\n")
	}
	if resp.Chunked && req.Minor == 1 {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	bw.WriteString("\r\n")
}

func writeField(bw *bufio.Writer, name, value []byte) {
	bw.Write(name)
	bw.WriteString(": ")
	bw.Write(value)
	bw.WriteString("\r\n")
}

func writeStringField(bw *bufio.Writer, name, value string) {
	bw.WriteString(name)
	bw.WriteString(": ")
	bw.WriteString(value)
	bw.WriteString("\r\n")
}
