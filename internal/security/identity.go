// Package security holds the workload identities of the mesh and what a
// sidecar needs to prove its own and check its peers':
//
//	control plane CA (package security/ca) --signs--> workload certificate
//	  with one URI SAN: spiffe://<trust-domain>/service/<name>
//	sidecar: Credentials = current certificate + trust bundle (roots),
//	  swapped atomically on renewal or bundle rotation
//	  ClientConfig(want) / ServerConfig(): TLS 1.3 configs that read the
//	  Credentials at every handshake, so rotation needs no reconfiguration
//	PeerService(conn state): the verified peer's service
//
// The wire types of the certificate and token endpoints are here too
// (wire.go), so sidecars and the CLI share them with the control plane
// without linking it. Nothing here imports etcd.
package security

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/weftmesh/weft/internal/registry"
)

// DefaultTrustDomain is the trust domain of a control plane not told one.
const DefaultTrustDomain = "weft.local"

const (
	scheme      = "spiffe://"
	servicePath = "/service/"
	// maxIDLength is SPIFFE's bound on an ID (2048 bytes).
	maxIDLength = 2048
)

// ErrNoIdentity means a certificate or connection carries no workload
// identity that Weft accepts.
var ErrNoIdentity = errors.New("no workload identity")

// ID is a parsed workload identity.
type ID struct {
	TrustDomain string
	Service     string
}

// String is the SPIFFE ID: spiffe://<trust-domain>/service/<name>.
func (id ID) String() string { return scheme + id.TrustDomain + servicePath + id.Service }

// ServiceID is the SPIFFE ID of service in trustDomain, checked.
func ServiceID(trustDomain, service string) (string, error) {
	if err := ValidTrustDomain(trustDomain); err != nil {
		return "", err
	}
	if err := registry.ValidName(service); err != nil {
		return "", fmt.Errorf("service: %w", err)
	}
	return ID{trustDomain, service}.String(), nil
}

// ParseServiceID parses a workload identity strictly: the scheme spiffe,
// a trust domain that is a valid DNS name (lower case, no port, no user),
// and a path that is exactly /service/<valid service name>, with no
// query, fragment, percent-encoding or trailing slash.
func ParseServiceID(uri string) (ID, error) {
	if len(uri) > maxIDLength {
		return ID{}, fmt.Errorf("SPIFFE ID of %d bytes: longer than %d", len(uri), maxIDLength)
	}
	rest, ok := strings.CutPrefix(uri, scheme)
	if !ok {
		return ID{}, fmt.Errorf("SPIFFE ID %q: want the form spiffe://<trust-domain>/service/<name>", uri)
	}
	slash := strings.IndexByte(rest, '/')
	if slash < 0 {
		return ID{}, fmt.Errorf("SPIFFE ID %q: no path; want /service/<name>", uri)
	}
	td, path := rest[:slash], rest[slash:]
	if err := ValidTrustDomain(td); err != nil {
		return ID{}, fmt.Errorf("SPIFFE ID %q: %w", uri, err)
	}
	name, ok := strings.CutPrefix(path, servicePath)
	if !ok {
		return ID{}, fmt.Errorf("SPIFFE ID %q: path %q: want /service/<name>", uri, path)
	}
	if err := registry.ValidName(name); err != nil {
		return ID{}, fmt.Errorf("SPIFFE ID %q: %w", uri, err)
	}
	return ID{TrustDomain: td, Service: name}, nil
}

// ValidTrustDomain reports whether td is a DNS name in lower case: labels
// of letters, digits and '-' (not at either end), 1 to 63 each, at most
// 253 in all.
func ValidTrustDomain(td string) error {
	if td == "" || len(td) > 253 {
		return fmt.Errorf("trust domain %q: want a DNS name of 1 to 253 characters", td)
	}
	for label := range strings.SplitSeq(td, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("trust domain %q: want a DNS name (labels of 1 to 63 lower-case letters, digits or '-', not starting or ending with '-')", td)
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
				return fmt.Errorf("trust domain %q: character %q: want lower-case letters, digits, '-' and '.'", td, c)
			}
		}
	}
	return nil
}

// IdentityOf is the workload identity of a certificate: it must carry
// exactly one URI SAN, a valid service ID. Other names (DNS, IP, e-mail)
// are not looked at.
func IdentityOf(cert *x509.Certificate) (ID, error) {
	if cert == nil {
		return ID{}, fmt.Errorf("%w: no certificate", ErrNoIdentity)
	}
	switch len(cert.URIs) {
	case 0:
		return ID{}, fmt.Errorf("%w: the certificate has no URI SAN", ErrNoIdentity)
	case 1:
	default:
		return ID{}, fmt.Errorf("%w: the certificate has %d URI SANs, want exactly one", ErrNoIdentity, len(cert.URIs))
	}
	id, err := ParseServiceID(cert.URIs[0].String())
	if err != nil {
		return ID{}, fmt.Errorf("%w: %w", ErrNoIdentity, err)
	}
	return id, nil
}

// PeerService is the service of the peer of a connection whose handshake
// used ClientConfig or ServerConfig: their VerifyConnection has already
// checked the chain against the trust bundle, so the first certificate
// is the verified peer's.
func PeerService(cs tls.ConnectionState) (string, error) {
	if !cs.HandshakeComplete {
		return "", fmt.Errorf("%w: the handshake is not complete", ErrNoIdentity)
	}
	if len(cs.PeerCertificates) == 0 {
		return "", fmt.Errorf("%w: the peer sent no certificate", ErrNoIdentity)
	}
	id, err := IdentityOf(cs.PeerCertificates[0])
	if err != nil {
		return "", err
	}
	return id.Service, nil
}
