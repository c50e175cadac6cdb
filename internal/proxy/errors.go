package proxy

import (
	"encoding/json"
	"net/http"
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

// MeshError is an answer the mesh makes itself, not the app.
type MeshError struct {
	Status   int    `json:"-"`
	Reason   string `json:"error"`
	Service  string `json:"service,omitempty"`
	Instance string `json:"instance,omitempty"`
	Message  string `json:"message"`
}

func (e *MeshError) Error() string { return e.Reason + ": " + e.Message }

// write sends the error as the response.
func (e *MeshError) write(w http.ResponseWriter) {
	h := w.Header()
	h.Set(HeaderError, e.Reason)
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	w.WriteHeader(e.Status)
	b, _ := json.Marshal(e)
	w.Write(append(b, '\n'))
}
