// Package demo holds the sample services of `weft demo` and the code that
// runs them, each instance under its own sidecar, in one process:
//
//	load --> web --> catalog (v1, v2) --> ratings
//	          \--tcp--> ledger
//
// The apps are plain HTTP servers that call each other as http://<service>/
// through their own sidecar, exactly as an unmodified app would with
// HTTP_PROXY set. ledger is a line-based TCP service in which the server
// speaks first (as SMTP does); web reaches it through an upstream port of
// its sidecar, as it would a database.
package demo

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/weftmesh/weft/internal/sidecar"
)

// app is one sample service instance.
type app struct {
	service, version, instance string
	client                     *http.Client // goes through this instance's sidecar
	upstreams                  []string     // its sidecar's upstream listeners (web: ledger)
}

func newApp(service, version, instance string, sc *sidecar.Sidecar) *app {
	out, _, _ := sc.Addrs()
	proxy, _ := url.Parse("http://" + out)
	return &app{service: service, version: version, instance: instance, upstreams: sc.UpstreamAddrs(), client: &http.Client{
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
			if err := a.call(r, "http://ratings/", &ratings); err != nil {
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
			if err := a.call(r, "http://catalog/items", &catalog); err != nil {
				http.Error(w, "catalog unavailable: "+err.Error(), http.StatusBadGateway)
				return
			}
			balance, err := a.ledger("BALANCE loom")
			if err != nil {
				balance = "unavailable: " + err.Error()
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprintf(w, "web (%s) got the catalog from %v (%v): items %v; ledger says %q\n",
				a.instance, catalog["instance"], catalog["version"], catalog["items"], balance)
		})
	}
	return mux
}

// passedOn are the fields of the request being served that the apps copy
// to the calls they make for it, as an app in a mesh must: the time the
// caller waits, so the mesh stops waiting downstream when the caller
// does; the request id; and the trace context (W3C and B3), so that the
// sidecars' spans of the calls join the trace of the request.
var passedOn = []string{
	"X-Weft-Timeout-Ms",
	"X-Request-Id",
	"Traceparent", "Tracestate",
	"B3", "X-B3-Traceid", "X-B3-Spanid", "X-B3-Parentspanid", "X-B3-Sampled", "X-B3-Flags",
}

// passOn copies the passedOn fields of in to out.
func passOn(out, in http.Header) {
	for _, k := range passedOn {
		if v := in.Values(k); len(v) > 0 {
			out[k] = append([]string(nil), v...)
		}
	}
}

// call GETs u through the sidecar on behalf of the request in, and
// decodes the JSON answer into into.
func (a *app) call(in *http.Request, u string, into any) error {
	req, err := http.NewRequestWithContext(in.Context(), http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	passOn(req.Header, in.Header)
	resp, err := a.client.Do(req)
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

// ledger asks the ledger one question over TCP, through the sidecar's
// upstream port: read its greeting, send the command, read the answer.
func (a *app) ledger(cmd string) (string, error) {
	c, err := net.DialTimeout("tcp", a.upstreams[0], 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	if _, err := br.ReadString('\n'); err != nil {
		return "", fmt.Errorf("no greeting: %w", err)
	}
	fmt.Fprintf(c, "%s\r\nQUIT\r\n", cmd)
	line, err := br.ReadString('\n')
	return strings.TrimSpace(line), err
}

// serveLedger is the ledger: it greets, then answers BALANCE <item> and
// QUIT, one command a line, until ctx ends.
func serveLedger(ctx context.Context, ln net.Listener, id string) {
	go func() { <-ctx.Done(); ln.Close() }()
	balances := map[string]int{"loom": 42, "shuttle": 7, "spindle": 19}
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			stop := context.AfterFunc(ctx, func() { c.Close() })
			defer stop()
			fmt.Fprintf(c, "220 %s ready\r\n", id)
			sc := bufio.NewScanner(c)
			for sc.Scan() {
				f := strings.Fields(sc.Text())
				switch {
				case len(f) == 2 && strings.EqualFold(f[0], "BALANCE"):
					if n, ok := balances[f[1]]; ok {
						fmt.Fprintf(c, "OK %s %d\r\n", f[1], n)
					} else {
						fmt.Fprintf(c, "404 no item %q\r\n", f[1])
					}
				case len(f) == 1 && strings.EqualFold(f[0], "QUIT"):
					fmt.Fprintf(c, "221 bye\r\n")
					return
				default:
					fmt.Fprintf(c, "500 commands: BALANCE <item>, QUIT\r\n")
				}
			}
		}()
	}
}

func (a *app) reply(w http.ResponseWriter, body map[string]any) {
	body["service"], body["version"], body["instance"] = a.service, a.version, a.instance
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(body)
}
