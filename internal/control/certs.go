package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/internal/registry"
	"github.com/weftmesh/weft/internal/security"
	"github.com/weftmesh/weft/internal/security/ca"
	"github.com/weftmesh/weft/internal/telemetry"
)

// DefaultCertTTL is the lifetime of a workload certificate.
const DefaultCertTTL = 24 * time.Hour

// identity is the control plane's CA and what it counts.
type identity struct {
	ca      *ca.CA
	ttl     time.Duration
	issued  *prometheus.CounterVec // how: join-token, renewal
	refused *prometheus.CounterVec // reason: unauthenticated, forbidden, bad-request
}

// newIdentity opens the CA: the operator's (--ca-cert, --ca-key), or the
// root in <data-dir>/ca, made on first start.
func newIdentity(cfg Config, reg *prometheus.Registry, log *slog.Logger) (*identity, error) {
	dir := filepath.Join(cfg.DataDir, "ca")
	if cfg.CARotate {
		if cfg.CACert != "" {
			return nil, errors.New("--ca-rotate rotates the root made in --data-dir/ca; with --ca-cert, give the new CA there (and the old anchor in " + filepath.Join(dir, ca.PreviousFile) + ")")
		}
		if err := ca.Rotate(dir); err != nil {
			return nil, fmt.Errorf("--ca-rotate: %w", err)
		}
		log.Warn("CA root rotated: a new root is made; the old one stays in the trust bundle until it expires (remove "+ca.PreviousFile+" once every sidecar has renewed)", "dir", dir)
	}
	c, err := ca.Open(ca.Config{Dir: dir, CertFile: cfg.CACert, KeyFile: cfg.CAKey, TrustDomain: cfg.TrustDomain})
	if err != nil {
		return nil, err
	}
	root := c.Certificate()
	switch {
	case c.Created:
		log.Info("CA root created", "dir", dir, "trust_domain", c.TrustDomain(), "not_after", root.NotAfter.UTC())
	default:
		log.Info("CA loaded", "source", c.Source(), "subject", root.Subject.String(), "trust_domain", c.TrustDomain(), "not_after", root.NotAfter.UTC())
	}
	if len(cfg.EtcdEndpoints) > 0 && cfg.CACert == "" {
		log.Warn("CA root is this control plane's own (in its data dir): with several control planes on one etcd, give each the same --ca-cert and --ca-key, or their sidecars will not trust each other")
	}
	id := &identity{ca: c, ttl: cfg.CertTTL,
		issued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_control_certificates_issued_total",
			Help: "Workload certificates issued, by how the sidecar proved itself: join-token (a first certificate) or renewal (its certificate in force).",
		}, []string{"how"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_control_certificates_refused_total",
			Help: "Certificate requests refused: unauthenticated (no or unknown join token, bad renewal proof), forbidden (a token or certificate of another service), bad-request.",
		}, []string{"reason"}),
	}
	expiry := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "weft_control_ca_expiry_timestamp_seconds",
		Help: "When the CA's signing certificate expires (Unix time).",
	}, func() float64 { return float64(root.NotAfter.Unix()) })
	for _, l := range []string{"join-token", "renewal"} {
		id.issued.WithLabelValues(l)
	}
	for _, l := range []string{"unauthenticated", "forbidden", "bad-request"} {
		id.refused.WithLabelValues(l)
	}
	if err := reg.Register(id.issued); err != nil {
		return nil, err
	}
	if err := reg.Register(id.refused); err != nil {
		return nil, err
	}
	if err := reg.Register(expiry); err != nil {
		return nil, err
	}
	return id, nil
}

func (c *Control) mountCertificates(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/certificates", c.issueCertificate)
	mux.HandleFunc("GET /v1/ca", c.caInfo)
}

// certError is a refusal: its status, the metric's reason and the message.
type certError struct {
	code   int
	reason string
	err    error
}

func (e *certError) Error() string { return e.err.Error() }

func refuse(code int, reason string, format string, a ...any) *certError {
	return &certError{code, reason, fmt.Errorf(format, a...)}
}

