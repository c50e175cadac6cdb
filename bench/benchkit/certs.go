package benchkit

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// TLSServerName is the DNS name in the certificate of the back hop of the
// nginx-tls and haproxy-tls pairs; the front hop verifies it.
const TLSServerName = "backend.bench"

// TLSFiles are the PEM files of the TLS pairs, made at run time in the
// run's work dir: one CA, a server certificate for the back hop and a
// client certificate for the front hop (mutual TLS, as between Weft
// sidecars).
type TLSFiles struct {
	CA         string // CA certificate
	ServerCert string // back hop: certificate
	ServerKey  string // back hop: key
	ServerPEM  string // back hop: certificate then key (HAProxy's crt)
	ClientCert string // front hop: certificate
	ClientKey  string // front hop: key
	ClientPEM  string // front hop: certificate then key (HAProxy's crt)
}

// MakeCerts writes an ECDSA P-256 CA and a server and a client certificate
// signed by it (the same key type Weft's CA issues) into dir.
func MakeCerts(dir string) (*TLSFiles, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("certificates: %w", err)
	}
	// nginx workers run as nobody: the directory and the keys must be readable.
	_ = os.Chmod(dir, 0o755)
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certificates: CA key: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "weft bench CA"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("certificates: CA: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("certificates: CA: %w", err)
	}
	f := &TLSFiles{
		CA:         filepath.Join(dir, "ca.crt"),
		ServerCert: filepath.Join(dir, "server.crt"), ServerKey: filepath.Join(dir, "server.key"), ServerPEM: filepath.Join(dir, "server.pem"),
		ClientCert: filepath.Join(dir, "client.crt"), ClientKey: filepath.Join(dir, "client.key"), ClientPEM: filepath.Join(dir, "client.pem"),
	}
	if err := writePEM(f.CA, pemBlock("CERTIFICATE", caDER)); err != nil {
		return nil, err
	}
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, certFile, keyFile, both string) error {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return fmt.Errorf("certificates: %s key: %w", cn, err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    now.Add(-time.Minute),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			DNSNames:     []string{cn},
			IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return fmt.Errorf("certificates: %s: %w", cn, err)
		}
		kder, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return fmt.Errorf("certificates: %s key: %w", cn, err)
		}
		c, k := pemBlock("CERTIFICATE", der), pemBlock("PRIVATE KEY", kder)
		if err := writePEM(certFile, c); err != nil {
			return err
		}
		if err := writePEM(keyFile, k); err != nil {
			return err
		}
		return writePEM(both, append(append([]byte(nil), c...), k...))
	}
	if err := leaf(2, TLSServerName, x509.ExtKeyUsageServerAuth, f.ServerCert, f.ServerKey, f.ServerPEM); err != nil {
		return nil, err
	}
	if err := leaf(3, "front.bench", x509.ExtKeyUsageClientAuth, f.ClientCert, f.ClientKey, f.ClientPEM); err != nil {
		return nil, err
	}
	return f, nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// writePEM writes a file readable by the proxies' workers (a throwaway
// key of a benchmark, in a temp dir removed at the end).
func writePEM(name string, b []byte) error {
	if err := os.WriteFile(name, b, 0o644); err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	return nil
}
