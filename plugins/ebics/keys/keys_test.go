package keys

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acquit/acquit/plugins/ebics/protocol"
)

func TestGenerateSealOpen(t *testing.T) {
	s, err := Generate("P1", "U1", Options{SelfSigned: true, SigVersion: protocol.A005})
	if err != nil {
		t.Fatal(err)
	}
	if s.Signature.Version != "A005" || s.Auth.Cert == nil || s.Enc.Private.N.BitLen() < 2048 {
		t.Fatalf("%+v", s)
	}
	if s.Auth.Cert.KeyUsage&x509.KeyUsageDigitalSignature == 0 || s.Enc.Cert.KeyUsage&x509.KeyUsageKeyEncipherment == 0 {
		t.Fatal("key usage")
	}
	sealed, err := Seal(s, []byte("a long passphrase"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, s.Auth.Private.D.Bytes()[:16]) {
		t.Fatal("private key visible in sealed form")
	}
	back, err := Open(sealed, []byte("a long passphrase"))
	if err != nil || back.Auth.Private.N.Cmp(s.Auth.Private.N) != 0 || back.Enc.Cert == nil || back.PartnerID != "P1" {
		t.Fatalf("open: %v", err)
	}
	for name, data := range map[string][]byte{
		"wrong passphrase": sealed,
		"tampered":         bytes.Replace(sealed, []byte(`"data":"`), []byte(`"data":"AAAA`), 1),
		"garbage":          []byte("{"),
	} {
		pass := []byte("a long passphrase")
		if name == "wrong passphrase" {
			pass = []byte("another passphrase")
		}
		if _, err := Open(data, pass); !errors.Is(err, ErrPassphrase) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := Seal(s, []byte("short")); err == nil {
		t.Fatal("short passphrase accepted")
	}
	if _, err := Generate("P", "U", Options{Bits: 1024}); err == nil {
		t.Fatal("1024-bit keys generated")
	}
	// Letters in three languages, text and PDF.
	for lang, word := range map[string]string{"fr": "Lettre", "de": "Initialisierungsbrief", "en": "initialisation letter"} {
		li := LetterInfo{Version: protocol.H004, BankName: "Bank", HostID: "HOST", Language: lang}
		txt := s.LetterText(li)
		want := protocol.FormatHash(protocol.KeyHash(&s.Auth.Private.PublicKey))
		if !strings.Contains(txt, word) || !strings.Contains(txt, want) {
			t.Fatalf("%s letter:\n%s", lang, txt)
		}
		pdf, err := s.LetterPDF(li)
		if err != nil || !bytes.HasPrefix(pdf, []byte("%PDF")) {
			t.Fatalf("pdf %s: %v", lang, err)
		}
	}
	// 2.5 letters with certificates also show the certificate hash.
	if !strings.Contains(s.LetterText(LetterInfo{Version: protocol.H004, Language: "fr"}), "Empreinte du certificat") {
		t.Fatal("H004 letter lacks the certificate hash")
	}
	// H005 letters use certificate hashes.
	if !strings.Contains(s.LetterText(LetterInfo{Version: protocol.H005}), protocol.FormatHash(protocol.CertHash(s.Auth.Cert.Raw))) {
		t.Fatal("H005 letter lacks the certificate hash")
	}
	// Import: a certificate for another key is refused, the right one taken.
	other, _ := Generate("P", "U", Options{SelfSigned: true})
	if err := ImportCertificate(s.Auth, other.Auth.Cert.Raw); err == nil {
		t.Fatal("foreign certificate imported")
	}
	p := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Auth.Cert.Raw})
	if err := ImportCertificate(s.Auth, p); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "pass")
	os.WriteFile(f, []byte("secret words\n"), 0o600)
	if pw, err := ReadPassphrase(f); err != nil || string(pw) != "secret words" {
		t.Fatalf("%q %v", pw, err)
	}
}
