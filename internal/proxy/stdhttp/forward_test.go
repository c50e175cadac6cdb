package stdhttp

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestServiceName(t *testing.T) {
	tests := []struct{ host, want string }{
		{"catalog", "catalog"},
		{"catalog:8080", "catalog"},
		{"Catalog.", "catalog"},
		{"CATALOG:80", "catalog"},
		{"catalog.:80", "catalog"},
		{"my-svc", "my-svc"},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			if got := serviceName(tt.host); got != tt.want {
				t.Errorf("serviceName(%q): got %q, want %q", tt.host, got, tt.want)
			}
		})
	}
}

func TestPrepare(t *testing.T) {
	tests := []struct {
		name       string
		remote     string
		in         http.Header
		wantXFF    string
		wantTE     string
		wantUpg    string
		wantAbsent []string
	}{
		{name: "first hop", remote: "10.1.2.3:5555", in: http.Header{}, wantXFF: "10.1.2.3"},
		{name: "appends", remote: "10.1.2.3:5555", in: http.Header{"X-Forwarded-For": {"203.0.113.9", "198.51.100.1"}},
			wantXFF: "203.0.113.9, 198.51.100.1, 10.1.2.3"},
		{name: "keeps TE trailers only", remote: "10.1.2.3:1", in: http.Header{"Te": {"trailers, deflate"}}, wantXFF: "10.1.2.3", wantTE: "trailers"},
		{name: "drops other TE", remote: "10.1.2.3:1", in: http.Header{"Te": {"deflate"}}, wantXFF: "10.1.2.3", wantAbsent: []string{"Te"}},
		{name: "keeps upgrade", remote: "10.1.2.3:1", in: http.Header{"Connection": {"keep-alive, Upgrade"}, "Upgrade": {"websocket"}, "Keep-Alive": {"1"}},
			wantXFF: "10.1.2.3", wantUpg: "websocket", wantAbsent: []string{"Keep-Alive"}},
		{name: "bad remote addr adds nothing", remote: "pipe", in: http.Header{}, wantAbsent: []string{"X-Forwarded-For"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/x", nil)
			r.RemoteAddr = tt.remote
			r.Header = tt.in
			prepare(r)
			if got := r.Header.Get("X-Forwarded-For"); got != tt.wantXFF {
				t.Errorf("X-Forwarded-For: got %q, want %q", got, tt.wantXFF)
			}
			if got := r.Header.Get("Te"); tt.wantTE != "" && got != tt.wantTE {
				t.Errorf("Te: got %q, want %q", got, tt.wantTE)
			}
			if tt.wantUpg != "" && (r.Header.Get("Upgrade") != tt.wantUpg || r.Header.Get("Connection") != "Upgrade") {
				t.Errorf("upgrade: got Connection %q Upgrade %q, want Upgrade %q", r.Header.Get("Connection"), r.Header.Get("Upgrade"), tt.wantUpg)
			}
			for _, k := range tt.wantAbsent {
				if v, ok := r.Header[k]; ok {
					t.Errorf("%s: got %q, want absent", k, v)
				}
			}
			if r.RequestURI != "" || r.URL.Scheme != "http" {
				t.Errorf("request: got RequestURI %q scheme %q, want \"\" and http", r.RequestURI, r.URL.Scheme)
			}
		})
	}
}
