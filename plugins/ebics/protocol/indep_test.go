package protocol

import (
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
