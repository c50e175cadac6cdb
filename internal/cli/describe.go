package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/registry"
)

// How describe asks the sidecars: each admin /config within
// sidecarTimeout, at most sidecarFetches at a time.
const (
	sidecarTimeout = 2 * time.Second
	sidecarFetches = 8
)

// adminTransport reaches sidecars' admin listeners directly (HTTP_PROXY
// is for the app), one connection a request: describe asks each once.
var adminTransport = &http.Transport{
	Proxy:             nil,
	DialContext:       (&net.Dialer{Timeout: sidecarTimeout}).DialContext,
	DisableKeepAlives: true,
}

// serviceDescription is `weft describe service NAME` in JSON and YAML:
// the registry's view, then each sidecar's view of the service.
type serviceDescription struct {
	api.ServiceDetail
	Consumers []consumerView `json:"consumers,omitempty"`
}

// consumerView is the described service as one sidecar routes to it (its
// admin /config), or why that sidecar could not be asked.
type consumerView struct {
	Service   string             `json:"service"`
	ID        string             `json:"id"`
	Admin     string             `json:"admin,omitempty"`
	Error     string             `json:"error,omitempty"`   // the sidecar could not be asked
	Breaker   string             `json:"breaker,omitempty"` // closed, open, half-open; none without a circuit breaker
	Endpoints []consumerEndpoint `json:"endpoints,omitempty"`
}

// consumerEndpoint is one endpoint in a sidecar's /config.
type consumerEndpoint = api.EndpointState

// sidecarConfig is the part of a sidecar's /config that describe reads.
type sidecarConfig struct {
	Services map[string]struct {
		Breaker   string             `json:"breaker"`
		Endpoints []consumerEndpoint `json:"endpoints"`
	} `json:"services"`
}

// runDescribe is `weft describe service NAME`: the service as the
// registry has it, then each instance as every sidecar that routes to
// the service sees it.
func runDescribe(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "describe")
	control := controlFlag(fs)
	out := outputFlag(fs)
	rest, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := out.check(); err != nil {
		return err
	}
	if len(rest) != 2 {
		return usagef("describe: want describe service NAME, or describe KIND NAME (kinds: %s)", kindWords())
	}
	c := api.NewClient(*control)
	if !isServiceWord(rest[0]) {
		kind, ok := config.KindFor(rest[0])
		if !ok {
			return usagef("describe: unknown kind %q (service, or a kind: %s)", rest[0], kindWords())
		}
		return describeResource(ctx, e, c, out, kind, rest[1])
	}
	d, err := c.Service(ctx, rest[1])
	if err != nil {
		return err
	}
	proxies, err := c.Proxies(ctx, "")
	if err != nil {
		return fmt.Errorf("describe: list the sidecars: %w", err)
	}
	desc := serviceDescription{ServiceDetail: d, Consumers: consumers(ctx, proxies, d.Name)}
	return out.print(e.stdout, desc, func(tw *tabwriter.Writer) {
		registryTable(tw, d)
		for _, cv := range desc.Consumers {
			row(tw)
			consumerTable(tw, cv)
		}
	})
}

// registryTable is the registry's view of a service.
func registryTable(tw *tabwriter.Writer, d api.ServiceDetail) {
	ready := 0
	for _, in := range d.Instances {
		if in.Ready {
			ready++
		}
	}
	row(tw, "Name:", d.Name)
	row(tw, "Kind:", d.Kind)
	if len(d.Instances) > 0 || len(d.External) == 0 {
		row(tw, "Instances:", fmt.Sprintf("%d (%d ready)", len(d.Instances), ready))
	}
	if len(d.External) > 0 {
		row(tw, "Endpoints:", fmt.Sprintf("%d external (not health-checked)", len(d.External)))
	}
	if len(d.Instances) > 0 {
		row(tw)
		rows := make([]instanceRow, 0, len(d.Instances))
		for _, in := range d.Instances {
			rows = append(rows, meshRow(in))
		}
		instanceTable(tw, rows, false)
	}
	if len(d.External) > 0 {
		row(tw)
		row(tw, "EXTERNAL ENDPOINT", "READY", "LABELS")
		for _, ep := range d.External {
			row(tw, ep.Address, unchecked, labelString(ep.Labels))
		}
	}
}

// consumers asks every sidecar in proxies, a few at a time, how it sees
// service: the views of those that route to it and of those that could
// not be asked, sorted by sidecar.
func consumers(ctx context.Context, proxies []registry.Proxy, service string) []consumerView {
	sort.Slice(proxies, func(i, j int) bool {
		if proxies[i].Service != proxies[j].Service {
			return proxies[i].Service < proxies[j].Service
		}
		return proxies[i].ID < proxies[j].ID
	})
	views := make([]*consumerView, len(proxies))
	sem := make(chan struct{}, sidecarFetches)
	var wg sync.WaitGroup
	for i, p := range proxies {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			views[i] = consumerOf(ctx, p, service)
		}()
	}
	wg.Wait()
	out := make([]consumerView, 0, len(views))
	for _, v := range views {
		if v != nil {
			out = append(out, *v)
		}
	}
	return out
}

