package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/registry"
	"github.com/weftmesh/weft/internal/security"
)

func init() {
	addVerb("check", "warn about certificates close to expiry: the CA's and every sidecar's (exit 1 when something warns): weft check [--threshold 0.2] [--within D] [--root-within 24h]", runCheck)
}

// checkRow is one certificate weft check looked at.
type checkRow struct {
	What     string    `json:"what"`
	Identity string    `json:"identity,omitempty"`
	NotAfter time.Time `json:"notAfter,omitzero"`
	Status   string    `json:"status"` // ok, or what is wrong
	Warn     bool      `json:"warn"`
}

// sidecarCert is the part of a sidecar's /config weft check reads.
type sidecarCert struct {
	Certificate *struct {
		State     string    `json:"state"`
		SPIFFEID  string    `json:"spiffeID"`
		NotBefore time.Time `json:"notBefore"`
		NotAfter  time.Time `json:"notAfter"`
		LastError string    `json:"lastError"`
	} `json:"certificate"`
}

// runCheck asks the control plane for its CA and every sidecar (their
// admin /config, as weft get proxies lists them) for its certificate,
// and warns about those close to expiry.
func runCheck(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "check")
	control := controlFlag(fs)
	out := outputFlag(fs, formatTable, formatJSON, formatYAML)
	threshold := fs.Float64("threshold", 0.2, "warn when a workload certificate has less than this share of its lifetime left")
	within := fs.Duration("within", 0, "warn when a workload certificate expires within this long (instead of --threshold)")
	rootWithin := fs.Duration("root-within", 24*time.Hour, "warn when the CA's certificate expires within this long")
	rest, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := out.check(); err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("check: unexpected argument %q", rest[0])
	}
	if *threshold < 0 || *threshold > 1 {
		return usagef("check: --threshold %v: want a share from 0 to 1", *threshold)
	}
	c := api.NewClient(*control)
	var ca security.CAInfo
	if err := c.Do(ctx, http.MethodGet, "/v1/ca", nil, &ca); err != nil {
		return fmt.Errorf("check: %w", err)
	}
	proxies, err := c.Proxies(ctx, "")
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	now := time.Now()
	rows := []checkRow{caRow(ca, now, *rootWithin)}
	rows = append(rows, sidecarRows(ctx, proxies, now, *threshold, *within)...)
	warnings := 0
	for _, r := range rows {
		if r.Warn {
			warnings++
		}
	}
	if err := out.print(e.stdout, rows, func(tw *tabwriter.Writer) {
		row(tw, "WHAT", "IDENTITY", "NOT AFTER", "LEFT", "STATUS")
		for _, r := range rows {
			na, left := "-", "-"
			if !r.NotAfter.IsZero() {
				na, left = r.NotAfter.Local().Format(time.RFC3339), leftString(r.NotAfter.Sub(now))
			}
			status := r.Status
			if r.Warn {
				status = "WARNING: " + status
			}
			row(tw, r.What, orDash(r.Identity), na, left, status)
		}
	}); err != nil {
		return err
	}
	if warnings > 0 {
		return fmt.Errorf("check: %d of %d certificates need attention", warnings, len(rows))
	}
	return nil
}

func caRow(ca security.CAInfo, now time.Time, within time.Duration) checkRow {
	r := checkRow{What: "CA (" + ca.Source + ")", Identity: "spiffe://" + ca.TrustDomain + " " + ca.Subject, NotAfter: ca.NotAfter, Status: "ok"}
	switch left := ca.NotAfter.Sub(now); {
	case left <= 0:
		r.Status, r.Warn = "the CA's certificate has expired: no sidecar can renew", true
	case left < within:
		r.Status, r.Warn = fmt.Sprintf("the CA's certificate expires within %s: rotate it (docs/security.md)", within), true
	}
	return r
}

// sidecarRows asks every sidecar, 8 at a time, 2 s each.
func sidecarRows(ctx context.Context, proxies []registry.Proxy, now time.Time, threshold float64, within time.Duration) []checkRow {
	rows := make([]checkRow, len(proxies))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	hc := &http.Client{Transport: api.Transport, Timeout: 2 * time.Second}
	for i, p := range proxies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			rows[i] = sidecarRow(ctx, hc, p, now, threshold, within)
		}()
	}
	wg.Wait()
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].What < rows[j].What })
	return rows
}

func sidecarRow(ctx context.Context, hc *http.Client, p registry.Proxy, now time.Time, threshold float64, within time.Duration) checkRow {
	r := checkRow{What: "sidecar " + p.Service + "/" + p.ID}
	if p.Admin == "" {
		r.Status, r.Warn = "no admin address registered: cannot ask", true
		return r
	}
	var cfg sidecarCert
	if err := getJSON(ctx, hc, "http://"+p.Admin+"/config", &cfg); err != nil {
		r.Status, r.Warn = "admin "+p.Admin+" unreachable: "+err.Error(), true
		return r
	}
	c := cfg.Certificate
	if c == nil {
		r.Status = "no workload certificate (no --join-token)"
		return r
	}
	r.Identity, r.NotAfter = c.SPIFFEID, c.NotAfter
	life, left := c.NotAfter.Sub(c.NotBefore), c.NotAfter.Sub(now)
	switch {
	case c.State == "pending":
		r.Status, r.Warn = "no certificate yet: "+orDash(c.LastError), true
	case left <= 0:
		r.Status, r.Warn = "certificate expired: "+orDash(c.LastError), true
	case within > 0 && left < within:
		r.Status, r.Warn = fmt.Sprintf("expires within %s", within), true
	case within == 0 && float64(left) < threshold*float64(life):
		r.Status, r.Warn = fmt.Sprintf("less than %.0f%% of its %s lifetime left", threshold*100, leftString(life)), true
	default:
		r.Status = "ok"
	}
	if c.LastError != "" && !r.Warn {
		r.Status, r.Warn = "renewal failing: "+c.LastError, true
	}
	return r
}

func getJSON(ctx context.Context, hc *http.Client, url string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 8<<20)).Decode(out)
}

// leftString is a duration as people read a time left: 3649d, 23h59m, 42s.
func leftString(d time.Duration) string {
	switch {
	case d <= 0:
		return "expired"
	case d >= 72*time.Hour:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	case d >= time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	case d >= time.Minute:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	default:
		return d.Round(100 * time.Millisecond).String()
	}
}