// issueCertificate is POST /v1/certificates: a certificate for the CSR's
// key, to a sidecar that proves it may have one for the service, with a
// join token (a first certificate) or its certificate in force (a
// renewal). The certificate goes only in this answer.
func (c *Control) issueCertificate(w http.ResponseWriter, r *http.Request) {
	resp, how, err := c.certificateFor(r)
	if err != nil {
		var ce *certError
		if !errors.As(err, &ce) {
			fail(w, http.StatusServiceUnavailable, err)
			return
		}
		c.identity.refused.WithLabelValues(ce.reason).Inc()
		c.log.Warn("certificate refused", "reason", ce.reason, "err", ce.err, "remote", r.RemoteAddr)
		if ce.code == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="weft"`)
		}
		fail(w, ce.code, ce.err)
		return
	}
	c.identity.issued.WithLabelValues(how).Inc()
	c.log.Debug("certificate issued", "spiffe_id", resp.SPIFFEID, "how", how, "not_after", resp.NotAfter)
	telemetry.WriteJSON(w, http.StatusOK, resp)
}

func (c *Control) certificateFor(r *http.Request) (*security.CertificateResponse, string, error) {
	var req security.CertificateRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
		return nil, "", refuse(http.StatusBadRequest, "bad-request", "body: %v", err)
	}
	if err := registry.ValidName(req.Service); err != nil {
		return nil, "", refuse(http.StatusBadRequest, "bad-request", "service: %v", err)
	}
	csr, err := ca.ParseCSR([]byte(req.CSR))
	if err != nil {
		return nil, "", refuse(http.StatusBadRequest, "bad-request", "%v", err)
	}
	how := "join-token"
	switch auth := r.Header.Get("Authorization"); {
	case auth != "":
		scheme, token, _ := strings.Cut(auth, " ")
		if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
			return nil, "", refuse(http.StatusUnauthorized, "unauthenticated", "Authorization: want Bearer <join token>")
		}
		tok, err := c.checkToken(r.Context(), strings.TrimSpace(token))
		switch {
		case errors.Is(err, errTokenUnknown) || errors.Is(err, errTokenMalformed):
			return nil, "", refuse(http.StatusUnauthorized, "unauthenticated", "%v", err)
		case err != nil:
			return nil, "", err
		case !tok.Mesh && tok.Service != req.Service:
			return nil, "", refuse(http.StatusForbidden, "forbidden", "join token %s is for service %s, not %s", tok.ID, tok.Service, req.Service)
		}
	case req.Proof != nil:
		how = "renewal"
		if err := c.checkRenewal(req, csr.Raw); err != nil {
			return nil, "", err
		}
	default:
		return nil, "", refuse(http.StatusUnauthorized, "unauthenticated", "no join token (Authorization: Bearer <token>, from weft token create) and no renewal proof")
	}
	issued, err := c.identity.ca.Sign(csr, req.Service, c.identity.ttl)
	if err != nil {
		return nil, "", refuse(http.StatusBadRequest, "bad-request", "%v", err)
	}
	return &security.CertificateResponse{
		SPIFFEID:    issued.ID,
		Chain:       string(security.EncodeCertificates(issued.Chain)),
		TrustBundle: string(c.identity.ca.BundlePEM()),
		NotAfter:    issued.Cert.NotAfter.UTC(),
	}, how, nil
}

// checkRenewal accepts a renewal whose proof shows the certificate in
// force: a chain that verifies against the trust bundle now (so not
// expired), of this trust domain and the service asked for, and a
// signature by its key over the new CSR.
func (c *Control) checkRenewal(req security.CertificateRequest, csrDER []byte) error {
	certs, err := security.ParseCertificates([]byte(req.Proof.Chain))
	if err != nil {
		return refuse(http.StatusUnauthorized, "unauthenticated", "renewal proof: chain: %v", err)
	}
	raw := make([][]byte, len(certs))
	for i, x := range certs {
		raw[i] = x.Raw
	}
	leaf, id, err := security.VerifyChain(raw, c.identity.ca.Bundle(), time.Now())
	if err != nil {
		return refuse(http.StatusUnauthorized, "unauthenticated", "renewal proof: %v (a sidecar whose certificate expired needs its join token again)", err)
	}
	if id.TrustDomain != c.identity.ca.TrustDomain() {
		return refuse(http.StatusUnauthorized, "unauthenticated", "renewal proof: %s is not of trust domain %s", id, c.identity.ca.TrustDomain())
	}
	if id.Service != req.Service {
		return refuse(http.StatusForbidden, "forbidden", "renewal proof: the certificate is %s, not of service %s", id, req.Service)
	}
	if err := security.VerifyRenewal(leaf.PublicKey, csrDER, req.Proof.Signature); err != nil {
		return refuse(http.StatusUnauthorized, "unauthenticated", "%v", err)
	}
	return nil
}

// caInfo is GET /v1/ca: the CA's certificate and the trust bundle, for
// weft check. Nothing in it is secret.
func (c *Control) caInfo(w http.ResponseWriter, r *http.Request) {
	a := c.identity.ca
	cert := a.Certificate()
	out := security.CAInfo{TrustDomain: a.TrustDomain(), Subject: cert.Subject.String(), Serial: cert.SerialNumber.Text(16),
		NotBefore: cert.NotBefore.UTC(), NotAfter: cert.NotAfter.UTC(), Source: a.Source(), CertTTL: c.identity.ttl.String()}
	for _, root := range a.Bundle() {
		out.Roots = append(out.Roots, security.CARoot{Subject: root.Subject.String(), Serial: root.SerialNumber.Text(16), NotAfter: root.NotAfter.UTC()})
	}
	telemetry.WriteJSON(w, http.StatusOK, out)
}
