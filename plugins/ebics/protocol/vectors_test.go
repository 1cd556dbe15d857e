package protocol

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/acquit/acquit/plugins/ebics/indep"
)

// Vectors from published EBICS implementations (testdata/SOURCES.md):
// acquit must reproduce the digests other implementations (and a bank
// server) computed, and decrypt/verify what they produced.

// nodeKeys opens node-ebics-client's test keystore (its TEST_KEYS.key:
// base64 of the hex of AES-256-CBC ciphertext, key and IV derived from the
// passphrase "test" with OpenSSL's MD5 EVP_BytesToKey) with the openssl
// command line, and returns its PEM keys by name (A006, X002, E002 private;
// bankX002, bankE002 public).
func nodeKeys(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile("testdata/node_TEST_KEYS.key")
	if err != nil {
		t.Fatal(err)
	}
	hexText, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	ct, err := hex.DecodeString(string(hexText))
	if err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(t.TempDir(), "keys.enc")
	os.WriteFile(in, ct, 0o600)
	out, err := exec.Command("openssl", "enc", "-d", "-aes-256-cbc", "-md", "md5", "-nosalt", "-pass", "pass:test", "-in", in).Output()
	if err != nil {
		t.Fatalf("openssl: %v", err)
	}
	var m map[string]string
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func pemPrivate(t *testing.T, s string) *rsa.PrivateKey {
	t.Helper()
	b, _ := pem.Decode([]byte(s))
	if b == nil {
		t.Fatal("no PEM block")
	}
	k, err := x509.ParsePKCS1PrivateKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pemPublic(t *testing.T, s string) *rsa.PublicKey {
	t.Helper()
	b, _ := pem.Decode([]byte(s))
	if b == nil {
		t.Fatal("no PEM block")
	}
	k, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(*rsa.PublicKey)
}

// The initialisation letter node-ebics-client printed for its test keys
// (A006, X002, E002 in that order) gives three EBICS 2.5 public key hashes;
// the Credit Suisse test server's HPB response gives its own hash of the
// client's E002 key (EncryptionPubKeyDigest). acquit's KeyHash reproduces
// all of them, and the ebics-client-php HashGenerator vector too.
func TestKeyHashVectors(t *testing.T) {
	requireIndep(t)
	keys := nodeKeys(t)
	letter, err := os.ReadFile("testdata/node_Letter_DE.html")
	if err != nil {
		t.Fatal(err)
	}
	text := regexp.MustCompile(`<[^>]*>`).ReplaceAllString(string(letter), " ")
	var hashes []string
	for _, m := range regexp.MustCompile(`Hash \(SHA-256\):\s*((?:[0-9A-F]{2}\s+){31}[0-9A-F]{2})`).FindAllStringSubmatch(text, -1) {
		hashes = append(hashes, m[1])
	}
	if len(hashes) != 3 {
		t.Fatalf("letter has %d hashes, want 3", len(hashes))
	}
	for i, name := range []string{"A006", "X002", "E002"} {
		want, err := ParseHash(hashes[i])
		if err != nil {
			t.Fatal(err)
		}
		if got := KeyHash(&pemPrivate(t, keys[name]).PublicKey); !bytes.Equal(got, want) {
			t.Errorf("%s: KeyHash %X, node-ebics-client letter says %X", name, got, want)
		}
	}
	resp, _ := os.ReadFile("testdata/node_HPB_response.xml")
	m := regexp.MustCompile(`<EncryptionPubKeyDigest[^>]*>([^<]+)<`).FindSubmatch(resp)
	bankSays, _ := base64.StdEncoding.DecodeString(string(m[1]))
	if got := KeyHash(&pemPrivate(t, keys["E002"]).PublicKey); !bytes.Equal(got, bankSays) {
		t.Errorf("E002: KeyHash %X, the bank's EncryptionPubKeyDigest says %X", got, bankSays)
	}
	php, _ := os.ReadFile("testdata/php_hashgenerator_pub.pem")
	if got := hex.EncodeToString(KeyHash(pemPublic(t, string(php)))); got != "e1955c3873327e1791aca42e350cea48196f7934648d48b60228eaf5d10ee0c4" {
		t.Errorf("ebics-client-php HashGenerator public key: %s", got)
	}
}

// The HPB response of node-ebics-client's fixtures came from the Credit
// Suisse EBICS test server, encrypted for the test client's E002 key with
// ISO 10126 random padding: acquit unwraps, decrypts and inflates it into
// the order data the fixture holds, and the bank keys in it are those the
// client stored. The same decryption with openssl agrees.
func TestE002BankVector(t *testing.T) {
	requireIndep(t)
	keys := nodeKeys(t)
	enc := pemPrivate(t, keys["E002"])
	raw, _ := os.ReadFile("testdata/node_HPB_response.xml")
	want, _ := os.ReadFile("testdata/node_HPB_response_data.xml")
	resp, _, err := ParseResponse(raw, 0)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := UnwrapKey(enc, resp.TransactionKey)
	if err != nil {
		t.Fatal(err)
	}
	ct, err := DecodeBase64(resp.OrderData)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := DecryptE002(tk, ct)
	if err != nil {
		t.Fatal(err)
	}
	data, err := Inflate(plain, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, want) {
		t.Fatalf("decrypted order data differs from the fixture:\n%s", data)
	}
	if streamed, err := DecodeOrderData([]string{resp.OrderData}, tk, 1<<20); err != nil || !bytes.Equal(streamed, want) {
		t.Fatalf("streaming decoder: %v", err)
	}
	otk, err := indep.UnwrapKey(enc, resp.TransactionKey)
	if err != nil || !bytes.Equal(otk, tk) {
		t.Fatalf("openssl unwrap: %v", err)
	}
	if op, err := indep.DecryptE002(tk, ct); err != nil || !bytes.Equal(op, plain) {
		t.Fatalf("openssl decrypt: %v", err)
	}
	kod, err := ParseKeyOrderData(data)
	if err != nil {
		t.Fatal(err)
	}
	if kod.Auth.Key.N.Cmp(pemPublic(t, keys["bankX002"]).N) != 0 || kod.Enc.Key.N.Cmp(pemPublic(t, keys["bankE002"]).N) != 0 {
		t.Fatal("bank keys in the HPB order data differ from those node-ebics-client stored")
	}
}

// The ebics-client-php HPB request is signed by that implementation: the
// independent verifier (xmlsec1) accepts it with the X002 key of the php
// HIA request, as acquit does (TestVerifyForeignX002), and acquit's digest
// reproduces its DigestValue (TestAuthDigestMatchesFixture).
func TestForeignX002WithXmlsec1(t *testing.T) {
	requireIndep(t)
	kod := fixtureKeys(t, "php_hia.xml")
	hpb, _ := os.ReadFile("testdata/php_hpb.xml")
	if err := indep.VerifyX002(hpb, kod.Auth.Key); err != nil {
		t.Fatal(err)
	}
	if err := indep.VerifyX002(hpb, kod.Enc.Key); err == nil {
		t.Fatal("xmlsec1 verified with the E002 key")
	}
}
