package telemetry

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func get(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return resp.StatusCode, string(b), resp.Header
}

func TestAdminEndpoints(t *testing.T) {
	reg := NewRegistry()
	hits := prometheus.NewCounter(prometheus.CounterOpts{Name: "weft_test_hits_total", Help: "Test counter."})
	reg.MustRegister(hits)
	hits.Add(3)
	var ready atomic.Bool
	admin := Admin{
		Registry: reg,
		Ready: func() Status {
			return Status{Ready: ready.Load(), Detail: map[string]any{"waitingFor": "the app at <127.0.0.1:8080>"}}
		},
		Config: func() any { return map[string]string{"service": "catalog"} },
	}
	srv := httptest.NewServer(admin.Mux())
	defer srv.Close()

	tests := []struct {
		path     string
		ready    bool
		wantCode int
		wantBody string
	}{
		{"/healthz", false, 200, "ok\n"},
		{"/readyz", false, 503, `"ready": false`},
		{"/readyz", true, 200, `"ready": true`},
		// No HTML escaping in JSON bodies.
		{"/readyz", true, 200, `"waitingFor": "the app at <127.0.0.1:8080>"`},
		{"/metrics", false, 200, "weft_test_hits_total 3"},
		{"/metrics", false, 200, "go_goroutines "},
		{"/config", false, 200, `"service": "catalog"`},
		{"/debug/pprof/", false, 200, "goroutine"},
	}
	for _, tt := range tests {
		ready.Store(tt.ready)
		code, body, _ := get(t, srv.URL+tt.path)
		if code != tt.wantCode || !strings.Contains(body, tt.wantBody) {
			t.Errorf("GET %s (ready %v): got %d %.300q, want %d containing %q", tt.path, tt.ready, code, body, tt.wantCode, tt.wantBody)
		}
	}
	if _, _, h := get(t, srv.URL+"/readyz"); h.Get("Content-Type") != "application/json" {
		t.Errorf("readyz Content-Type: got %q, want application/json", h.Get("Content-Type"))
	}
	resp, err := http.Post(srv.URL+"/healthz", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz: got %d, want 405", resp.StatusCode)
	}
}

func TestAdminWithoutConfig(t *testing.T) {
	srv := httptest.NewServer(Admin{Registry: prometheus.NewRegistry(), Ready: func() Status { return Status{Ready: true} }}.Mux())
	defer srv.Close()
	if code, _, _ := get(t, srv.URL+"/config"); code != http.StatusNotFound {
		t.Errorf("GET /config without a Config func: got %d, want 404", code)
	}
}

func TestWriteJSONKeepsMarkup(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteJSON(rec, http.StatusUnprocessableEntity, map[string]string{"error": `spec.endpoints[0]: "<none>" & more`})
	body := rec.Body.String()
	if strings.Contains(body, `\u003c`) || strings.Contains(body, `\u0026`) {
		t.Errorf("body: got %s, want < and & unescaped", body)
	}
	var back map[string]string
	if err := json.Unmarshal(rec.Body.Bytes(), &back); err != nil || back["error"] != `spec.endpoints[0]: "<none>" & more` {
		t.Errorf("round trip: got (%v, %v), want the same message", back, err)
	}
	if rec.Code != http.StatusUnprocessableEntity {
		t.Errorf("status: got %d, want 422", rec.Code)
	}
}

func TestNewLoggerLevel(t *testing.T) {
	var buf bytes.Buffer
	log := NewLogger(&buf, slog.LevelWarn)
	log.Info("hidden")
	log.Warn("shown", "k", "v")
	if got := buf.String(); strings.Contains(got, "hidden") || !strings.Contains(got, `level=WARN msg=shown k=v`) {
		t.Errorf("log at warn: got %q, want only the warning", got)
	}
}
