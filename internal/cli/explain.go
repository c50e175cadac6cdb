package cli

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/registry"
)

// explanation is GET /explain of a sidecar (its explainView).
type explanation struct {
	From    string `json:"from"`
	To      string `json:"to"`
	Request string `json:"request"`
	Routes  []struct {
		Rule    string `json:"rule"`
		Match   string `json:"match"`
		Matched bool   `json:"matched"`
		Why     string `json:"why"`
	} `json:"routes"`
	Decision string `json:"decision"`
	Error    *struct {
		Status  int    `json:"status"`
		Reason  string `json:"reason"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
	Faults   []string `json:"faults"`
	Backends []struct {
		Name    string  `json:"name"`
		Share   float64 `json:"share"`
		Invalid string  `json:"invalid"`
		Policy  *struct {
			Resource       string `json:"resource"`
			Balancer       string `json:"balancer"`
			RequestTimeout string `json:"requestTimeout"`
			PerTryTimeout  string `json:"perTryTimeout"`
			Attempts       int    `json:"attempts"`
			RetryBudget    string `json:"retryBudget"`
			CircuitBreaker string `json:"circuitBreaker"`
		} `json:"policy"`
		Breaker    string             `json:"breaker"`
		Candidates []consumerEndpoint `json:"candidates"`
	} `json:"backends"`
}

// headerFlags collects repeated -H 'Name: value'.
type headerFlags []string

func (h *headerFlags) String() string { return strings.Join(*h, ", ") }
func (h *headerFlags) Set(v string) error {
	if name, _, ok := strings.Cut(v, ":"); !ok || strings.TrimSpace(name) == "" {
		return fmt.Errorf("%q: want 'Name: value'", v)
	}
	*h = append(*h, v)
	return nil
}

// runExplain is `weft explain --from SERVICE --to SERVICE [METHOD] PATH
// [-H 'Name: value']...`: what a sidecar of --from would do with that
// request, from its own live state.
func runExplain(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "explain")
	control := controlFlag(fs)
	out := outputFlag(fs)
	from := fs.String("from", "", "the calling service: one of its sidecars explains")
	to := fs.String("to", "", "the service called")
	grpc := fs.Bool("grpc", false, "a gRPC call (as content-type application/grpc says)")
	requestID := fs.String("request-id", "", "explain a request already served, by its x-request-id, from the recent decisions of --from's sidecars")
	var headers headerFlags
	fs.Var(&headers, "H", "a request header 'Name: value' (repeatable)")
	rest, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := out.check(); err != nil {
		return err
	}
	if *requestID != "" {
		if *from == "" || len(rest) > 0 {
			return usagef("explain: want explain --from SERVICE --request-id ID")
		}
		return explainServed(ctx, e, api.NewClient(*control), out, *from, *requestID)
	}
	if *from == "" || *to == "" || len(rest) < 1 || len(rest) > 2 {
		return usagef("explain: want explain --from SERVICE --to SERVICE [METHOD] PATH [-H 'Name: value']...")
	}
	method, path := "GET", rest[0]
	if len(rest) == 2 {
		method, path = strings.ToUpper(rest[0]), rest[1]
	}
	if !strings.HasPrefix(path, "/") {
		return usagef("explain: path %q must begin with /", path)
	}
	c := api.NewClient(*control)
	proxies, err := c.Proxies(ctx, *from)
	if err != nil {
		return fmt.Errorf("explain: list the sidecars of %s: %w", *from, err)
	}
	p, err := explainer(proxies, *from)
	if err != nil {
		return err
	}
	q := url.Values{"to": {*to}, "method": {method}, "path": {path}, "header": headers}
	if *grpc {
		q.Set("grpc", "1")
	}
	var x explanation
	if err := fetchAdmin(ctx, p.Admin, "/explain?"+q.Encode(), &x); err != nil {
		return fmt.Errorf("explain: sidecar %s/%s at %s: %w", p.Service, p.ID, p.Admin, err)
	}
	return out.print(e.stdout, x, func(tw *tabwriter.Writer) { explainTable(tw, x) })
}

// served is GET /explain?request-id= of a sidecar (its servedView).
type served struct {
	From      string        `json:"from"`
	ID        string        `json:"id"`
	Time      time.Time     `json:"time"`
	Duration  time.Duration `json:"duration"`
	Method    string        `json:"method"`
	Path      string        `json:"path"`
	Direction string        `json:"direction"`
	Source    string        `json:"source"`
	Service   string        `json:"service"`
	Rule      string        `json:"rule"`
	Backend   string        `json:"backend"`
	Instance  string        `json:"instance"`
	Attempts  int           `json:"attempts"`
	Status    int           `json:"status"`
	// Authorization is the inbound's decision; TraceID the request's trace.
	Authorization string `json:"authorization"`
	TraceID       string `json:"traceId"`
	Error         *struct {
		Reason   string `json:"error"`
		Instance string `json:"instance"`
		Message  string `json:"message"`
	} `json:"error"`
}

// explainServed asks every sidecar of service for the request of that
// id, and prints what the one that sent it did.
func explainServed(ctx context.Context, e *env, c *api.Client, out *output, service, id string) error {
	proxies, err := c.Proxies(ctx, service)
	if err != nil {
		return fmt.Errorf("explain: list the sidecars of %s: %w", service, err)
	}
	asked := 0
	for _, p := range proxies {
		if p.Admin == "" {
			continue
		}
		asked++
		var x served
		err := fetchAdmin(ctx, p.Admin, "/explain?"+url.Values{"request-id": {id}}.Encode(), &x)
		if adminNotFound(err) {
			continue // another of its sidecars sent it
		}
		if err != nil {
			return fmt.Errorf("explain: sidecar %s/%s at %s: %w", p.Service, p.ID, p.Admin, err)
		}
		return out.print(e.stdout, x, func(tw *tabwriter.Writer) { servedTable(tw, x) })
	}
	if asked == 0 {
		_, err := explainer(proxies, service) // says why none can answer
		return err
	}
	return fmt.Errorf("explain: none of the %d sidecars of %s sent request %s among the requests each keeps (x-request-id)", asked, service, id)
}

func servedTable(tw *tabwriter.Writer, x served) {
	fmt.Fprintf(tw, "Request %s: %s %s from %s to %s, at %s\n", x.ID, x.Method, x.Path, x.From, x.Service, x.Time.Local().Format(time.DateTime+".000"))
	if x.Direction == "inbound" {
		fmt.Fprintf(tw, "Taken in (inbound) from %s: this sidecar sent no request with this id itself\n", orWord(x.Source, "a caller outside the mesh"))
	}
	switch {
	case x.Rule != "":
		fmt.Fprintf(tw, "Decision: routed by %s\n", x.Rule)
	case x.Attempts > 0:
		fmt.Fprintf(tw, "Decision: %s has no routes: to its own instances\n", x.Service)
	}
	if x.Backend != "" {
		fmt.Fprintf(tw, "Backend: %s\n", x.Backend)
	}
	if x.Instance != "" {
		fmt.Fprintf(tw, "Instance: %s (%d attempt%s)\n", x.Instance, x.Attempts, plural(x.Attempts))
	}
	if x.Authorization != "" {
		fmt.Fprintf(tw, "Authorization: %s\n", x.Authorization)
	}
	if x.TraceID != "" {
		fmt.Fprintf(tw, "Trace: %s (weft traces %s, when it was sampled)\n", x.TraceID, x.TraceID)
	}
	fmt.Fprintf(tw, "Answer: %d after %s\n", x.Status, x.Duration)
	if x.Error != nil {
		what := "Last failure"
		if x.Status == 0 || x.Attempts == 0 || x.Error.Instance == "" || x.Error.Instance == x.Instance {
			what = "Mesh error"
		}
		fmt.Fprintf(tw, "%s: %s: %s\n", what, x.Error.Reason, x.Error.Message)
	}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// explainer is the sidecar of service that answers: the first by id with
// an admin listener.
func explainer(proxies []registry.Proxy, service string) (registry.Proxy, error) {
	sort.Slice(proxies, func(i, j int) bool { return proxies[i].ID < proxies[j].ID })
	for _, p := range proxies {
		if p.Admin != "" {
			return p, nil
		}
	}
	if len(proxies) == 0 {
		return registry.Proxy{}, fmt.Errorf("explain: no sidecar of service %q is running", service)
	}
	return registry.Proxy{}, fmt.Errorf("explain: no sidecar of service %q has an admin listener", service)
}

func explainTable(tw *tabwriter.Writer, x explanation) {
	fmt.Fprintf(tw, "%s from %s to %s\n", x.Request, x.From, x.To)
	if len(x.Routes) > 0 {
		fmt.Fprintf(tw, "Routes, in the order tried:\n")
		for _, r := range x.Routes {
			verdict := "matches"
			if !r.Matched {
				verdict = "no: " + r.Why
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", r.Rule, r.Match, verdict)
		}
	}
	fmt.Fprintf(tw, "Decision: %s\n", x.Decision)
	if x.Error != nil {
		fmt.Fprintf(tw, "  %d %s: %s\n", x.Error.Status, x.Error.Reason, x.Error.Message)
	}
	for _, f := range x.Faults {
		fmt.Fprintf(tw, "Fault: %s\n", f)
	}
	for _, b := range x.Backends {
		fmt.Fprintf(tw, "Backend %s, %g%% of requests:\n", b.Name, b.Share)
		if b.Invalid != "" {
			fmt.Fprintf(tw, "  invalid: %s (its share gets 500 invalid-backend)\n", b.Invalid)
			continue
		}
		if p := b.Policy; p != nil {
			fmt.Fprintf(tw, "  policy %s: balancer %s, timeout %s%s, %d attempts, budget %s%s\n", orWord(p.Resource, "(defaults)"),
				p.Balancer, p.RequestTimeout, prefixed(", per try ", p.PerTryTimeout), p.Attempts, p.RetryBudget, prefixed(", breaker ", p.CircuitBreaker))
		}
		if b.Breaker != "" {
			fmt.Fprintf(tw, "  breaker: %s\n", b.Breaker)
		}
		if len(b.Candidates) == 0 {
			fmt.Fprintf(tw, "  no instance: requests get 503 no-ready-instance\n")
			continue
		}
		fmt.Fprintf(tw, "  INSTANCE\tADDRESS\tHEALTH\tIN FLIGHT\tLATENCY\tFAILURES\tATTEMPTS\tEJECTIONS\n")
		for _, ep := range b.Candidates {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", ep.Instance, ep.Address, healthWord(ep), ep.InFlight,
				orWord(ep.PeakLatency, "-"), percent(ep.FailureRate), attemptsWord(ep), ejectionsWord(ep))
		}
	}
}

func prefixed(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}
