package sidecar

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/internal/api"
	"github.com/weftmesh/weft/internal/security"
)

// The sidecar's workload certificate (with --join-token):
//
//	start: new P-256 key in memory -> CSR -> POST /v1/certificates with the
//	  join token (retried with backoff while the control plane is away;
//	  nothing else waits for it)
//	at ~70% of the lifetime (jittered): a new key and CSR, proved with the
//	  certificate in force (RenewalProof), no token; once that certificate
//	  has expired, the join token again
//	each new certificate and trust bundle -> security.Credentials (atomic)
//	renewal failing: a warning each minute past 90% of the lifetime, an
//	  error once expired; the certificate in force is kept until then
//
// The key is never written anywhere and never sent.

// Renewal timing.
const (
	renewAt        = 0.70 // of the lifetime
	renewJitter    = 0.05 // +- of the lifetime
	warnAt         = 0.90 // of the lifetime: renewal failures get loud
	certWarnEvery  = time.Minute
	certRetryFirst = 500 * time.Millisecond
	certRetryMax   = 10 * time.Second
)

// certs gets and renews the sidecar's certificate.
type certs struct {
	api      *api.Client
	service  string
	token    string
	creds    *security.Credentials
	log      *slog.Logger
	expiry   prometheus.Gauge
	renewals *prometheus.CounterVec
	now      func() time.Time
	first    chan struct{} // closed once the first certificate is in
	once     sync.Once

	mu       sync.Mutex
	key      crypto.Signer // of the certificate in force
	leaf     *x509.Certificate
	chainPEM string
	got      time.Time // when the certificate in force arrived
	renew    time.Time // when to renew it
	lastErr  string
	failing  time.Time // since when renewal fails (zero: it does not)
}

// startCerts sets up the certificate's life when the sidecar has a join
// token; Run runs it.
func (s *Sidecar) startCerts() error {
	if s.cfg.JoinToken == "" {
		return nil
	}
	c := &certs{api: s.api, service: s.cfg.Service, token: s.cfg.JoinToken, creds: security.NewCredentials(),
		log: s.log.With("part", "certificate"), now: time.Now, first: make(chan struct{}),
		expiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weft_certificate_expiry_timestamp_seconds",
			Help: "When this sidecar's workload certificate expires (Unix time; 0 before the first).",
		}),
		renewals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_certificate_renewals_total",
			Help: "Requests for a workload certificate (the first and every renewal), by outcome: success or failure.",
		}, []string{"outcome"}),
	}
	c.renewals.WithLabelValues("success")
	c.renewals.WithLabelValues("failure")
	if err := s.deps.Registry.Register(c.expiry); err != nil {
		return fmt.Errorf("registering the certificate metrics: %w", err)
	}
	if err := s.deps.Registry.Register(c.renewals); err != nil {
		return fmt.Errorf("registering the certificate metrics: %w", err)
	}
	s.certs = c
	return nil
}

// Credentials are this sidecar's certificate and trust bundle, for the
// data path's TLS (nil without a join token). Until the first
// certificate arrives, handshakes with them fail.
func (s *Sidecar) Credentials() *security.Credentials {
	if s.certs == nil {
		return nil
	}
	return s.certs.creds
}

// controlTLSOptions are how calls to an https control plane go: its
// certificate checked against --control-ca (or what api.ClientTLS
// finds), this sidecar's workload certificate in force presented.
func (s *Sidecar) controlTLSOptions() api.TLSOptions {
	return api.TLSOptions{CAFile: s.cfg.ControlCA, ClientCertificate: func() *tls.Certificate {
		if cr := s.Credentials(); cr != nil {
			return cr.Certificate()
		}
		return nil
	}}
}

// awaitIdentity waits, when the control plane serves TLS and this
// sidecar has a join token, for its first certificate: the calls that
// need one (registration, the push stream, reports) then start with it
// rather than be refused first. It reports false when ctx ends first.
func (s *Sidecar) awaitIdentity(ctx context.Context) bool {
	if s.certs == nil || !s.cfg.controlTLS() {
		return true
	}
	select {
	case <-s.certs.first:
		return true
	case <-ctx.Done():
		return false
	}
}

