package keys

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/go-pdf/fpdf"

	"github.com/acquit/acquit/plugins/ebics/protocol"
)

// LetterInfo names the bank and subscriber on the letter.
type LetterInfo struct {
	Version  protocol.Version
	BankName string
	HostID   string
	Language string // "fr", "de" or "en"
	Date     time.Time
}

var letterText = map[string]map[string]string{
	"en": {"title": "EBICS initialisation letter (%s)", "bank": "Bank", "host": "Host ID", "partner": "Partner ID", "user": "User ID",
		"date": "Date", "key": "Key", "version": "Version", "hash": "Hash (SHA-256)", "certhash": "Certificate hash (SHA-256)", "sign": "I confirm that the keys above are mine. Place, date, signature:", "cert": "Certificate"},
	"fr": {"title": "Lettre d'initialisation EBICS (%s)", "bank": "Banque", "host": "Identifiant hôte", "partner": "Identifiant client (Partner ID)", "user": "Identifiant utilisateur",
		"date": "Date", "key": "Clé", "version": "Version", "hash": "Empreinte (SHA-256)", "certhash": "Empreinte du certificat (SHA-256)", "sign": "Je confirme que les clés ci-dessus sont les miennes. Lieu, date, signature :", "cert": "Certificat"},
	"de": {"title": "EBICS-Initialisierungsbrief (%s)", "bank": "Bank", "host": "Host-ID", "partner": "Kunden-ID", "user": "Teilnehmer-ID",
		"date": "Datum", "key": "Schlüssel", "version": "Version", "hash": "Hashwert (SHA-256)", "certhash": "Hashwert des Zertifikats (SHA-256)", "sign": "Ich bestätige, dass die obigen Schlüssel meine sind. Ort, Datum, Unterschrift:", "cert": "Zertifikat"},
}

type letterPart struct {
	order, version, hash string
	certHash             string // 2.5 with a certificate: its SHA-256 too (French letters show it)
}

func (s *Set) parts(v protocol.Version) []letterPart {
	var out []letterPart
	for _, x := range []struct {
		order string
		k     *Key
	}{{"INI", s.Signature}, {"HIA", s.Auth}, {"HIA", s.Enc}} {
		p := letterPart{order: x.order, version: x.k.Version, hash: protocol.FormatHash(x.k.Pub().Digest(v))}
		if v == protocol.H004 && x.k.Cert != nil {
			p.certHash = protocol.FormatHash(protocol.CertHash(x.k.Cert.Raw))
		}
		out = append(out, p)
	}
	return out
}

func labels(lang string) map[string]string {
	if l, ok := letterText[lang]; ok {
		return l
	}
	return letterText["en"]
}

// LetterText renders the INI and HIA initialisation letters as text: the
// key hashes in uppercase hex pairs, as the bank compares them.
func (s *Set) LetterText(li LetterInfo) string {
	l := labels(li.Language)
	if li.Date.IsZero() {
		li.Date = time.Now()
	}
	var b strings.Builder
	fmt.Fprintf(&b, l["title"]+"\n\n", li.Version)
	fmt.Fprintf(&b, "%s: %s\n%s: %s\n%s: %s\n%s: %s\n%s: %s\n\n", l["bank"], li.BankName, l["host"], li.HostID,
		l["partner"], s.PartnerID, l["user"], s.UserID, l["date"], li.Date.Format("2006-01-02"))
	for _, p := range s.parts(li.Version) {
		fmt.Fprintf(&b, "%s %s — %s %s\n%s:\n%s\n", p.order, l["key"], l["version"], p.version, l["hash"], p.hash)
		if p.certHash != "" {
			fmt.Fprintf(&b, "%s:\n%s\n", l["certhash"], p.certHash)
		}
		b.WriteString("\n")
	}
	b.WriteString(l["sign"] + "\n\n\n______________________________\n")
	return b.String()
}

// LetterPDF renders the same letter as a PDF document.
func (s *Set) LetterPDF(li LetterInfo) ([]byte, error) {
	l := labels(li.Language)
	tr := func(x string) string { return x }
	pdf := fpdf.New("P", "mm", "A4", "")
	tr = pdf.UnicodeTranslatorFromDescriptor("") // cp1252 for accents
	pdf.SetTitle(fmt.Sprintf(l["title"], li.Version), true)
	pdf.AddPage()
	pdf.SetFont("Helvetica", "B", 14)
	pdf.CellFormat(0, 10, tr(fmt.Sprintf(l["title"], li.Version)), "", 1, "", false, 0, "")
	pdf.SetFont("Helvetica", "", 11)
	if li.Date.IsZero() {
		li.Date = time.Now()
	}
	for _, kv := range [][2]string{{l["bank"], li.BankName}, {l["host"], li.HostID}, {l["partner"], s.PartnerID}, {l["user"], s.UserID}, {l["date"], li.Date.Format("2006-01-02")}} {
		pdf.CellFormat(60, 7, tr(kv[0]), "", 0, "", false, 0, "")
		pdf.CellFormat(0, 7, tr(kv[1]), "", 1, "", false, 0, "")
	}
	for _, p := range s.parts(li.Version) {
		pdf.Ln(4)
		pdf.SetFont("Helvetica", "B", 11)
		pdf.CellFormat(0, 7, tr(fmt.Sprintf("%s %s - %s %s", p.order, l["key"], l["version"], p.version)), "", 1, "", false, 0, "")
		pdf.SetFont("Helvetica", "", 10)
		pdf.CellFormat(0, 6, tr(l["hash"]), "", 1, "", false, 0, "")
		pdf.SetFont("Courier", "", 10)
		pdf.MultiCell(0, 5, p.hash, "", "", false)
		if p.certHash != "" {
			pdf.SetFont("Helvetica", "", 10)
			pdf.CellFormat(0, 6, tr(l["certhash"]), "", 1, "", false, 0, "")
			pdf.SetFont("Courier", "", 10)
			pdf.MultiCell(0, 5, p.certHash, "", "", false)
		}
		pdf.SetFont("Helvetica", "", 11)
	}
	pdf.Ln(10)
	pdf.MultiCell(0, 6, tr(l["sign"]), "", "", false)
	var buf bytes.Buffer
	if err := pdf.Output(&buf); err != nil {
		return nil, fmt.Errorf("ebics letter pdf: %w", err)
	}
	return buf.Bytes(), nil
}
