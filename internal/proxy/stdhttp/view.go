package stdhttp

import (
	"net"
	"net/http"

	"github.com/weftmesh/weft/internal/proxy/plan"
	"github.com/weftmesh/weft/internal/request"
)

var _ request.View = (*stdView)(nil)

// stdView is the view of a net/http request (the net/http path
// allocates per request anyway; one more small value is its price).
type stdView struct{ r *http.Request }

func (v *stdView) Method() []byte { return plan.BytesOf(v.r.Method) }
func (v *stdView) Authority() []byte {
	host, _ := destination(v.r)
	return plan.BytesOf(host)
}
func (v *stdView) Path() []byte           { return plan.BytesOf(v.r.URL.RequestURI()) }
func (v *stdView) Header(n string) []byte { return plan.BytesOf(v.r.Header.Get(n)) }
func (v *stdView) Replayable() bool {
	return (v.r.Body == nil || v.r.Body == http.NoBody) && request.Safe(v.Method())
}
func (v *stdView) GRPC() bool { return isGRPC(v.r) }

func (v *stdView) Cookie(name string) []byte {
	for _, f := range v.r.Header["Cookie"] {
		if c := request.CookieValue(plan.BytesOf(f), name); c != nil {
			return c
		}
	}
	return nil
}

func (v *stdView) Source() []byte {
	host, _, err := net.SplitHostPort(v.r.RemoteAddr)
	if err != nil {
		return nil
	}
	return plan.BytesOf(host)
}
