package painfile

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
)

func TestReadFixture(t *testing.T) {
	f, err := os.Open("testdata/php_yct.pain001.xml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, err := Read(f)
	if err != nil {
		t.Fatal(err)
	}
	if info.Kind != "pain.001" || info.MsgID != "MMMM20211231v1" || info.NbOfTxs != "2" || info.CtrlSum != "0.03" {
		t.Fatalf("header: %+v", info)
	}
	if len(info.Txs) != 2 || info.Sum != "0.03" {
		t.Fatalf("txs: %d sum %s", len(info.Txs), info.Sum)
	}
	if info.Txs[0].EndToEndID != "MIB E2E305-312MM20211231v1" || info.Txs[0].Amount != "0.01" || info.Txs[0].Currency != "EUR" {
		t.Fatalf("tx0: %+v", info.Txs[0])
	}
	if info.Txs[0].PmtInfID != "PmtInfId-MM20211231-1" {
		t.Fatalf("pmtinf: %+v", info.Txs[0])
	}
}

func TestReadHostile(t *testing.T) {
	for _, tc := range []struct {
		file string
		want error
	}{{"testdata/xxe.xml", ErrDoctype}, {"testdata/bomb.xml", ErrDoctype}} {
		b, _ := os.ReadFile(tc.file)
		_, err := Read(bytes.NewReader(b))
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v want %v", tc.file, err, tc.want)
		}
	}
	for name, doc := range map[string]string{
		"truncated": `<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"><CstmrCdtTrfInitn><GrpHdr><MsgId>X`,
		"wrong ns":  `<Document xmlns="urn:other"><A/></Document>`,
		"no msgid":  `<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"><CstmrCdtTrfInitn/></Document>`,
		"bad amt":   `<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"><CstmrCdtTrfInitn><GrpHdr><MsgId>M</MsgId></GrpHdr><PmtInf><CdtTrfTxInf><Amt><InstdAmt Ccy="EUR">1e999x</InstdAmt></Amt></CdtTrfTxInf></PmtInf></CstmrCdtTrfInitn></Document>`,
		"root":      `<Other/>`,
	} {
		if _, err := Read(strings.NewReader(doc)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestGenerateRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	sum, err := Generate(&buf, GenOptions{MsgID: "DEMO-1", N: 2500, PerPmt: 1000, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	info, err := Read(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Txs) != 2500 || info.NbOfTxs != "2500" || len(info.PmtInfIDs) != 3 {
		t.Fatalf("got %d txs, NbOfTxs %s, %d PmtInf", len(info.Txs), info.NbOfTxs, len(info.PmtInfIDs))
	}
	if info.CtrlSum != sum || info.Sum != sum {
		t.Fatalf("ctrl sum %s, computed %s, generator %s", info.CtrlSum, info.Sum, sum)
	}
	if info.Txs[2499].EndToEndID != "DEMO-1-E2500" || info.Txs[2499].PmtInfID != "DEMO-1-P3" {
		t.Fatalf("last tx %+v", info.Txs[2499])
	}
	if !ValidIBAN(info.Txs[0].IBAN) {
		t.Fatalf("generated IBAN %q invalid", info.Txs[0].IBAN)
	}
}

func TestIBAN(t *testing.T) {
	// Known valid IBANs (public examples).
	for _, s := range []string{"DE89370400440532013000", "FR1420041010050500013M02606", "GB82WEST12345698765432", "NL86RABO1999999991"} {
		if !ValidIBAN(s) {
			t.Errorf("%s should be valid", s)
		}
	}
	for _, s := range []string{"DE89370400440532013001", "FR14", "", "XX00ABC"} {
		if ValidIBAN(s) {
			t.Errorf("%s should be invalid", s)
		}
	}
	if got := IBAN("DE", "370400440532013000"); got != "DE89370400440532013000" {
		t.Fatalf("IBAN() = %s", got)
	}
}

func FuzzRead(f *testing.F) {
	b, _ := os.ReadFile("testdata/php_yct.pain001.xml")
	f.Add(b)
	f.Add([]byte(`<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.008.001.02"><CstmrDrctDbtInitn><GrpHdr><MsgId>A</MsgId></GrpHdr></CstmrDrctDbtInitn></Document>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := Read(bytes.NewReader(data))
		if err == nil && info.MsgID == "" {
			t.Fatal("accepted a document without MsgId")
		}
	})
}

// Scan hands over every transaction without keeping any, and counts,
// sums and finds the currency as Read does; ReadHeader stops at the first
// payment group, so a file truncated after it still gives its header.
func TestScanAndHeader(t *testing.T) {
	var buf bytes.Buffer
	sum, err := Generate(&buf, GenOptions{MsgID: "SCAN-1", N: 2500, PerPmt: 1000, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	doc := buf.Bytes()
	var n int
	var last Tx
	info, err := Scan(bytes.NewReader(doc), func(x Tx) error { n++; last = x; return nil }, false)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2500 || info.Count != 2500 || info.Txs != nil || info.PmtInfIDs != nil || info.Sum != sum || info.Currency != "EUR" {
		t.Fatalf("scan: %d calls, %+v", n, info)
	}
	if last.EndToEndID != "SCAN-1-E2500" || last.PmtInfID != "SCAN-1-P3" {
		t.Fatalf("last tx %+v", last)
	}
	stop := errors.New("stop")
	if _, err := Scan(bytes.NewReader(doc), func(Tx) error { return stop }, false); !errors.Is(err, stop) {
		t.Fatalf("callback error: %v", err)
	}
	mixed := strings.Replace(string(doc), `Ccy="EUR"`, `Ccy="CHF"`, 1)
	if info, err := Scan(strings.NewReader(mixed), nil, true); err != nil || info.Currency != "" || len(info.PmtInfIDs) != 3 {
		t.Fatalf("mixed currencies: %+v %v", info, err)
	}
	i := bytes.Index(doc, []byte("<PmtInf>"))
	h, err := ReadHeader(bytes.NewReader(doc[:i+len("<PmtInf>")+10]))
	if err != nil || h.MsgID != "SCAN-1" || h.NbOfTxs != "2500" || h.CtrlSum != sum || h.Count != 0 {
		t.Fatalf("header: %+v %v", h, err)
	}
	if _, err := ReadHeader(strings.NewReader(`<!DOCTYPE x [<!ENTITY a "b">]><Document/>`)); !errors.Is(err, ErrDoctype) {
		t.Fatalf("doctype: %v", err)
	}
}
