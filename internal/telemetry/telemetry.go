// Package telemetry builds what every Weft process reports through: the
// structured logger, the Prometheus registry, the admin endpoints
// (/healthz, /readyz, /metrics, /config, pprof), and the OpenTelemetry
// tracer provider that sends spans by OTLP (tracing.go).
package telemetry

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewLogger returns a text logger at level writing to w.
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// NewRegistry returns a Prometheus registry with the Go runtime and
// process collectors; each process owns one and passes it down.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// Status is a readiness answer: Ready decides 200 or 503, Detail is shown.
type Status struct {
	Ready  bool `json:"ready"`
	Detail any  `json:"detail,omitempty"`
}

// Admin describes what an admin mux serves.
type Admin struct {
	Registry *prometheus.Registry
	Ready    func() Status
	Config   func() any // may be nil
}

// Mux returns the admin handlers; callers may add more.
func (a Admin) Mux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		st := a.Ready()
		code := http.StatusOK
		if !st.Ready {
			code = http.StatusServiceUnavailable
		}
		WriteJSON(w, code, st)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.Registry, promhttp.HandlerOpts{}))
	if a.Config != nil {
		mux.HandleFunc("GET /config", func(w http.ResponseWriter, r *http.Request) {
			WriteJSON(w, http.StatusOK, a.Config())
		})
	}
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// WriteJSON writes v as indented JSON with status code. Characters such as
// < > & stay as they are (no \u003c): these bodies are read by people and
// tools, never embedded in HTML.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