// consumerOf is service as the sidecar p routes to it; nil when p does
// not route to it.
func consumerOf(ctx context.Context, p registry.Proxy, service string) *consumerView {
	v := &consumerView{Service: p.Service, ID: p.ID, Admin: p.Admin}
	if p.Admin == "" {
		v.Error = "no admin address in its proxy record"
		return v
	}
	cfg, err := fetchConfig(ctx, p.Admin)
	if err != nil {
		v.Error = err.Error()
		return v
	}
	svc, ok := cfg.Services[service]
	if !ok {
		return nil
	}
	v.Breaker, v.Endpoints = svc.Breaker, svc.Endpoints
	sort.SliceStable(v.Endpoints, func(i, j int) bool { return v.Endpoints[i].Instance < v.Endpoints[j].Instance })
	return v
}

// errUnreachable is a sidecar's admin listener that gave no answer.
var errUnreachable = errors.New("unreachable")

// fetchConfig reads GET /config of the sidecar whose admin listener is
// at admin, within sidecarTimeout; errUnreachable when it gives no
// answer.
func fetchConfig(ctx context.Context, admin string) (*sidecarConfig, error) {
	var cfg sidecarConfig
	if err := fetchAdmin(ctx, admin, "/config", &cfg); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// fetchAdmin decodes the JSON of GET path (and query) from the sidecar
// whose admin listener is at admin, within sidecarTimeout. An answer
// other than 200 is an error with its status and the body's "error".
// adminError is a sidecar admin API's answer other than 200.
type adminError struct {
	status int
	msg    string
}

func (e *adminError) Error() string { return e.msg }

// adminNotFound reports a sidecar's 404.
func adminNotFound(err error) bool {
	var ae *adminError
	return errors.As(err, &ae) && ae.status == http.StatusNotFound
}

func fetchAdmin(ctx context.Context, admin, path string, into any) error {
	ctx, cancel := context.WithTimeout(ctx, sidecarTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+path, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: adminTransport}).Do(req)
	if err != nil {
		return fmt.Errorf("%w: %w", errUnreachable, unwrapURLError(err))
	}
	defer resp.Body.Close()
	name, _, _ := strings.Cut(path, "?")
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		json.NewDecoder(io.LimitReader(resp.Body, 4<<10)).Decode(&e)
		if e.Error != "" {
			return &adminError{status: resp.StatusCode, msg: fmt.Sprintf("GET %s: %s: %s", name, resp.Status, e.Error)}
		}
		return &adminError{status: resp.StatusCode, msg: fmt.Sprintf("GET %s: %s", name, resp.Status)}
	}
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		return fmt.Errorf("GET %s: %w", name, err)
	}
	return nil
}

// unwrapURLError drops the method and URL that net/http puts before the
// cause: the message names the sidecar and its address already.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// consumerTable is one sidecar's view of the service: a title, its
// breaker, a row per endpoint; or why it could not be asked.
func consumerTable(tw *tabwriter.Writer, v consumerView) {
	if v.Error != "" {
		at := ""
		if v.Admin != "" {
			at = " at " + v.Admin
		}
		fmt.Fprintf(tw, "sidecar %s/%s%s: %s\n", v.Service, v.ID, at, v.Error)
		return
	}
	fmt.Fprintf(tw, "Seen by %s/%s (admin %s):\n", v.Service, v.ID, v.Admin)
	fmt.Fprintf(tw, "Circuit breaker: %s\n", orWord(v.Breaker, "none"))
	if len(v.Endpoints) == 0 {
		fmt.Fprintln(tw, "No endpoints.")
		return
	}
	row(tw, "INSTANCE", "ADDRESS", "HEALTH", "LATENCY", "PEAK", "IN FLIGHT", "FAILURE RATE", "ATTEMPTS", "EJECTIONS", "EJECTED UNTIL")
	for _, ep := range v.Endpoints {
		row(tw, orWord(ep.Instance, "(external)"), ep.Address, healthWord(ep), orDash(ep.Latency), orDash(ep.PeakLatency),
			ep.InFlight, percent(ep.FailureRate), attemptsWord(ep), ejectionsWord(ep), timeOrDash(ep.EjectedUntil))
	}
}

// healthWord is the HEALTH cell: the endpoint's health, and until when
// a Retry-After defers it.
func healthWord(ep consumerEndpoint) string {
	if ep.Deferred {
		return ep.Health + " (deferred until " + timeOrDash(ep.DeferredUntil) + ")"
	}
	return ep.Health
}

// attemptsWord is the ATTEMPTS cell: attempts, and failures among them.
func attemptsWord(ep consumerEndpoint) string {
	if ep.Failures > 0 {
		return fmt.Sprintf("%d (%d failed)", ep.Attempts, ep.Failures)
	}
	return fmt.Sprint(ep.Attempts)
}

// ejectionsWord is the EJECTIONS cell: outlier ejections so far, with
// the reason of the last.
func ejectionsWord(ep consumerEndpoint) string {
	if ep.Ejections == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (%s)", ep.Ejections, ep.EjectReason)
}

// percent writes a share from 0 to 1 as a percent, to one decimal.
func percent(r float64) string {
	return fmt.Sprintf("%g%%", math.Round(r*1000)/10)
}

// timeOrDash writes t in RFC 3339, UTC; "-" for none.
func timeOrDash(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// orWord is s, or word when s is empty.
func orWord(s, word string) string {
	if s == "" {
		return word
	}
	return s
}
