package security_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"testing"

	"github.com/weftmesh/weft/internal/security"
)

func TestRenewalProof(t *testing.T) {
	t.Parallel()
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr := []byte("the new CSR's DER")
	for _, key := range []crypto.Signer{ec, ed} {
		sig, err := security.SignRenewal(key, csr)
		if err != nil {
			t.Fatalf("%T: SignRenewal: %v", key, err)
		}
		if err := security.VerifyRenewal(key.Public(), csr, sig); err != nil {
			t.Errorf("%T: a good proof: %v", key, err)
		}
		if err := security.VerifyRenewal(key.Public(), []byte("another CSR"), sig); err == nil {
			t.Errorf("%T: a proof over another CSR: accepted", key)
		}
		if err := security.VerifyRenewal(other.Public(), csr, sig); err == nil {
			t.Errorf("%T: a proof checked with another key: accepted", key)
		}
	}
}
