// Package otlp is the control plane's OTLP/HTTP receiver of spans, into
// a traces.Store. It is apart from package traces so that what reads
// traces (the CLI, a sidecar-only build) links no OTLP collector, and so
// no gRPC.
package otlp

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/collect/traces"
)

// DefaultMaxBody is the most bytes of an export the Handler reads, as
// sent and again once decompressed.
const DefaultMaxBody = 16 << 20

// Handler serves OTLP/HTTP trace exports (POST /v1/traces): a
// collector.trace.v1.ExportTraceServiceRequest as binary protobuf
// (application/x-protobuf) or as OTLP's JSON (application/json), gzip
// or not (Content-Encoding). It answers an ExportTraceServiceResponse in
// the same encoding, with a partial success when spans were rejected;
// 400 for a body that does not decode, 413 for one over MaxBody and 415
// for another content type or encoding, the message in a google.rpc.Status.
type Handler struct {
	Store   *traces.Store
	MaxBody int64 // 0: DefaultMaxBody
}

// Media types of OTLP/HTTP.
const (
	typeProtobuf = "application/x-protobuf"
	typeJSON     = "application/json"
)

// errTooLarge is a body past MaxBody.
var errTooLarge = errors.New("body too large")

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || (mt != typeProtobuf && mt != typeJSON) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusUnsupportedMediaType)
		fmt.Fprintf(w, "Content-Type %q: want %s or %s\n", r.Header.Get("Content-Type"), typeProtobuf, typeJSON)
		return
	}
	asJSON := mt == typeJSON
	body, err := h.read(w, r)
	switch {
	case errors.Is(err, errTooLarge):
		writeStatus(w, asJSON, http.StatusRequestEntityTooLarge, codes.InvalidArgument, err.Error())
		return
	case errors.Is(err, errEncoding):
		writeStatus(w, asJSON, http.StatusUnsupportedMediaType, codes.InvalidArgument, err.Error())
		return
	case err != nil:
		writeStatus(w, asJSON, http.StatusBadRequest, codes.InvalidArgument, "body: "+err.Error())
		return
	}
	var req coltracepb.ExportTraceServiceRequest
	if asJSON {
		err = unmarshalJSON(body, &req)
	} else {
		err = proto.Unmarshal(body, &req)
	}
	if err != nil {
		writeStatus(w, asJSON, http.StatusBadRequest, codes.InvalidArgument, "body: not an ExportTraceServiceRequest: "+err.Error())
		return
	}
	var resp coltracepb.ExportTraceServiceResponse
	if rejected, reason := h.Store.Add(req.ResourceSpans); rejected > 0 {
		resp.PartialSuccess = &coltracepb.ExportTracePartialSuccess{RejectedSpans: int64(rejected), ErrorMessage: reason}
	}
	write(w, asJSON, http.StatusOK, &resp)
}

// errEncoding is a Content-Encoding other than gzip or identity.
var errEncoding = errors.New("unsupported Content-Encoding")

// read reads the body, gunzipped if it says so, up to MaxBody bytes.
func (h *Handler) read(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	limit := h.MaxBody
	if limit <= 0 {
		limit = DefaultMaxBody
	}
	var src io.Reader = http.MaxBytesReader(w, r.Body, limit)
	switch enc := r.Header.Get("Content-Encoding"); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(src)
		if err != nil {
			return nil, h.tooLarge(err, limit, "gzip: ")
		}
		defer zr.Close()
		src = zr
	default:
		return nil, fmt.Errorf("%w %q: want gzip or none", errEncoding, enc)
	}
	b, err := io.ReadAll(io.LimitReader(src, limit+1))
	if err != nil {
		return nil, h.tooLarge(err, limit, "")
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: decompressed past %d bytes", errTooLarge, limit)
	}
	return b, nil
}

// tooLarge names a body cut by MaxBytesReader as too large; other errors
// it wraps with prefix.
func (h *Handler) tooLarge(err error, limit int64, prefix string) error {
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return fmt.Errorf("%w: over %d bytes", errTooLarge, limit)
	}
	return errors.New(prefix + err.Error())
}

func writeStatus(w http.ResponseWriter, asJSON bool, code int, rpc codes.Code, msg string) {
	write(w, asJSON, code, &statuspb.Status{Code: int32(rpc), Message: msg})
}

func write(w http.ResponseWriter, asJSON bool, code int, m proto.Message) {
	var b []byte
	if asJSON {
		w.Header().Set("Content-Type", typeJSON)
		b, _ = protojson.Marshal(m)
	} else {
		w.Header().Set("Content-Type", typeProtobuf)
		b, _ = proto.Marshal(m)
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(code)
	w.Write(b)
}

// unmarshalJSON decodes OTLP's JSON. It differs from protobuf's canonical
// JSON in one way: trace and span ids are hex, not base64; they are
// turned into base64 before protojson decodes the rest.
func unmarshalJSON(b []byte, m proto.Message) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // 64-bit timestamps stay exact
	var v any
	if err := dec.Decode(&v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("more than one JSON value")
	}
	hexIDsToBase64(v)
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(b, m)
}

// idFields are the fields that hold ids, in both spellings protojson reads.
var idFields = map[string]bool{
	"traceId": true, "spanId": true, "parentSpanId": true,
	"trace_id": true, "span_id": true, "parent_span_id": true,
}

func hexIDsToBase64(v any) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && idFields[k] {
				if (len(s) == 32 || len(s) == 16) && isHex(s) {
					raw, _ := hex.DecodeString(s)
					x[k] = base64.StdEncoding.EncodeToString(raw)
				}
				continue
			}
			hexIDsToBase64(e)
		}
	case []any:
		for _, e := range x {
			hexIDsToBase64(e)
		}
	}
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