// run gets the first certificate and renews it until ctx ends.
func (c *certs) run(ctx context.Context) {
	retry := certRetryFirst
	var warned time.Time
	expiredSaid := false
	for {
		if wait := c.untilRenewal(); wait > 0 {
			if !sleepCtx(ctx, wait) {
				return
			}
		}
		err := c.obtain(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			c.renewals.WithLabelValues("success").Inc()
			retry, warned, expiredSaid = certRetryFirst, time.Time{}, false
			continue
		}
		c.renewals.WithLabelValues("failure").Inc()
		c.failed(err, &warned, &expiredSaid)
		if !sleepCtx(ctx, c.retryDelay(&retry)) {
			return
		}
	}
}

// untilRenewal is how long until the certificate in force is due for
// renewal (0: now, or there is none).
func (c *certs) untilRenewal() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leaf == nil {
		return 0
	}
	return c.renew.Sub(c.now())
}

// retryDelay is the next wait after a failure: doubling from 500ms to
// 10s, jittered, and never more than a tenth of the time the certificate
// in force has left, so a short-lived one gets many tries.
func (c *certs) retryDelay(retry *time.Duration) time.Duration {
	d := *retry/2 + mrand.N(*retry/2+1)
	*retry = min(*retry*2, certRetryMax)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leaf != nil {
		if left := c.leaf.NotAfter.Sub(c.now()); left > 0 {
			d = min(d, max(left/10, 100*time.Millisecond))
		}
	}
	return d
}

// failed logs a failure as loudly as the certificate's age asks.
func (c *certs) failed(err error, warned *time.Time, expiredSaid *bool) {
	now := c.now()
	c.mu.Lock()
	c.lastErr = err.Error()
	if c.failing.IsZero() {
		c.failing = now
	}
	leaf, got, failingSince := c.leaf, c.got, c.failing
	c.mu.Unlock()
	switch {
	case leaf == nil:
		c.log.Error("no workload certificate yet: request failed, retrying", "err", err)
	case !now.Before(leaf.NotAfter):
		if !*expiredSaid {
			*expiredSaid = true
			c.log.Error("workload certificate EXPIRED and renewal still failing: peers will refuse this sidecar's mutual TLS until it renews",
				"not_after", leaf.NotAfter.UTC(), "failing_since", failingSince.UTC(), "err", err)
		}
	case now.Sub(got) >= time.Duration(warnAt*float64(leaf.NotAfter.Sub(got))):
		if warned.IsZero() || now.Sub(*warned) >= certWarnEvery {
			*warned = now
			c.log.Warn("workload certificate renewal failing: it expires soon, still serving with it",
				"expires_in", leaf.NotAfter.Sub(now).Round(time.Second).String(), "not_after", leaf.NotAfter.UTC(), "failing_since", failingSince.UTC(), "err", err)
		}
	case failingSince.Equal(now):
		c.log.Warn("workload certificate renewal failed, retrying; still serving with the certificate in force",
			"expires_in", leaf.NotAfter.Sub(now).Round(time.Second).String(), "err", err)
	default:
		c.log.Debug("workload certificate renewal failed, retrying", "err", err)
	}
}

// obtain asks for a certificate for a new key: with the certificate in
// force as proof while it is valid, else (or when the proof is refused)
// with the join token.
func (c *certs) obtain(ctx context.Context) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("new key: %w", err)
	}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return fmt.Errorf("CSR: %w", err)
	}
	req := security.CertificateRequest{Service: c.service, CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}))}
	c.mu.Lock()
	oldKey, chain, leaf := c.key, c.chainPEM, c.leaf
	c.mu.Unlock()
	renewal := leaf != nil && c.now().Before(leaf.NotAfter)
	var resp *security.CertificateResponse
	if renewal {
		sig, err := security.SignRenewal(oldKey, csrDER)
		if err != nil {
			return err
		}
		req.Proof = &security.RenewalProof{Chain: chain, Signature: sig}
		resp, err = c.post(ctx, req, "")
		var refused *certRefused
		if errors.As(err, &refused) {
			// e.g. the root was rotated away: the join token may still do.
			c.log.Warn("renewal proof refused, asking with the join token", "err", err)
			req.Proof = nil
			resp, err = c.post(ctx, req, c.token)
		}
		if err != nil {
			return err
		}
	} else if resp, err = c.post(ctx, req, c.token); err != nil {
		return err
	}
	return c.install(key, resp, renewal)
}

// certRefused is an answer of the control plane that refuses (4xx).
type certRefused struct {
	status int
	msg    string
}

func (e *certRefused) Error() string {
	return fmt.Sprintf("control plane refused the certificate (%d %s): %s", e.status, http.StatusText(e.status), e.msg)
}

