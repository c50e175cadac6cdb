// Package dashboard is the management platform in a browser, served by
// the control plane under /ui/: pages of plain HTML, CSS and JavaScript
// modules embedded in the binary (assets/, nothing to build), and the
// JSON and server-sent events they read, made on the server from the
// control plane's own API and from the sidecars' admin listeners, so
// that the browser only ever talks to the control plane's origin:
//
//	browser --GET /ui/...------------> Handler (same-origin check, CSP, read-only)
//	          /ui/             assets (index.html, app.js, pages/*.js, style.css)
//	          /ui/api/PAGE     one page's figures as JSON
//	          /ui/events?page= the same, pushed every Config.Interval (SSE)
//	Handler --in process-------------> Deps.API: GET /v1/stats, /v1/services,
//	                                   /v1/alerts, /v1/traces, /v1/resources, ...
//	        --HTTP, 2 s each-----------> each sidecar's admin /config, /recent, /explain
//
// It changes nothing: every request but GET and HEAD is refused, and so
// is any request another origin's page makes. It has no authentication
// of its own yet (the API has none either).
package dashboard

import (
	"embed"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

//go:embed assets
var assets embed.FS

// Config shapes the dashboard.
type Config struct {
	// Interval is how often open pages get new figures; 0 for 2s.
	Interval time.Duration
	// MaxStreams bounds the pages open at once (event streams); 0 for 64.
	MaxStreams int
}

// Default returns the documented defaults.
func Default() Config { return Config{Interval: 2 * time.Second, MaxStreams: 64} }

// Deps are what the dashboard reads.
type Deps struct {
	// API is the control plane's API, asked in process (GET /v1/...).
	API http.Handler
	// Logger gets what goes wrong; nil for none.
	Logger *slog.Logger
}

// Handler serves /ui/. Close ends the event streams it serves.
type Handler struct {
	cfg     Config
	api     http.Handler
	log     *slog.Logger
	mux     *http.ServeMux
	admin   *http.Client
	streams atomic.Int64
	token   atomic.Pointer[string] // the API token the figures ask for; nil: none
	done    chan struct{}
	once    sync.Once
}

// New makes the handler of /ui/.
func New(cfg Config, deps Deps) (*Handler, error) {
	if deps.API == nil {
		return nil, errors.New("dashboard: Deps.API is required")
	}
	if cfg.Interval == 0 {
		cfg.Interval = Default().Interval
	}
	if cfg.MaxStreams == 0 {
		cfg.MaxStreams = Default().MaxStreams
	}
	if cfg.Interval < 100*time.Millisecond || cfg.MaxStreams < 0 {
		return nil, errors.New("dashboard: Interval must be at least 100ms and MaxStreams not negative")
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	static, err := fs.Sub(assets, "assets")
	if err != nil {
		return nil, err
	}
	h := &Handler{cfg: cfg, api: deps.API, log: log.With("component", "dashboard"), done: make(chan struct{}),
		admin: &http.Client{Transport: adminTransport}}
	files := http.StripPrefix("/ui/", http.FileServerFS(static))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ui/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ui/" && strings.HasSuffix(r.URL.Path, "/") {
			refuse(w, http.StatusNotFound, "no page "+r.URL.Path+": the dashboard is at /ui/")
			return
		}
		files.ServeHTTP(w, r)
	})
	mux.HandleFunc("GET /ui/api/{page}", h.page)
	mux.HandleFunc("GET /ui/api/{page}/{name}", h.page)
	mux.HandleFunc("GET /ui/events", h.events)
	h.mux = mux
	return h, nil
}

// ServeHTTP answers a request for /ui/...: refused unless it is a GET or
// HEAD from the dashboard's own origin (or typed in), and always with
// the security headers.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	secure(w.Header())
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		refuse(w, http.StatusMethodNotAllowed, "the dashboard is read-only: "+r.Method+" is not served, only GET and HEAD")
		return
	}
	if err := sameOrigin(r); err != nil {
		refuse(w, http.StatusForbidden, err.Error())
		return
	}
	if err := h.authorized(r); err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="weft"`)
		refuse(w, http.StatusUnauthorized, err.Error())
		return
	}
	h.mux.ServeHTTP(w, r)
}

// RequireToken makes the figures (/ui/api/..., /ui/events) ask for the
// control plane's API token, as the API does; the pages' files stay
// open (they hold no figures).
func (h *Handler) RequireToken(token string) {
	if token == "" {
		h.token.Store(nil)
		return
	}
	h.token.Store(&token)
}

// Close ends the open event streams and makes new ones end at once; the
// control plane calls it as it shuts down.
func (h *Handler) Close() { h.once.Do(func() { close(h.done) }) }

// Streams is how many event streams are open now.
func (h *Handler) Streams() int { return int(h.streams.Load()) }

// Mount serves the dashboard on mux, the control plane's, under /ui/,
// reading its figures from mux itself,
// and returns it to be closed when the server shuts down. It panics only
// if the assets are not embedded, which the build prevents.
func Mount(mux *http.ServeMux, log *slog.Logger) *Handler {
	h, err := New(Default(), Deps{API: mux, Logger: log})
	if err != nil {
		panic(err)
	}
	mux.Handle("/ui/", h)
	return h
}
