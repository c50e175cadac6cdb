package main

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

// tlsServerName is the DNS name in the back hop's certificate of the
// nginx-tls and haproxy-tls pairs; the front hop verifies it.
const tlsServerName = "backend.bench"

// tlsFiles are the PEM files of the TLS pairs, made at run time in the
// run's work dir: a CA, a server certificate for the back hop and a
// client certificate for the front hop (mutual TLS, as between Weft
// sidecars).
type tlsFiles struct {
	CA                               string
	ServerCert, ServerKey, ServerPEM string // PEM: certificate then key (HAProxy's crt)
	ClientCert, ClientKey, ClientPEM string
}

// makeCerts writes an ECDSA P-256 CA and a server and a client
// certificate it signs (the key type Weft's CA issues) into dir.
func makeCerts(dir string) (*tlsFiles, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("certificates: %w", err)
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certificates: CA key: %w", err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "weft bench CA"},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("certificates: CA: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("certificates: CA: %w", err)
	}
	at := func(name string) string { return filepath.Join(dir, name) }
	f := &tlsFiles{CA: at("ca.crt"),
		ServerCert: at("server.crt"), ServerKey: at("server.key"), ServerPEM: at("server.pem"),
		ClientCert: at("client.crt"), ClientKey: at("client.key"), ClientPEM: at("client.pem")}
	if err := writePEM(f.CA, pemBlock("CERTIFICATE", caDER)); err != nil {
		return nil, err
	}
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, certFile, keyFile, both string) error {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return fmt.Errorf("certificates: %s key: %w", cn, err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Minute), NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, DNSNames: []string{cn}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
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
	if err := leaf(2, tlsServerName, x509.ExtKeyUsageServerAuth, f.ServerCert, f.ServerKey, f.ServerPEM); err != nil {
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

// writePEM writes a file the proxies' workers can read (a throwaway key
// of a benchmark, in a temp dir removed at the end).
func writePEM(name string, b []byte) error {
	if err := os.WriteFile(name, b, 0o644); err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	return nil
}
