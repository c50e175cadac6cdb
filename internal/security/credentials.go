package security

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNoCertificate means the Credentials hold no certificate yet.
var ErrNoCertificate = errors.New("no workload certificate yet")

// Credentials is what a sidecar holds to prove who it is and to check
// its peers: its current certificate and the trust bundle, one or more
// roots (several while a root rotation overlaps). Both are swapped
// together, atomically; the TLS configs read them at every handshake.
type Credentials struct {
	state    atomic.Pointer[credState]
	sessions tls.ClientSessionCache
	now      func() time.Time
}

type credState struct {
	cert   *tls.Certificate // Leaf set
	id     ID
	roots  *x509.CertPool
	bundle []*x509.Certificate
	// verified remembers the peers' chains this state's bundle has
	// verified (verifycache.go): a new bundle, or a new certificate of
	// ours, starts with an empty one.
	verified verifyCache
}

// NewCredentials returns empty Credentials: handshakes fail with
// ErrNoCertificate until Update.
func NewCredentials() *Credentials {
	return &Credentials{sessions: tls.NewLRUClientSessionCache(256), now: time.Now}
}

// Update swaps in a certificate (its chain in cert.Certificate, leaf
// first) and the trust bundle. The leaf must carry a service identity and
// chain to one of the bundle's roots.
func (c *Credentials) Update(cert *tls.Certificate, bundle []*x509.Certificate) error {
	if cert == nil || len(cert.Certificate) == 0 {
		return errors.New("credentials: no certificate")
	}
	if len(bundle) == 0 {
		return errors.New("credentials: empty trust bundle")
	}
	leaf := cert.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return fmt.Errorf("credentials: leaf certificate: %w", err)
		}
	}
	id, err := IdentityOf(leaf)
	if err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	pool := x509.NewCertPool()
	for _, r := range bundle {
		pool.AddCert(r)
	}
	cc := *cert
	cc.Leaf = leaf
	if _, err := verifyChain(cc.Certificate, pool, leaf.NotBefore.Add(time.Second), x509.ExtKeyUsageAny); err != nil {
		return fmt.Errorf("credentials: the certificate does not chain to the trust bundle: %w", err)
	}
	c.state.Store(&credState{cert: &cc, id: id, roots: pool, bundle: append([]*x509.Certificate(nil), bundle...)})
	return nil
}

// Certificate is the certificate in force (nil before the first Update).
func (c *Credentials) Certificate() *tls.Certificate {
	if st := c.state.Load(); st != nil {
		return st.cert
	}
	return nil
}

// ID is the identity of the certificate in force.
func (c *Credentials) ID() (ID, bool) {
	if st := c.state.Load(); st != nil {
		return st.id, true
	}
	return ID{}, false
}

// Bundle is the trust bundle in force.
func (c *Credentials) Bundle() []*x509.Certificate {
	if st := c.state.Load(); st != nil {
		return st.bundle
	}
	return nil
}

func (c *Credentials) current() (*credState, error) {
	st := c.state.Load()
	if st == nil {
		return nil, ErrNoCertificate
	}
	return st, nil
}

// meshCurves is the key exchange of mutual TLS between sidecars: ECDHE
// on P-256, else X25519. Go's default puts the hybrid X25519MLKEM768
// first, and every handshake pays for it, resumed ones included (TLS 1.3
// resumption still runs a key exchange): with the chain checks it was
// most of a new connection's CPU on each side, and 1.1 KB more in each
// ClientHello. P-256 before X25519: Go's P-256 has a precomputed table
// for the key generation and took 0.65x X25519's time per exchange. A
// peer that offers another first (a sidecar of an older version) is
// still answered without a HelloRetryRequest when it sent an X25519
// share. docs/adr/0015 has the trade-off.
var meshCurves = []tls.CurveID{tls.CurveP256, tls.X25519}

