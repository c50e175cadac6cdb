package dashboard

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/telemetry"
)

// CSP is the Content-Security-Policy of every answer: scripts and styles
// only from the dashboard's own files (no inline script, no style
// attribute, no eval), data only from its own origin, never framed.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// secure sets the headers every answer carries.
func secure(h http.Header) {
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

// sameOrigin refuses a request that a page of another origin made: the
// browser says so in Sec-Fetch-Site (same-site, cross-site), or, where it
// does not send that, in an Origin other than the dashboard's own. A
// request with neither (curl, a URL typed in) is served.
func sameOrigin(r *http.Request) error {
	switch site := r.Header.Get("Sec-Fetch-Site"); site {
	case "", "same-origin", "none":
	default:
		return fmt.Errorf("the dashboard serves only its own pages: this request came from another site (Sec-Fetch-Site: %s); open http://%s/ui/ directly", site, r.Host)
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host != r.Host || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("the dashboard serves only its own pages: this request came from %s (Origin), not from http://%s; open http://%s/ui/ directly", origin, r.Host, r.Host)
	}
	return nil
}

// TokenCookie is the cookie the dashboard's pages keep the API token
// in once it is given (SameSite=Strict, path /ui/).
const TokenCookie = "weft_token"

// authorized refuses a request for figures without the API token, when
// the dashboard asks for one: in the TokenCookie cookie (what the pages
// send) or as Authorization: Bearer TOKEN.
func (h *Handler) authorized(r *http.Request) error {
	want := h.token.Load()
	if want == nil || !(strings.HasPrefix(r.URL.Path, "/ui/api/") || r.URL.Path == "/ui/events") {
		return nil
	}
	got := ""
	if c, err := r.Cookie(TokenCookie); err == nil {
		got = c.Value
	}
	if a := r.Header.Get("Authorization"); strings.HasPrefix(a, "Bearer ") {
		got = strings.TrimPrefix(a, "Bearer ")
	}
	if got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(*want)) == 1 {
		return nil
	}
	if got != "" {
		return errors.New("wrong API token for this control plane (the one in its data dir, file api-token, is asked for)")
	}
	return errors.New("the dashboard needs this control plane's API token, as the CLI does: give it on the page " +
		"(it is in the control plane's data dir, file api-token, and in the file weft control wrote for its user, ~/.config/weft/tokens/HOST_PORT)")
}

// refuse answers with an error in the API's form.
func refuse(w http.ResponseWriter, code int, msg string) {
	telemetry.WriteJSON(w, code, api.Error{Error: msg})
}
