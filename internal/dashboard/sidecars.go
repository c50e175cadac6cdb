package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/weftmesh/weft/internal/registry"
)

// How the dashboard asks the sidecars, as weft describe does: each admin
// listener within sidecarTimeout, at most sidecarFetches at a time, the
// answer at most maxAdminBody.
const (
	sidecarTimeout = 2 * time.Second
	sidecarFetches = 8
	maxAdminBody   = 8 << 20
)

// adminTransport reaches sidecars' admin listeners directly, never
// through a proxy from the environment, one connection a request: none
// is left open between two updates of a page.
var adminTransport = &http.Transport{
	Proxy:             nil,
	DialContext:       (&net.Dialer{Timeout: sidecarTimeout}).DialContext,
	DisableKeepAlives: true,
}

// proxies is every sidecar the control plane knows (of service; "" for
// all), sorted by service and id.
func (h *Handler) proxies(ctx context.Context, service string) ([]registry.Proxy, error) {
	path := "/v1/proxies"
	if service != "" {
		path += "?" + url.Values{"service": {service}}.Encode()
	}
	var list []registry.Proxy
	if err := h.get(ctx, path, &list); err != nil {
		return nil, err
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].Service != list[j].Service {
			return list[i].Service < list[j].Service
		}
		return list[i].ID < list[j].ID
	})
	return list, nil
}

// errNotFound is a sidecar's 404.
var errNotFound = errors.New("not found")

// fetchAdmin decodes the JSON of GET path (with its query) from the
// sidecar whose admin listener is at admin, within sidecarTimeout.
func (h *Handler) fetchAdmin(ctx context.Context, admin, path string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, sidecarTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+path, nil)
	if err != nil {
		return err
	}
	resp, err := h.admin.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("unreachable: %w", err)
	}
	defer resp.Body.Close()
	name, _, _ := strings.Cut(path, "?")
	body := io.LimitReader(resp.Body, maxAdminBody)
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		json.NewDecoder(io.LimitReader(body, 4<<10)).Decode(&e)
		msg := fmt.Sprintf("GET %s: %s", name, resp.Status)
		if e.Error != "" {
			msg += ": " + e.Error
		}
		if resp.StatusCode == http.StatusNotFound {
			return fmt.Errorf("%s: %w", msg, errNotFound)
		}
		return errors.New(msg)
	}
	if err := json.NewDecoder(body).Decode(v); err != nil {
		return fmt.Errorf("GET %s: %w", name, err)
	}
	return nil
}

// eachSidecar calls f for every sidecar in list that has an admin
// listener, a few at a time, and returns when every call has.
func eachSidecar(list []registry.Proxy, f func(i int, p registry.Proxy)) {
	sem := make(chan struct{}, sidecarFetches)
	var wg sync.WaitGroup
	for i, p := range list {
		if p.Admin == "" {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			f(i, p)
		}()
	}
	wg.Wait()
}
