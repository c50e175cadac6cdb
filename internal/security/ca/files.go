package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/weftmesh/weft/internal/security"
)

// loadOrCreate reads the generated root in dir, or makes one.
func loadOrCreate(dir, td string, now time.Time) ([]*x509.Certificate, crypto.Signer, bool, error) {
	certPath, keyPath := filepath.Join(dir, RootCertFile), filepath.Join(dir, RootKeyFile)
	_, certErr := os.Stat(certPath)
	_, keyErr := os.Stat(keyPath)
	switch {
	case certErr == nil && keyErr == nil:
		certs, key, err := load(certPath, keyPath)
		return certs, key, false, err
	case errors.Is(certErr, fs.ErrNotExist) && errors.Is(keyErr, fs.ErrNotExist):
	case certErr == nil || keyErr == nil:
		return nil, nil, false, fmt.Errorf("CA in %s: one of %s and %s is missing; restore it, or move both away to make a new root (every sidecar then needs a new certificate)", dir, RootCertFile, RootKeyFile)
	default:
		return nil, nil, false, fmt.Errorf("CA in %s: %w", dir, errors.Join(certErr, keyErr))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, false, fmt.Errorf("CA directory %s: %w", dir, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, false, fmt.Errorf("CA key: %w", err)
	}
	tdURI, _ := url.Parse("spiffe://" + td)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Organization: []string{"Weft"}, CommonName: "Weft root CA " + td},
		NotBefore:             now.Add(-ClockSkew),
		NotAfter:              now.Add(RootLifetime),
		URIs:                  []*url.URL{tdURI},
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, false, fmt.Errorf("CA root: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, false, fmt.Errorf("CA root: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, false, fmt.Errorf("CA key: %w", err)
	}
	// The key first, created 0600: a root without its key is useless, a
	// key without its root is refused at the next start (above).
	if err := writeNew(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, nil, false, err
	}
	if err := writeNew(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, nil, false, err
	}
	return []*x509.Certificate{cert}, key, true, nil
}

// writeNew writes a file that must not exist yet, with mode perm, synced.
func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// load reads a CA certificate file (the signing certificate, then its
// chain) and its key, which must be readable by its owner only.
func load(certPath, keyPath string) ([]*x509.Certificate, crypto.Signer, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, fmt.Errorf("CA certificate: %w", err)
	}
	certs, err := security.ParseCertificates(certPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("CA certificate %s: %w", certPath, err)
	}
	st, err := os.Stat(keyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("CA key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, nil, fmt.Errorf("CA key %s has mode %04o: it must be readable by its owner only (chmod 600 %s)", keyPath, st.Mode().Perm(), keyPath)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("CA key: %w", err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("CA key %s: %w", keyPath, err)
	}
	return certs, key, nil
}

func parseKey(data []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, errors.New("no PEM block")
	}
	var k any
	var err error
	switch b.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("PEM type %q, want PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY", b.Type)
	}
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key type %T cannot sign", k)
	}
	return s, nil
}

// previousRoots reads the roots kept for a rotation's overlap, dropping
// those that have expired; no file means none.
func previousRoots(path string, now time.Time) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("previous roots: %w", err)
	}
	certs, err := security.ParseCertificates(data)
	if err != nil {
		return nil, fmt.Errorf("previous roots %s: %w", path, err)
	}
	var out []*x509.Certificate
	for _, c := range certs {
		if now.Before(c.NotAfter) {
			out = append(out, c)
		}
	}
	return out, nil
}

// Rotate retires the generated root in dir: its certificate is added to
// previous.crt (kept in the trust bundle until it expires, the overlap)
// and its key is removed, so the next Open makes a new root. Sidecars
// move to the new root at their next renewal, by proof, since the old
// root still vouches for the certificate they hold.
func Rotate(dir string) error {
	certPath, keyPath := filepath.Join(dir, RootCertFile), filepath.Join(dir, RootKeyFile)
	old, err := os.ReadFile(certPath)
	if err != nil {
		return fmt.Errorf("rotate the CA root: %w", err)
	}
	if _, err := security.ParseCertificates(old); err != nil {
		return fmt.Errorf("rotate the CA root: %s: %w", certPath, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, PreviousFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("rotate the CA root: %w", err)
	}
	if _, err := f.Write(old); err != nil {
		f.Close()
		return fmt.Errorf("rotate the CA root: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("rotate the CA root: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("rotate the CA root: %w", err)
	}
	if err := os.Remove(keyPath); err != nil {
		return fmt.Errorf("rotate the CA root: %w", err)
	}
	if err := os.Remove(certPath); err != nil {
		return fmt.Errorf("rotate the CA root: %w", err)
	}
	return nil
}
