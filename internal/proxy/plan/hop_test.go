package plan

import (
	"net/http"
	"slices"
	"testing"
)

func TestRemoveHopHeaders(t *testing.T) {
	endToEnd := http.Header{
		"Content-Type":  {"text/plain"},
		"Authorization": {"Bearer x"},
		"X-Request-Id":  {"42"},
		"Cache-Control": {"no-cache"},
	}
	tests := []struct {
		name string
		hop  http.Header // removed, added to the end-to-end ones
	}{
		{"standard hop-by-hop", http.Header{
			"Connection": {"keep-alive"}, "Proxy-Connection": {"keep-alive"}, "Keep-Alive": {"timeout=5"},
			"Proxy-Authenticate": {"Basic"}, "Proxy-Authorization": {"Basic eA=="}, "Te": {"trailers"},
			"Trailer": {"X-Sum"}, "Transfer-Encoding": {"chunked"}, "Upgrade": {"websocket"},
		}},
		{"named by Connection", http.Header{"Connection": {"X-Secret, x-lower"}, "X-Secret": {"1"}, "X-Lower": {"2"}}},
		{"named by several Connection lines", http.Header{"Connection": {"X-A", " X-B ,", "close"}, "X-A": {"1"}, "X-B": {"2"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := endToEnd.Clone()
			for k, v := range tt.hop {
				h[k] = v
			}
			RemoveHopHeaders(h)
			var got, want []string
			for k := range h {
				got = append(got, k)
			}
			for k := range endToEnd {
				want = append(want, k)
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("headers left: got %v, want %v", got, want)
			}
		})
	}
}