func (c *certs) post(ctx context.Context, req security.CertificateRequest, token string) (*security.CertificateResponse, error) {
	b, _ := json.Marshal(req)
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.api.Base+"/v1/certificates", bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Content-Type", "application/json")
	if token != "" {
		hr.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.api.HTTP.Do(hr)
	if err != nil {
		return nil, fmt.Errorf("control plane at %s: %w", c.api.Base, c.api.Explain(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("control plane at %s: read answer: %w", c.api.Base, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e api.Error
		if json.Unmarshal(body, &e) != nil || e.Error == "" {
			e.Error = string(bytes.TrimSpace(body))
		}
		if resp.StatusCode/100 == 4 {
			return nil, &certRefused{resp.StatusCode, e.Error}
		}
		return nil, fmt.Errorf("control plane at %s: %d: %s", c.api.Base, resp.StatusCode, e.Error)
	}
	var out security.CertificateResponse
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("control plane at %s: bad certificate answer: %w", c.api.Base, err)
	}
	return &out, nil
}

// install checks an answer and swaps its certificate in.
func (c *certs) install(key crypto.Signer, resp *security.CertificateResponse, renewal bool) error {
	chain, err := security.ParseCertificates([]byte(resp.Chain))
	if err != nil {
		return fmt.Errorf("certificate answer: chain: %w", err)
	}
	bundle, err := security.ParseCertificates([]byte(resp.TrustBundle))
	if err != nil {
		return fmt.Errorf("certificate answer: trust bundle: %w", err)
	}
	leaf := chain[0]
	if !samePublic(leaf.PublicKey, key.Public()) {
		return errors.New("certificate answer: the certificate is not for the key asked for")
	}
	id, err := security.IdentityOf(leaf)
	if err != nil || id.Service != c.service {
		return fmt.Errorf("certificate answer: identity %v (%v), want service %s", id, err, c.service)
	}
	tc := &tls.Certificate{PrivateKey: key, Leaf: leaf}
	for _, x := range chain {
		tc.Certificate = append(tc.Certificate, x.Raw)
	}
	if err := c.creds.Update(tc, bundle); err != nil {
		return err
	}
	now := c.now()
	life := leaf.NotAfter.Sub(now)
	jitter := renewJitter * (2*mrand.Float64() - 1)
	c.mu.Lock()
	c.key, c.leaf, c.chainPEM, c.got = key, leaf, resp.Chain, now
	c.renew = now.Add(time.Duration((renewAt + jitter) * float64(life)))
	c.lastErr, c.failing = "", time.Time{}
	renewAtT := c.renew
	c.mu.Unlock()
	c.expiry.Set(float64(leaf.NotAfter.Unix()))
	c.once.Do(func() { close(c.first) })
	msg := "workload certificate issued"
	if renewal {
		msg = "workload certificate renewed"
	}
	c.log.Info(msg, "spiffe_id", id.String(), "serial", leaf.SerialNumber.Text(16), "not_after", leaf.NotAfter.UTC(), "renew_at", renewAtT.UTC())
	return nil
}

func samePublic(a, b crypto.PublicKey) bool {
	e, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(b)
}

// certView is the certificate in /config: never the key.
type certView struct {
	// State is pending (none yet), valid or expired.
	State     string     `json:"state"`
	SPIFFEID  string     `json:"spiffeID,omitempty"`
	Serial    string     `json:"serial,omitempty"`
	NotBefore *time.Time `json:"notBefore,omitempty"`
	NotAfter  *time.Time `json:"notAfter,omitempty"`
	RenewAt   *time.Time `json:"renewAt,omitempty"`
	// LastError is why the last request failed, while renewal fails.
	LastError string `json:"lastError,omitempty"`
}

// certView is nil without a join token.
func (s *Sidecar) certView() *certView {
	c := s.certs
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	v := &certView{State: "pending", LastError: c.lastErr}
	if c.leaf == nil {
		return v
	}
	id, _ := security.IdentityOf(c.leaf)
	nb, na, ra := c.leaf.NotBefore.UTC(), c.leaf.NotAfter.UTC(), c.renew.UTC()
	v.State, v.SPIFFEID, v.Serial, v.NotBefore, v.NotAfter, v.RenewAt = "valid", id.String(), c.leaf.SerialNumber.Text(16), &nb, &na, &ra
	if !c.now().Before(na) {
		v.State = "expired"
	}
	return v
}

// sleepCtx waits d or until ctx ends; false when ctx ended.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
