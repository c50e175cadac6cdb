// Package api is the control plane's HTTP API as seen from outside: the
// request and response types, and a Client used by sidecars and the CLI.
// The server side lives in package control.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/registry"
)

// RegisterRequest is the body of PUT /v1/instances/{service}/{id}.
type RegisterRequest struct {
	Instance registry.Instance `json:"instance"`
	// Lease to reuse, from an earlier registration; 0 for a new one.
	Lease      registry.LeaseID `json:"lease,omitempty"`
	TTLSeconds int              `json:"ttlSeconds,omitempty"`
}

// ProxyRequest is the body of PUT /v1/proxies/{service}/{id}: a sidecar's
// own record, written under the same lease as its instance.
type ProxyRequest struct {
	Proxy registry.Proxy `json:"proxy"`
	// Lease to reuse (the instance's, or an earlier one); 0 for a new one.
	Lease      registry.LeaseID `json:"lease,omitempty"`
	TTLSeconds int              `json:"ttlSeconds,omitempty"`
}

// RegisterResponse says which lease keeps the record alive.
type RegisterResponse struct {
	Lease      registry.LeaseID `json:"lease"`
	TTLSeconds int              `json:"ttlSeconds"`
}

// Service summarises one service for `weft get services`.
type Service struct {
	Name      string `json:"name"`
	Kind      string `json:"kind"` // "mesh" (registered by sidecars) or "external"
	Instances int    `json:"instances"`
	Ready     int    `json:"ready"`
}

// ServiceDetail is `weft describe service`.
type ServiceDetail struct {
	Service
	Instances []registry.Instance `json:"instanceList"`
	External  []config.Endpoint   `json:"externalEndpoints,omitempty"`
}

// ApplyResult is one line of `weft apply`.
type ApplyResult struct {
	Ref     string `json:"ref"`
	Outcome string `json:"outcome"`
	// Revision is the resource's revision after the change (0 in a dry run).
	Revision int64 `json:"revision,omitempty"`
	// Warnings name what the resource refers to that does not exist yet.
	Warnings []string `json:"warnings,omitempty"`
}

// Change is one entry of a resource's history (weft history).
type Change struct {
	Revision int64     `json:"revision"`
	Time     time.Time `json:"time"`
	// Action is created, configured or deleted.
	Action string `json:"action"`
	// RollbackTo is the revision a rollback restored (0: none).
	RollbackTo int64 `json:"rollbackTo,omitempty"`
	// Resource is the resource as the change left it (nil: deleted).
	Resource *config.Resource `json:"resource,omitempty"`
}

// Error is the body of every non-2xx answer.
type Error struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// Version is GET /v1/version.
type Version struct {
	Version string `json:"version"`
	Store   string `json:"store"` // "embedded" or "external"
}

// ErrNotFound is returned for a 404: errors.Is(err, ErrNotFound) holds, and
// the message is the control plane's own ("ExternalService/legacy not
// found"), not prefixed with a second "not found".
var ErrNotFound = errors.New("not found")

// ErrUnreachable is returned when no connection to the control plane could
// be made; the message says how to start one or point at one.
var ErrUnreachable = errors.New("control plane unreachable")

// notFound is a 404 with the control plane's message.
type notFound struct{ msg string }

func (e notFound) Error() string {
	if e.msg == "" {
		return ErrNotFound.Error()
	}
	return e.msg
}

func (e notFound) Is(target error) bool { return target == ErrNotFound }

// unreachable is a failed dial to the control plane.
type unreachable struct {
	base string
	err  error
}

func (e unreachable) Error() string {
	cause := e.err
	var ue *url.Error // "Get "http://...": dial tcp ...": the URL is said already
	if errors.As(cause, &ue) {
		cause = ue.Err
	}
	return fmt.Sprintf("control plane at %s unreachable: %v (start one with `weft control`, or point --control or WEFT_CONTROL at a running one)", e.base, cause)
}

func (e unreachable) Unwrap() []error { return []error{ErrUnreachable, e.err} }

// isDialError reports whether err means no connection could be made, as
// opposed to one that broke or timed out during the request.
func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// Client talks to one control plane.
type Client struct {
	Base string // http://host:port or https://host:port
	HTTP *http.Client
	// Token is the API token sent as a bearer token ("": none).
	Token string
	roots string // what an https control plane's certificate is checked against
	err   error  // setting up TLS failed: every call returns it
}

// NewClient accepts host:port or a URL (https:// for a control plane
// whose API serves TLS). Its token is LoadToken's.
func NewClient(addr string) *Client { return NewClientTLS(addr, TLSOptions{}) }

