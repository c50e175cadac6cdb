package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/weftmesh/weft/internal/api"
)

// apiError is an answer of the control plane's API other than 200: its
// status and message, passed on to the page as they are.
type apiError struct {
	status int
	path   string
	msg    string
}

func (e *apiError) Error() string { return fmt.Sprintf("GET %s: %s", e.path, e.msg) }

// recorder takes one answer of the API in memory.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(p)
}
func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

// get asks the API, in process, for GET path (with its query) and
// decodes the JSON answer into v.
func (h *Handler) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, path, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	rec := &recorder{header: http.Header{}}
	h.api.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	if rec.status != http.StatusOK {
		var e api.Error
		msg := http.StatusText(rec.status)
		if json.Unmarshal(rec.body.Bytes(), &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return &apiError{status: rec.status, path: path, msg: msg}
	}
	if err := json.Unmarshal(rec.body.Bytes(), v); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}