// ClientConfig is the TLS config of a connection to a sidecar of
// wantService ("" accepts any service of the trust domain): TLS 1.3 only,
// the client certificate taken at each handshake (GetClientCertificate),
// the server's chain checked against the bundle in force and its SPIFFE
// ID against wantService (VerifyConnection, resumed sessions included),
// and sessions resumed from a cache shared by every config of these
// Credentials. The server name is left empty, so the cache is keyed by
// the peer's address; a caller that sets ServerName (SNI) shares tickets
// by that name instead. Records are full-sized from the first byte (no
// dynamic record sizing: between sidecars it only splits writes).
func (c *Credentials) ClientConfig(wantService string) *tls.Config {
	return &tls.Config{
		MinVersion:                  tls.VersionTLS13,
		CurvePreferences:            meshCurves,
		DynamicRecordSizingDisabled: true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			st, err := c.current()
			if err != nil {
				return nil, err
			}
			return st.cert, nil
		},
		// The chain is verified in VerifyConnection, against the bundle
		// in force at the handshake and for the SPIFFE ID, not a host name.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return c.verifyPeer(cs, x509.ExtKeyUsageServerAuth, wantService)
		},
		ClientSessionCache: c.sessions,
	}
}

// ServerConfig is the TLS config of a sidecar's listener: TLS 1.3 only,
// a client certificate required and checked against the bundle in force
// (any service of the trust domain; PeerService says which), the server
// certificate taken at each handshake (GetCertificate). A listener must
// use one ServerConfig for every handshake: its session ticket keys are
// its own, so a ticket another config issued does not resume.
func (c *Credentials) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:                  tls.VersionTLS13,
		CurvePreferences:            meshCurves,
		DynamicRecordSizingDisabled: true,
		ClientAuth:                  tls.RequireAnyClientCert,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			st, err := c.current()
			if err != nil {
				return nil, err
			}
			return st.cert, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			return c.verifyPeer(cs, x509.ExtKeyUsageClientAuth, "")
		},
	}
}

// verifyPeer checks the peer's chain against the bundle in force, now,
// for usage, and that its identity is in this trust domain (and of
// wantService, when not ""). A chain the bundle in force has verified
// before, for usage, is taken from the cache while now is within the
// validity of every certificate in it: the chain verification (a
// signature check per certificate) is most of a resumed handshake's CPU.
func (c *Credentials) verifyPeer(cs tls.ConnectionState, usage x509.ExtKeyUsage, wantService string) error {
	st, err := c.current()
	if err != nil {
		return err
	}
	if len(cs.PeerCertificates) == 0 {
		return fmt.Errorf("%w: the peer sent no certificate", ErrNoIdentity)
	}
	now := c.now()
	id, ok := st.verified.lookup(cs.PeerCertificates, usage, now)
	if !ok {
		raw := make([][]byte, len(cs.PeerCertificates))
		for i, pc := range cs.PeerCertificates {
			raw[i] = pc.Raw
		}
		leaf, chain, err := verifyChainOf(raw, st.roots, now, usage)
		if err != nil {
			return err
		}
		if id, err = IdentityOf(leaf); err != nil {
			return err
		}
		st.verified.store(cs.PeerCertificates, chain, usage, id)
	}
	if id.TrustDomain != st.id.TrustDomain {
		return fmt.Errorf("peer %s: trust domain %q, want %q", id, id.TrustDomain, st.id.TrustDomain)
	}
	if wantService != "" && id.Service != wantService {
		return fmt.Errorf("peer %s: service %q, want %q", id, id.Service, wantService)
	}
	return nil
}

// verifyChain checks a chain (leaf first, DER) against roots at time now
// for usage, and returns the parsed leaf.
func verifyChain(chain [][]byte, roots *x509.CertPool, now time.Time, usage x509.ExtKeyUsage) (*x509.Certificate, error) {
	leaf, _, err := verifyChainOf(chain, roots, now, usage)
	return leaf, err
}

// verifyChainOf is verifyChain that also returns the chain it verified,
// leaf to root.
func verifyChainOf(chain [][]byte, roots *x509.CertPool, now time.Time, usage x509.ExtKeyUsage) (*x509.Certificate, []*x509.Certificate, error) {
	if len(chain) == 0 {
		return nil, nil, errors.New("empty certificate chain")
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return nil, nil, fmt.Errorf("leaf certificate: %w", err)
	}
	inter := x509.NewCertPool()
	for i, der := range chain[1:] {
		ic, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, nil, fmt.Errorf("certificate %d of the chain: %w", i+1, err)
		}
		inter.AddCert(ic)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}})
	if err != nil {
		return nil, nil, fmt.Errorf("certificate %s: %w", describe(leaf), err)
	}
	return leaf, chains[0], nil
}

