package indep

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"strings"
	"testing"
)

// The helpers are themselves checked against Go's standard library (not
// acquit's protocol package): openssl's A005/A006 signatures verify with
// crypto/rsa under the documented EBICS input, E002 matches the
// specification's padding, and xmlsec1 both signs and verifies the X002
// template.
func TestHelpersAgainstStdlib(t *testing.T) {
	if err := Require(); err != nil {
		t.Fatal(err)
	}
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("<Document>\r\n  <x/>\n</Document>\x1a")
	h := sha256.Sum256(data)

	sig, err := SignES(A005, priv, data)
	if err != nil {
		t.Fatal(err)
	}
	if err := rsa.VerifyPKCS1v15(&priv.PublicKey, crypto.SHA256, h[:], sig); err != nil {
		t.Fatalf("A005 from openssl: %v", err)
	}
	if err := VerifyES(A005, &priv.PublicKey, data, sig); err != nil {
		t.Fatal(err)
	}
	sig, err = SignES(A006, priv, data)
	if err != nil {
		t.Fatal(err)
	}
	hh := sha256.Sum256(h[:])
	if err := rsa.VerifyPSS(&priv.PublicKey, crypto.SHA256, hh[:], sig, &rsa.PSSOptions{SaltLength: 32}); err != nil {
		t.Fatalf("A006 from openssl is not PSS over SHA-256(SHA-256(data)): %v", err)
	}
	if err := VerifyES(A006, &priv.PublicKey, data, sig); err != nil {
		t.Fatal(err)
	}
	if err := VerifyES(A006, &priv.PublicKey, StripCRLFEOF(data), sig); err == nil {
		t.Fatal("A006 verified over other data")
	}
	if got := string(StripCRLFEOF(data)); got != "<Document>  <x/></Document>" {
		t.Fatalf("strip: %q", got)
	}

	key := bytes.Repeat([]byte{7}, 16)
	for _, n := range []int{0, 1, 15, 16, 17, 1000} {
		pt := bytes.Repeat([]byte{'a'}, n)
		ct, err := EncryptE002(key, pt)
		if err != nil || len(ct) != (n/16+1)*16 {
			t.Fatalf("n=%d: %d bytes, %v", n, len(ct), err)
		}
		back, err := DecryptE002(key, ct)
		if err != nil || !bytes.Equal(back, pt) {
			t.Fatalf("n=%d: %v", n, err)
		}
	}
	wrapped, err := WrapKey(&priv.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if k, err := rsa.DecryptPKCS1v15(nil, priv, wrapped); err != nil || !bytes.Equal(k, key) {
		t.Fatalf("openssl wrap: %v", err)
	}
	if k, err := UnwrapKey(priv, wrapped); err != nil || !bytes.Equal(k, key) {
		t.Fatalf("openssl unwrap: %v", err)
	}

	msg := `<?xml version="1.0" encoding="UTF-8"?>
<ebicsResponse xmlns="urn:org:ebics:H004" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" Version="H004" Revision="1"><header authenticate="true"><static/><mutable><ReturnCode>000000</ReturnCode></mutable></header><body><DataTransfer><DataEncryptionInfo authenticate="true"><TransactionKey>AA==</TransactionKey></DataEncryptionInfo><OrderData>AA==</OrderData></DataTransfer><ReturnCode authenticate="true">000000</ReturnCode></body></ebicsResponse>`
	signed, err := SignX002([]byte(msg), priv)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(signed, []byte("<AuthSignature>")) || !bytes.Contains(signed, []byte("</AuthSignature>")) {
		t.Fatalf("not renamed back:\n%s", signed)
	}
	if err := VerifyX002(signed, &priv.PublicKey); err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Replace(signed, []byte(`<ReturnCode authenticate="true">000000`), []byte(`<ReturnCode authenticate="true">091002`), 1)
	if err := VerifyX002(tampered, &priv.PublicKey); err == nil || !strings.Contains(err.Error(), "xmlsec1") {
		t.Fatalf("tampered body verified: %v", err)
	}
}
