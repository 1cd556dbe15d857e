package sim

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"os"
	"strings"
	"testing"

	"github.com/acquit/acquit/plugins/ebics/indep"
	"github.com/acquit/acquit/plugins/ebics/protocol"
)

// The simulator verifies the HPB request another implementation
// (PyFinTech, in ebics-client-php's fixtures) signed, with the X002 key of
// the same subscriber's HIA, and reproduces its DigestValue.
func TestX002PublishedHPB(t *testing.T) {
	raw, err := os.ReadFile("../protocol/testdata/php_hpb.xml")
	if err != nil {
		t.Fatal(err)
	}
	root, err := parseTree(raw)
	if err != nil {
		t.Fatal(err)
	}
	got, sel := x002Digest(root)
	dv := root.child(root.space(), "AuthSignature").child(nsDsig, "SignedInfo").child(nsDsig, "Reference").child(nsDsig, "DigestValue")
	if len(sel) != 1 || base64.StdEncoding.EncodeToString(got) != dv.textContent() {
		t.Fatalf("digest %s over %d elements, the fixture says %s", base64.StdEncoding.EncodeToString(got), len(sel), dv.textContent())
	}
	hiaRaw, err := os.ReadFile("../protocol/testdata/php_hia.xml")
	if err != nil {
		t.Fatal(err)
	}
	hia, _, err := protocol.ParseRequest(hiaRaw, 0)
	if err != nil {
		t.Fatal(err)
	}
	z, _ := base64.StdEncoding.DecodeString(hia.OrderData)
	plain, err := protocol.Inflate(z, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	kod, err := protocol.ParseKeyOrderData(plain)
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyX002(raw, kod.Auth.Key); err != nil {
		t.Fatalf("published HPB refused: %v", err)
	}
	if err := verifyX002(raw, kod.Enc.Key); err == nil {
		t.Fatal("verified with the E002 key")
	}
	if err := verifyX002(bytes.Replace(raw, []byte("F88276D7"), []byte("F88276D8"), 1), kod.Auth.Key); err == nil {
		t.Fatal("altered nonce accepted")
	}
}

// Messages signed by xmlsec1 verify with the simulator's X002 code, among
// them the awkward cases for canonicalisation and the document order:
// authenticated elements at different depths, extra namespace
// declarations, unsorted attributes, escaped characters, CR/LF in text.
// Any change to authenticated content, the selection or the signature is
// refused.
func TestX002AgainstXmlsec1(t *testing.T) {
	if err := indep.Require(); err != nil {
		t.Fatal(err)
	}
	thirdPartyKeys(t)
	other := tpSig
	dl := &protocol.Response{Version: protocol.H004, Kind: protocol.KindResponse, TransactionID: strings.Repeat("AB", 16), NumSegments: 2,
		Phase: protocol.PhaseInitialisation, SegmentNumber: 1, EncKeyHash: make([]byte, 32), TransactionKey: []byte("k"), OrderData: "QUJD"}
	doc := dl.Document()
	dlXML, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	for name, unsigned := range map[string]string{
		"download init response (three depths)": string(dlXML),
		"namespaces, attribute order, escapes": `<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
			`<ebicsRequest xmlns="urn:org:ebics:H004" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" xmlns:x="urn:x" Version="H004" Revision="1">` +
			`<header authenticate="true" x:b="2" a="1"><static><HostID>A&amp;B &lt; "q" &#x3e;</HostID><x:Ext z="1" x:y="2" xmlns:y="urn:y">t&#13;` + "\r\n" + `u</x:Ext></static><mutable/></header>` +
			`<body><DataTransfer><DataEncryptionInfo authenticate="true" xmlns:e="urn:e"><e:K>1</e:K></DataEncryptionInfo></DataTransfer></body></ebicsRequest>`,
	} {
		t.Run(name, func(t *testing.T) {
			signed, err := indep.SignX002([]byte(unsigned), tpAuth)
			if err != nil {
				t.Fatal(err)
			}
			if err := verifyX002(signed, &tpAuth.PublicKey); err != nil {
				t.Fatalf("xmlsec1's signature refused: %v\n%s", err, signed)
			}
			if err := verifyX002(signed, &other.PublicKey); err == nil {
				t.Fatal("verified with another key")
			}
			for what, edit := range map[string]func(string) string{
				"authenticated content changed": func(s string) string {
					return strings.Replace(s, "authenticate=\"true\">", "authenticate=\"true\"> ", 1)
				},
				"authenticate mark removed": func(s string) string {
					i := strings.Index(s, "<DataEncryptionInfo")
					j := i + strings.Index(s[i:], ">")
					return s[:i] + strings.Replace(s[i:j], ` authenticate="true"`, "", 1) + s[j:]
				},
				"signature value changed": func(s string) string {
					i := strings.Index(s, "SignatureValue>") + len("SignatureValue>")
					c := "A" // a character other than the one there (else 1 run in 64 changed nothing)
					if s[i] == 'A' {
						c = "B"
					}
					return s[:i] + c + s[i+1:]
				},
			} {
				if err := verifyX002([]byte(edit(string(signed))), &tpAuth.PublicKey); err == nil {
					t.Errorf("%s: accepted", what)
				}
			}
		})
	}
}

// The ES check follows the specification, checked against openssl:
// A005 PKCS#1 v1.5 over SHA-256(data); A006 PSS whose message is
// SHA-256(data).
func TestOrderSignatureAgainstOpenSSL(t *testing.T) {
	if err := indep.Require(); err != nil {
		t.Fatal(err)
	}
	thirdPartyKeys(t)
	data := make([]byte, 3000)
	rand.Read(data)
	h := sha256.Sum256(data)
	for _, v := range []string{"A005", "A006"} {
		sig, err := indep.SignES(v, tpSig, data)
		if err != nil {
			t.Fatal(err)
		}
		if err := verifyOrderSignature(v, &tpSig.PublicKey, h[:], sig); err != nil {
			t.Fatalf("%s from openssl refused: %v", v, err)
		}
		other := sha256.Sum256(append(data, 0))
		if err := verifyOrderSignature(v, &tpSig.PublicKey, other[:], sig); err == nil {
			t.Fatalf("%s verified over other data", v)
		}
	}
	s := &Sim{}
	oh := s.orderHash()
	oh.Write([]byte("a\r\nb\n\x1a"))
	if got, want := oh.Sum(nil), sha256.Sum256([]byte("ab")); !bytes.Equal(got, want[:]) {
		t.Fatal("CR/LF/Ctrl-Z not removed before hashing")
	}
}

// Hostile XML is refused by the simulator's own parser.
func TestParseTreeRefuses(t *testing.T) {
	for name, doc := range map[string]string{
		"doctype":     `<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>`,
		"unbalanced":  `<a><b></a>`,
		"two roots":   `<a/><b/>`,
		"undeclared":  `<p:a/>`,
		"truncated":   `<a><b>`,
		"text at top": `<a/>junk`,
	} {
		if _, err := parseTree([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