// maxVerified bounds a verifyCache: about one entry per peer instance
// that calls or is called; past it the cache starts again empty.
const maxVerified = 4096

// verifyCache remembers the peer chains that one trust bundle has
// verified, so that a handshake with a peer seen before (a resumed
// session's, above all) costs no signature checks. An entry is the chain
// as the peer presented it (matched byte for byte), the usages it was
// verified for, the identity it proves, and the window in which every
// certificate of the verified chain, root included, is valid: outside
// it the chain is verified again, and fails. A new bundle or a new
// certificate of ours comes with a new, empty cache (credState).
type verifyCache struct {
	mu sync.Mutex
	m  map[string]*verifiedChain // by the leaf's DER
}

type verifiedChain struct {
	rest      [][]byte // the DER of the presented certificates after the leaf
	usages    []x509.ExtKeyUsage
	id        ID
	notBefore time.Time
	notAfter  time.Time
}

// lookup returns the identity of a presented chain verified before for
// usage, when now is within its validity.
func (vc *verifyCache) lookup(presented []*x509.Certificate, usage x509.ExtKeyUsage, now time.Time) (ID, bool) {
	vc.mu.Lock()
	defer vc.mu.Unlock()
	e := vc.m[string(presented[0].Raw)]
	if e == nil || now.Before(e.notBefore) || now.After(e.notAfter) || len(e.rest) != len(presented)-1 {
		return ID{}, false
	}
	for i, der := range e.rest {
		if !bytes.Equal(der, presented[i+1].Raw) {
			return ID{}, false
		}
	}
	for _, u := range e.usages {
		if u == usage {
			return e.id, true
		}
	}
	return ID{}, false
}

// store remembers that presented verified as chain for usage, proving id.
func (vc *verifyCache) store(presented, chain []*x509.Certificate, usage x509.ExtKeyUsage, id ID) {
	e := &verifiedChain{id: id, usages: []x509.ExtKeyUsage{usage}}
	for _, c := range presented[1:] {
		e.rest = append(e.rest, c.Raw)
	}
	for i, c := range chain {
		if i == 0 || c.NotBefore.After(e.notBefore) {
			e.notBefore = c.NotBefore
		}
		if i == 0 || c.NotAfter.Before(e.notAfter) {
			e.notAfter = c.NotAfter
		}
	}
	key := string(presented[0].Raw)
	vc.mu.Lock()
	defer vc.mu.Unlock()
	if old := vc.m[key]; old != nil && old.id == id && old.notAfter.Equal(e.notAfter) && slices.EqualFunc(old.rest, e.rest, bytes.Equal) {
		for _, u := range old.usages {
			if u != usage {
				e.usages = append(e.usages, u)
			}
		}
	}
	if vc.m == nil || len(vc.m) >= maxVerified {
		vc.m = make(map[string]*verifiedChain)
	}
	vc.m[key] = e
}

// VerifyChain checks a chain (leaf first, DER) against bundle at now,
// for client use, and returns the leaf and its identity. The control
// plane uses it on a renewal's proof.
func VerifyChain(chain [][]byte, bundle []*x509.Certificate, now time.Time) (*x509.Certificate, ID, error) {
	pool := x509.NewCertPool()
	for _, r := range bundle {
		pool.AddCert(r)
	}
	leaf, err := verifyChain(chain, pool, now, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return nil, ID{}, err
	}
	id, err := IdentityOf(leaf)
	return leaf, id, err
}

func describe(c *x509.Certificate) string {
	if len(c.URIs) == 1 {
		return c.URIs[0].String()
	}
	return "serial " + c.SerialNumber.Text(16)
}

// ParseCertificates reads every CERTIFICATE block of PEM data; anything
// else in it is an error.
func ParseCertificates(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d: type %q, want CERTIFICATE", len(out)+1, b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", len(out)+1, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return out, nil
}

// EncodeCertificates is certs as PEM, in order.
func EncodeCertificates(certs []*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}