// NewClientTLS is NewClient with how to reach an https control plane.
func NewClientTLS(addr string, o TLSOptions) *Client {
	base := addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	c := &Client{Base: strings.TrimRight(base, "/"), HTTP: &http.Client{Transport: Transport, Timeout: 10 * time.Second},
		Token: LoadToken(addr)}
	if strings.HasPrefix(c.Base, "https://") {
		cfg, from, err := ClientTLS(addr, o)
		if err != nil {
			c.err = fmt.Errorf("control plane at %s: %w", c.Base, err)
			return c
		}
		c.HTTP.Transport, c.roots = newTLSTransport(cfg), from
	}
	return c
}

// Err is why the Client cannot make calls (a CA file it could not read),
// or nil.
func (c *Client) Err() error { return c.err }

// Explain adds to an error of a call to the control plane what to do
// about it, when it is one of TLS.
func (c *Client) Explain(err error) error {
	if c.roots == "" {
		return err
	}
	return explainTLS(err, c.Base, c.roots)
}

// Transport reaches the control plane directly: HTTP_PROXY in the
// environment is for the app, never for Weft's own calls.
var Transport = &http.Transport{
	Proxy:               nil,
	DialContext:         (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	MaxIdleConnsPerHost: 4,
	IdleConnTimeout:     90 * time.Second,
}

// Do sends a request and decodes a JSON answer into out (when not nil).
func (c *Client) Do(ctx context.Context, method, path string, body io.Reader, out any) error {
	if c.err != nil {
		return c.err
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, body)
	if err != nil {
		return err
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		if isDialError(err) && ctx.Err() == nil {
			return unreachable{c.Base, err}
		}
		return fmt.Errorf("control plane at %s: %w", c.Base, c.Explain(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("control plane at %s: read answer: %w", c.Base, err)
	}
	if resp.StatusCode/100 != 2 {
		var e Error
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		if resp.StatusCode == http.StatusNotFound {
			return notFound{e.Error}
		}
		return errors.New(e.Error)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("control plane at %s: bad answer to %s %s: %w", c.Base, method, path, err)
	}
	return nil
}

func jsonBody(v any) io.Reader {
	b, _ := json.Marshal(v)
	return bytes.NewReader(b)
}

// Register writes an instance and returns its lease.
func (c *Client) Register(ctx context.Context, r RegisterRequest) (RegisterResponse, error) {
	var out RegisterResponse
	p := "/v1/instances/" + url.PathEscape(r.Instance.Service) + "/" + url.PathEscape(r.Instance.ID)
	err := c.Do(ctx, http.MethodPut, p, jsonBody(r), &out)
	return out, err
}

// RegisterProxy writes a sidecar's proxy record and returns its lease.
func (c *Client) RegisterProxy(ctx context.Context, r ProxyRequest) (RegisterResponse, error) {
	var out RegisterResponse
	p := "/v1/proxies/" + url.PathEscape(r.Proxy.Service) + "/" + url.PathEscape(r.Proxy.ID)
	err := c.Do(ctx, http.MethodPut, p, jsonBody(r), &out)
	return out, err
}

// DeregisterProxy removes a proxy record.
func (c *Client) DeregisterProxy(ctx context.Context, service, id string) error {
	return c.Do(ctx, http.MethodDelete, "/v1/proxies/"+url.PathEscape(service)+"/"+url.PathEscape(id), nil, nil)
}

// Proxies lists the running sidecars of service, or of all when "".
func (c *Client) Proxies(ctx context.Context, service string) ([]registry.Proxy, error) {
	var out []registry.Proxy
	err := c.Do(ctx, http.MethodGet, "/v1/proxies?service="+url.QueryEscape(service), nil, &out)
	return out, err
}

// KeepAlive renews a lease; ErrNotFound means register again.
func (c *Client) KeepAlive(ctx context.Context, lease registry.LeaseID) error {
	return c.Do(ctx, http.MethodPost, "/v1/leases/"+lease.String()+"/keepalive", nil, nil)
}

// Deregister removes an instance.
func (c *Client) Deregister(ctx context.Context, service, id string) error {
	return c.Do(ctx, http.MethodDelete, "/v1/instances/"+url.PathEscape(service)+"/"+url.PathEscape(id), nil, nil)
}

// Instances lists instances of service, or of all when "".
func (c *Client) Instances(ctx context.Context, service string) ([]registry.Instance, error) {
	var out []registry.Instance
	err := c.Do(ctx, http.MethodGet, "/v1/instances?service="+url.QueryEscape(service), nil, &out)
	return out, err
}

// Services lists every service.
func (c *Client) Services(ctx context.Context) ([]Service, error) {
	var out []Service
	err := c.Do(ctx, http.MethodGet, "/v1/services", nil, &out)
	return out, err
}

// Service describes one service.
func (c *Client) Service(ctx context.Context, name string) (ServiceDetail, error) {
	var out ServiceDetail
	err := c.Do(ctx, http.MethodGet, "/v1/services/"+url.PathEscape(name), nil, &out)
	return out, err
}

// Apply sends YAML or JSON resources.
func (c *Client) Apply(ctx context.Context, doc []byte) ([]ApplyResult, error) {
	var out []ApplyResult
	err := c.Do(ctx, http.MethodPost, "/v1/resources", bytes.NewReader(doc), &out)
	return out, err
}

// DryRun is Apply that writes nothing: what applying doc would do.
func (c *Client) DryRun(ctx context.Context, doc []byte) ([]ApplyResult, error) {
	var out []ApplyResult
	err := c.Do(ctx, http.MethodPost, "/v1/resources?dryRun=true", bytes.NewReader(doc), &out)
	return out, err
}

// History lists the changes kept of one resource, oldest first.
func (c *Client) History(ctx context.Context, kind, name string) ([]Change, error) {
	var out []Change
	err := c.Do(ctx, http.MethodGet, "/v1/history/"+url.PathEscape(kind)+"/"+url.PathEscape(name), nil, &out)
	return out, err
}

// Rollback applies a resource as revision rev of its history left it.
func (c *Client) Rollback(ctx context.Context, kind, name string, rev int64) (ApplyResult, error) {
	var out ApplyResult
	err := c.Do(ctx, http.MethodPost, "/v1/rollback/"+url.PathEscape(kind)+"/"+url.PathEscape(name)+"?to="+strconv.FormatInt(rev, 10), nil, &out)
	return out, err
}

// Resources lists resources of a kind.
func (c *Client) Resources(ctx context.Context, kind string) ([]config.Resource, error) {
	var out []config.Resource
	err := c.Do(ctx, http.MethodGet, "/v1/resources/"+url.PathEscape(kind), nil, &out)
	return out, err
}

// Resource gets one resource.
func (c *Client) Resource(ctx context.Context, kind, name string) (config.Resource, error) {
	var out config.Resource
	err := c.Do(ctx, http.MethodGet, "/v1/resources/"+url.PathEscape(kind)+"/"+url.PathEscape(name), nil, &out)
	return out, err
}

// Delete removes a resource.
func (c *Client) Delete(ctx context.Context, kind, name string) error {
	return c.Do(ctx, http.MethodDelete, "/v1/resources/"+url.PathEscape(kind)+"/"+url.PathEscape(name), nil, nil)
}

// ForgetService removes the record of a service that has no instance
// left: the mesh no longer knows its name.
func (c *Client) ForgetService(ctx context.Context, name string) error {
	return c.Do(ctx, http.MethodDelete, "/v1/services/"+url.PathEscape(name), nil, nil)
}

// Version asks the control plane what it runs.
func (c *Client) Version(ctx context.Context) (Version, error) {
	var out Version
	err := c.Do(ctx, http.MethodGet, "/v1/version", nil, &out)
	return out, err
}

// EndpointState is one endpoint as a sidecar's admin /config lists it
// under a service (the fields its readers, weft describe and the
// dashboard, use): health by each signal, the latency estimate,
// failures and ejections.
type EndpointState struct {
	Instance      string     `json:"instance"`
	Address       string     `json:"address"`
	Ready         bool       `json:"ready"`
	Health        string     `json:"health"` // ready, not-ready, ejected, probe-down, unchecked
	EjectedUntil  *time.Time `json:"ejectedUntil,omitempty"`
	Deferred      bool       `json:"deferred,omitempty"`
	DeferredUntil *time.Time `json:"deferredUntil,omitempty"`
	InFlight      int        `json:"inFlight,omitempty"`
	Latency       string     `json:"latency,omitempty"`
	PeakLatency   string     `json:"peakLatency,omitempty"`
	FailureRate   float64    `json:"failureRate,omitempty"`
	Attempts      uint64     `json:"attempts,omitempty"`
	Failures      uint64     `json:"failures,omitempty"`
	EjectReason   string     `json:"ejectReason,omitempty"`
	Ejections     uint64     `json:"ejections,omitempty"`
}
