package demo

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"
)

func TestAppsPassTraceHeadersOn(t *testing.T) {
	// The sidecar's place: a proxy that records what the app sends, and
	// answers as ratings would.
	got := make(chan http.Header, 1)
	sidecar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "ratings" {
			t.Errorf("catalog called %q, want ratings", r.Host)
		}
		got <- r.Header.Clone()
		w.Write([]byte(`{"ratings":{}}`))
	}))
	defer sidecar.Close()
	proxy, _ := url.Parse(sidecar.URL)
	tr := &http.Transport{Proxy: http.ProxyURL(proxy)}
	defer tr.CloseIdleConnections()
	catalog := &app{service: "catalog", version: "v1", instance: "catalog-v1", client: &http.Client{Transport: tr, Timeout: 5 * time.Second}}

	in := httptest.NewRequest(http.MethodGet, "http://catalog/items", nil)
	sent := map[string][]string{
		"traceparent":       {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		"tracestate":        {"weft=1", "other=2"},
		"b3":                {"4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1"},
		"x-b3-traceid":      {"4bf92f3577b34da6a3ce929d0e0e4736"},
		"x-b3-spanid":       {"00f067aa0ba902b7"},
		"x-b3-parentspanid": {"00f067aa0ba902b6"},
		"x-b3-sampled":      {"1"},
		"x-b3-flags":        {"1"},
		"x-request-id":      {"req-42"},
		"x-weft-timeout-ms": {"900"},
	}
	for k, vs := range sent {
		for _, v := range vs {
			in.Header.Add(k, v)
		}
	}
	in.Header.Set("Cookie", "session=secret")
	in.Header.Set("X-User", "beta")
	w := httptest.NewRecorder()
	catalog.handler().ServeHTTP(w, in)
	if w.Code != http.StatusOK {
		t.Fatalf("catalog: got %d %s", w.Code, w.Body)
	}
	h := <-got
	for k, want := range sent {
		if vs := h.Values(k); len(vs) != len(want) || (len(vs) > 0 && vs[0] != want[0]) || (len(vs) > 1 && vs[1] != want[1]) {
			t.Errorf("%s on the call to ratings: got %q, want %q", k, vs, want)
		}
	}
	for _, k := range []string{"Cookie", "X-User"} {
		if v := h.Get(k); v != "" {
			t.Errorf("%s on the call to ratings: got %q, want it not passed on", k, v)
		}
	}
	for _, k := range passedOn {
		if http.CanonicalHeaderKey(k) != k {
			t.Errorf("passedOn has %q, want it as Go writes it: %q", k, http.CanonicalHeaderKey(k))
		}
	}
}
