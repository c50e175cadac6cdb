package http1

import (
	"io"
	"net"
	"net/http"
	"net/url"

	"github.com/weftmesh/weft/internal/h1"
	"github.com/weftmesh/weft/internal/proxy/plan"
)

// mirror hands the request to its route rule's mirrors before the first
// try (plan.Routed.SendMirrors): at once when it has no body; a body
// with a Content-Length of at most plan.MaxMirrorBody is read whole
// first, and the tries send it from there (resend says whether the plan
// may send it again). A chunked body, one behind Expect: 100-continue
// and a larger one are not mirrored (counted), nor is an upgrade. It
// reports false when the client went away while its body was read.
func (ex *exchange) mirror() bool {
	req, r := &ex.cc.req, &ex.routed
	switch {
	case len(req.Upgrade()) > 0:
		return true
	case !hasBody(req):
		if head := mirrorHead(req, ex.cc.IP, ex.cc.newID); head != nil {
			r.SendMirrors(head, nil)
		}
		return true
	case req.Chunked || req.ExpectContinue:
		r.DropMirrors(plan.MirrorBodyStreamed)
		return true
	case req.ContentLength > plan.MaxMirrorBody:
		r.DropMirrors(plan.MirrorBodyTooLarge)
		return true
	}
	ex.kept = getKept(int(req.ContentLength))
	if _, err := io.ReadFull(ex.cc.BR, *ex.kept); err != nil {
		r.DropMirrors(plan.MirrorIncomplete)
		ex.status = plan.StatusClientGone
		return false
	}
	if req.ContentLength <= ex.k.KeepBody() {
		ex.k.Kept()
		ex.resend = true
	}
	if head := mirrorHead(req, ex.cc.IP, ex.cc.newID); head != nil {
		r.SendMirrors(head, *ex.kept)
	}
	return true
}

// mirrorHead is req as a net/http request for a mirror: its end-to-end
// fields, origin-form target and host, from clientIP (nil: a target
// that does not parse, not mirrored).
func mirrorHead(req *h1.Head, clientIP, newID []byte) *http.Request {
	u, err := url.ParseRequestURI(string(originForm(req.Target())))
	if err != nil {
		return nil
	}
	h := make(http.Header, req.NumFields())
	for i := 0; i < req.NumFields(); i++ {
		name, value := req.FieldAt(i)
		if plan.IsHopByHop(name) || req.NamedByConnection(name) {
			continue
		}
		k := http.CanonicalHeaderKey(string(name))
		h[k] = append(h[k], string(value))
	}
	delete(h, "Host")
	if newID != nil { // the id this hop made for the request: its copies carry it too
		h[plan.RequestIDHeader] = []string{string(newID)}
	}
	host, _ := destinationOf(req)
	return &http.Request{Method: string(req.Method()), URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Host: string(host), RemoteAddr: net.JoinHostPort(string(clientIP), "0")}
}
