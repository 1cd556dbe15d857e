package protocol

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/acquit/acquit/plugins/ebics/indep"
)

func requireIndep(t *testing.T) {
	t.Helper()
	if err := indep.Require(); err != nil {
		t.Fatal(err)
	}
}

// downloadInitResponse is the response shape whose authenticated elements
// sit at different depths: header (depth 1), DataEncryptionInfo (depth 3),
// body/ReturnCode and TimestampBankParameter (depth 2).
func downloadInitResponse(v Version) *Response {
	return &Response{Version: v, Kind: KindResponse, TransactionID: NewTransactionID(), NumSegments: 2, Phase: PhaseInitialisation,
		SegmentNumber: 1, EncKeyHash: make([]byte, 32), TransactionKey: []byte("wrapped-key"), OrderData: "QUJD",
		BankTimestamp: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
}

// Regression (issue 8, defect 1): the X002 reference selects the
// authenticated elements in document order. On a download-initialisation
// response acquit used to digest them in etree's FindElements order
// (header, body/ReturnCode, TimestampBankParameter, then the deeper
// DataEncryptionInfo), so xmlsec1 rejected acquit's signature and acquit
// rejected a correctly signed bank response.
func TestX002DocumentOrderWithXmlsec1(t *testing.T) {
	requireIndep(t)
	k1, k2, _ := testKey(t)
	for _, v := range []Version{H004, H005} {
		t.Run(string(v)+"/acquit signs, xmlsec1 verifies", func(t *testing.T) {
			b, err := downloadInitResponse(v).Marshal(k1)
			if err != nil {
				t.Fatal(err)
			}
			if err := indep.VerifyX002(b, &k1.PublicKey); err != nil {
				t.Fatalf("%v\n%s", err, b)
			}
			if err := indep.VerifyX002(b, &k2.PublicKey); err == nil {
				t.Fatal("xmlsec1 verified with the wrong key")
			}
		})
		t.Run(string(v)+"/xmlsec1 signs, acquit verifies", func(t *testing.T) {
			unsigned, err := downloadInitResponse(v).Document().WriteToBytes()
			if err != nil {
				t.Fatal(err)
			}
			signed, err := indep.SignX002(unsigned, k1)
			if err != nil {
				t.Fatal(err)
			}
			_, doc, err := ParseResponse(signed, 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyAuth(doc, &k1.PublicKey, "DataEncryptionInfo", "ReturnCode", "TimestampBankParameter"); err != nil {
				t.Fatalf("%v\n%s", err, signed)
			}
			tampered := strings.Replace(string(signed), "<TransactionKey>", "<TransactionKey>AAAA", 1)
			doc, err = ParseXML([]byte(tampered), 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyAuth(doc, &k1.PublicKey); err == nil {
				t.Fatal("altered DataEncryptionInfo verified")
			}
		})
	}
}

// Every request and response acquit signs verifies with xmlsec1, and the
// same messages signed by xmlsec1 verify with acquit.
func TestX002AllMessagesWithXmlsec1(t *testing.T) {
	requireIndep(t)
	k1, _, _ := testKey(t)
	for _, v := range []Version{H004, H005} {
		for name, b := range sampleMessages(t, v) {
			if !strings.Contains(string(b), "<AuthSignature>") {
				continue
			}
			t.Run(string(v)+"/"+name, func(t *testing.T) {
				if err := indep.VerifyX002(b, &k1.PublicKey); err != nil {
					t.Fatalf("%v\n%s", err, b)
				}
				doc, err := ParseXML(b, 0)
				if err != nil {
					t.Fatal(err)
				}
				doc.Root().RemoveChild(doc.Root().SelectElement("AuthSignature"))
				unsigned, _ := doc.WriteToBytes()
				signed, err := indep.SignX002(unsigned, k1)
				if err != nil {
					t.Fatal(err)
				}
				doc, err = ParseXML(signed, 0)
				if err != nil {
					t.Fatal(err)
				}
				if err := VerifyAuth(doc, &k1.PublicKey); err != nil {
					t.Fatalf("%v\n%s", err, signed)
				}
			})
		}
	}
}

// Regression (issue 8, defect 2): the A006 message given to RSASSA-PSS is
// the 32-byte order data digest, which PSS hashes again. acquit used to
// hand the digest to PSS as the already-hashed mHash, so openssl (and
// libeufin, ebics-client-php, epics) rejected its A006 signatures and
// acquit rejected theirs. A005 (RSASSA-PKCS1-v1_5/SHA-256 over the order
// data) is checked the same way. Both directions, with openssl.
func TestESWithOpenSSL(t *testing.T) {
	requireIndep(t)
	k1, k2, _ := testKey(t)
	data := []byte("<?xml version=\"1.0\"?>\n<Document>\r\n  <CstmrCdtTrfInitn/>\n</Document>\n")
	for _, strip := range []bool{true, false} {
		signed := data
		if strip {
			signed = indep.StripCRLFEOF(data)
		}
		digest := ESDigest(data, strip)
		for _, v := range []string{A005, A006} {
			name := fmt.Sprintf("%s/strip=%v", v, strip)
			t.Run(name+"/acquit signs, openssl verifies", func(t *testing.T) {
				sig, err := SignES(v, k1, digest)
				if err != nil {
					t.Fatal(err)
				}
				if err := indep.VerifyES(v, &k1.PublicKey, signed, sig); err != nil {
					t.Fatal(err)
				}
				if err := indep.VerifyES(v, &k2.PublicKey, signed, sig); err == nil {
					t.Fatal("openssl verified with the wrong key")
				}
			})
			t.Run(name+"/openssl signs, acquit verifies", func(t *testing.T) {
				sig, err := indep.SignES(v, k1, signed)
				if err != nil {
					t.Fatal(err)
				}
				if err := VerifyES(v, &k1.PublicKey, digest, sig); err != nil {
					t.Fatal(err)
				}
				if err := VerifyES(v, &k2.PublicKey, digest, sig); err == nil {
					t.Fatal("verified with the wrong key")
				}
				if err := VerifyES(v, &k1.PublicKey, DocumentDigest([]byte("other")), sig); err == nil {
					t.Fatal("verified over other data")
				}
			})
		}
	}
}

// Regression (issue 8, defect 3): the ES digest leaves CR, LF and Ctrl-Z
// out when the profile says so (the default); acquit used to hash the
// data as transmitted, newlines included.
func TestESDigestNormalisation(t *testing.T) {
	cases := []struct {
		name  string
		data  string
		strip bool
		want  string // the bytes whose SHA-256 is the digest
	}{
		{"lf", "<a>\n<b/>\n</a>\n", true, "<a><b/></a>"},
		{"crlf", "<a>\r\n<b/>\r\n</a>", true, "<a><b/></a>"},
		{"ctrl-z", "<a/>\x1a", true, "<a/>"},
		{"spaces and tabs kept", "<a>\t x </a>", true, "<a>\t x </a>"},
		{"raw", "<a>\r\n</a>\x1a", false, "<a>\r\n</a>\x1a"},
		{"empty", "", true, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := sha256.Sum256([]byte(c.want))
			if got := ESDigest([]byte(c.data), c.strip); !bytes.Equal(got, want[:]) {
				t.Fatalf("digest of %q (strip=%v) is not SHA-256(%q)", c.data, c.strip, c.want)
			}
			// Streaming in odd pieces gives the same digest.
			h := NewESHash(c.strip)
			for i := 0; i < len(c.data); i += 3 {
				h.Write([]byte(c.data[i:min(i+3, len(c.data))]))
			}
			if !bytes.Equal(h.Sum(nil), want[:]) {
				t.Fatal("streaming digest differs")
			}
		})
	}
}

// E002 both ways with openssl: acquit's ciphertext and key wrap open with
// openssl enc/pkeyutl, and openssl's open with acquit, at padding edges.
func TestE002WithOpenSSL(t *testing.T) {
	requireIndep(t)
	k1, _, _ := testKey(t)
	for _, n := range []int{0, 1, 15, 16, 17, 4096} {
		data := bytes.Repeat([]byte{'p'}, n)
		key := NewTransactionKey()
		t.Run(fmt.Sprintf("%d/acquit encrypts", n), func(t *testing.T) {
			ct, err := EncryptE002(key, data)
			if err != nil {
				t.Fatal(err)
			}
			pt, err := indep.DecryptE002(key, ct)
			if err != nil || !bytes.Equal(pt, data) {
				t.Fatalf("openssl: %v", err)
			}
			wrapped, err := WrapKey(&k1.PublicKey, key)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := indep.UnwrapKey(k1, wrapped); err != nil || !bytes.Equal(got, key) {
				t.Fatalf("openssl unwrap: %v", err)
			}
		})
		t.Run(fmt.Sprintf("%d/openssl encrypts", n), func(t *testing.T) {
			ct, err := indep.EncryptE002(key, data)
			if err != nil {
				t.Fatal(err)
			}
			pt, err := DecryptE002(key, ct)
			if err != nil || !bytes.Equal(pt, data) {
				t.Fatalf("acquit: %v", err)
			}
			wrapped, err := indep.WrapKey(&k1.PublicKey, key)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := UnwrapKey(k1, wrapped); err != nil || !bytes.Equal(got, key) {
				t.Fatalf("acquit unwrap: %v", err)
			}
		})
	}
}
