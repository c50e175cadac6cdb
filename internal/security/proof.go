package security

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
)

// renewalContext separates renewal signatures from anything else the
// key might sign (a TLS handshake's CertificateVerify, another protocol).
const renewalContext = "weft certificate renewal v1\x00"

func renewalDigest(csrDER []byte) []byte {
	h := sha256.New()
	h.Write([]byte(renewalContext))
	h.Write(csrDER)
	return h.Sum(nil)
}

// SignRenewal signs a new CSR (DER) with the key of the certificate in
// force, for a RenewalProof.
func SignRenewal(key crypto.Signer, csrDER []byte) ([]byte, error) {
	d := renewalDigest(csrDER)
	switch key.Public().(type) {
	case ed25519.PublicKey:
		return key.Sign(rand.Reader, d, crypto.Hash(0))
	case *ecdsa.PublicKey, *rsa.PublicKey:
		return key.Sign(rand.Reader, d, crypto.SHA256)
	default:
		return nil, fmt.Errorf("renewal proof: key type %T not supported", key.Public())
	}
}

// VerifyRenewal checks a RenewalProof's signature over csrDER with the
// public key of the certificate it presents.
func VerifyRenewal(pub crypto.PublicKey, csrDER, sig []byte) error {
	d := renewalDigest(csrDER)
	ok := false
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		ok = ecdsa.VerifyASN1(k, d, sig)
	case ed25519.PublicKey:
		ok = ed25519.Verify(k, d, sig)
	case *rsa.PublicKey:
		ok = rsa.VerifyPKCS1v15(k, crypto.SHA256, d, sig) == nil
	default:
		return fmt.Errorf("renewal proof: key type %T not supported", pub)
	}
	if !ok {
		return errors.New("renewal proof: the signature over the CSR is not by the key of the certificate presented")
	}
	return nil
}
