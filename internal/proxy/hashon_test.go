package proxy

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/weftmesh/weft/internal/snapshot"
)

// TestRingHashOnCookieEveryEngine: with ring-hash on a cookie, requests
// with the same cookie go to the same instance, on every engine, wherever
// the cookie sits among the request's Cookie fields (HTTP/2 clients may
// split them); different values spread over the instances. On source,
// every request from this one client goes to one instance.
func TestRingHashOnCookieEveryEngine(t *testing.T) {
	for _, engine := range engineNames {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			svc := &snapshot.Service{Name: "svc"}
			for i := range 4 {
				name := fmt.Sprintf("svc-%d", i)
				svc.Endpoints = append(svc.Endpoints, snapshot.Endpoint{Instance: name, Ready: true,
					Address: serveH2C(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(name)) }))})
			}
			for _, on := range []snapshot.HashOn{{Cookie: "session"}, {Source: true}} {
				p := testPolicy()
				p.Resource = "TrafficPolicy/svc"
				p.LoadBalancer = snapshot.LoadBalancer{Policy: "ring-hash", HashOn: on}
				svc.Policy = p
				addr, rt, _, _ := policyOutbound(t, engine, svc)
				owners := map[string]string{} // session -> instance
				for i := range 40 {
					session := fmt.Sprintf("s%d", i%20)
					req := newH2Request(t, http.MethodGet, addr, "svc", "/", nil)
					if i%2 == 0 {
						req.Header.Set("Cookie", "theme=dark; session="+session)
					} else {
						req.Header["Cookie"] = []string{"theme=dark", "session=" + session + "; lang=en"}
					}
					resp, body := h2Do(t, rt, req)
					if resp.StatusCode != http.StatusOK {
						t.Fatalf("%+v: got %d %s", on, resp.StatusCode, body)
					}
					key := session
					if on.Source {
						key = "this client"
					}
					if o, ok := owners[key]; ok && o != string(body) {
						t.Fatalf("%+v: %s went to %s, then to %s", on, key, o, body)
					}
					owners[key] = string(body)
				}
				distinct := map[string]bool{}
				for _, o := range owners {
					distinct[o] = true
				}
				if on.Cookie != "" && len(distinct) < 3 {
					t.Errorf("20 sessions went to %d instances (%v), want them spread", len(distinct), owners)
				}
			}
		})
	}
}
