// Package demo holds the sample services of `weft demo` and the code that
// runs them, each instance under its own sidecar, in one process:
//
//	load --> web --> catalog (v1, v2) --> ratings
//
// The apps are plain HTTP servers that call each other as http://<service>/
// through their own sidecar, exactly as an unmodified app would with
// HTTP_PROXY set.
package demo

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// app is one sample service instance.
type app struct {
	service, version, instance string
	client                     *http.Client // goes through this instance's sidecar
}

func newApp(service, version, instance, outbound string) *app {
	proxy, _ := url.Parse("http://" + outbound)
	return &app{service: service, version: version, instance: instance, client: &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{Proxy: http.ProxyURL(proxy), MaxIdleConnsPerHost: 8},
	}}
}

func (a *app) handler() http.Handler {
	mux := http.NewServeMux()
	switch a.service {
	case "ratings":
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			a.reply(w, map[string]any{"ratings": map[string]int{"loom": 5, "shuttle": 4, "spindle": 3}})
		})
	case "catalog":
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			var ratings any
			if err := a.call("http://ratings/", &ratings); err != nil {
				ratings = "unavailable: " + err.Error()
			}
			items := []string{"loom", "shuttle", "spindle"}
			if a.version == "v2" {
				items = append(items, "bobbin")
			}
			a.reply(w, map[string]any{"items": items, "ratings": ratings})
		})
	case "web":
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			var catalog map[string]any
			if err := a.call("http://catalog/items", &catalog); err != nil {
				http.Error(w, "catalog unavailable: "+err.Error(), http.StatusBadGateway)
				return
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprintf(w, "web (%s) got the catalog from %v (%v): items %v\n",
				a.instance, catalog["instance"], catalog["version"], catalog["items"])
		})
	}
	return mux
}

func (a *app) call(u string, into any) error {
	resp, err := a.client.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s %s", u, resp.Status, resp.Header.Get("X-Weft-Error"))
	}
	return json.Unmarshal(b, into)
}

func (a *app) reply(w http.ResponseWriter, body map[string]any) {
	body["service"], body["version"], body["instance"] = a.service, a.version, a.instance
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(body)
}
