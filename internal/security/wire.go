package security

import "time"

// CertificateRequest is the body of POST /v1/certificates. A first
// certificate comes with `Authorization: Bearer <join token>`; a renewal
// instead carries Proof, made with the key of the certificate in force.
type CertificateRequest struct {
	Service string `json:"service"`
	// CSR is a PEM CERTIFICATE REQUEST for the sidecar's new key; only its
	// public key and signature are used (the names it asks for are not).
	CSR   string        `json:"csr"`
	Proof *RenewalProof `json:"proof,omitempty"`
}

// RenewalProof shows that the caller holds the certificate in force: its
// chain, and a signature by its key over the new CSR (SignRenewal).
type RenewalProof struct {
	Chain     string `json:"chain"`     // PEM, leaf first
	Signature []byte `json:"signature"` // base64 in JSON
}

// CertificateResponse is the answer to POST /v1/certificates.
type CertificateResponse struct {
	SPIFFEID string `json:"spiffeID"`
	// Chain is the new certificate and the CA's intermediates, PEM, leaf
	// first (the root is in TrustBundle, not here).
	Chain string `json:"certificateChain"`
	// TrustBundle is every root the mesh trusts now, PEM: the current one
	// and, during a rotation's overlap, the previous.
	TrustBundle string    `json:"trustBundle"`
	NotAfter    time.Time `json:"notAfter"`
}

// CAInfo is GET /v1/ca: what weft check needs to know of the CA.
type CAInfo struct {
	TrustDomain string    `json:"trustDomain"`
	Subject     string    `json:"subject"`
	Serial      string    `json:"serial"`
	NotBefore   time.Time `json:"notBefore"`
	NotAfter    time.Time `json:"notAfter"`
	// Source is "generated" (a root the control plane made in its data
	// dir) or "operator" (--ca-cert and --ca-key).
	Source string `json:"source"`
	// CertTTL is the lifetime of workload certificates, as written on the
	// command line (24h0m0s).
	CertTTL string   `json:"certTTL"`
	Roots   []CARoot `json:"roots"` // the trust bundle
}

// CARoot is one certificate of the trust bundle.
type CARoot struct {
	Subject  string    `json:"subject"`
	Serial   string    `json:"serial"`
	NotAfter time.Time `json:"notAfter"`
}

// TokenRequest is the body of POST /v1/tokens: a token for one service,
// or (Mesh) for any service, for trusted hosts.
type TokenRequest struct {
	Service    string `json:"service,omitempty"`
	Mesh       bool   `json:"mesh,omitempty"`
	TTLSeconds int64  `json:"ttlSeconds,omitempty"` // 0: the default, 24h
}

// Token is a join token as listed: never its secret.
type Token struct {
	ID      string    `json:"id"`
	Service string    `json:"service,omitempty"` // "" for a mesh-wide token
	Mesh    bool      `json:"mesh,omitempty"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
}

// Scope is the token's scope as people read it: service/NAME or mesh.
func (t Token) Scope() string {
	if t.Mesh {
		return "mesh"
	}
	return "service/" + t.Service
}

// TokenCreated is the answer to POST /v1/tokens: the only time the
// secret is shown.
type TokenCreated struct {
	Token
	Secret string `json:"token"`
}
