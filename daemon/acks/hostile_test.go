package acks

import (
	"archive/zip"
	"bytes"
	"errors"
	"strings"
	"testing"
)

const minimalPSR = `<?xml version="1.0"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.03"><CstmrPmtStsRpt><GrpHdr><MsgId>M</MsgId><CreDtTm>2026-01-01T00:00:00</CreDtTm></GrpHdr>
<OrgnlGrpInfAndSts><OrgnlMsgId>O</OrgnlMsgId><OrgnlMsgNmId>pain.001.001.03</OrgnlMsgNmId><GrpSts>ACTC</GrpSts></OrgnlGrpInfAndSts>%s</CstmrPmtStsRpt></Document>`

func psrWith(body string) string { return strings.Replace(minimalPSR, "%s", body, 1) }

func TestParsePSRHostile(t *testing.T) {
	billion := `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.03"><CstmrPmtStsRpt><GrpHdr><MsgId>&lol3;</MsgId></GrpHdr></CstmrPmtStsRpt></Document>`
	xxe := `<?xml version="1.0"?><!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.03"><CstmrPmtStsRpt><GrpHdr><MsgId>&xxe;</MsgId></GrpHdr></CstmrPmtStsRpt></Document>`
	deep := `<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.03"><CstmrPmtStsRpt>` + strings.Repeat("<a>", 100) + strings.Repeat("</a>", 100) + `</CstmrPmtStsRpt></Document>`
	bigText := psrWith(`<OrgnlPmtInfAndSts><OrgnlPmtInfId>` + strings.Repeat("x", 70<<10) + `</OrgnlPmtInfId></OrgnlPmtInfAndSts>`)
	bigAttr := psrWith(`<OrgnlPmtInfAndSts><TxInfAndSts><OrgnlTxRef><Amt><InstdAmt Ccy="` + strings.Repeat("E", 70<<10) + `">1</InstdAmt></Amt></OrgnlTxRef></TxInfAndSts></OrgnlPmtInfAndSts>`)
	bigCDATA := psrWith(`<OrgnlPmtInfAndSts><OrgnlPmtInfId><![CDATA[` + strings.Repeat("<>", 40<<10) + `]]></OrgnlPmtInfId></OrgnlPmtInfAndSts>`)
	manyAddtl := psrWith(`<OrgnlPmtInfAndSts><StsRsnInf>` + strings.Repeat("<AddtlInf>x</AddtlInf>", 300) + `</StsRsnInf></OrgnlPmtInfAndSts>`)
	cases := []struct {
		name string
		doc  string
		lim  Limits
		kind error
	}{
		{"billion laughs", billion, Limits{}, ErrDTD},
		{"XXE external entity", xxe, Limits{}, ErrDTD},
		{"plain doctype", `<!DOCTYPE Document><Document/>`, Limits{}, ErrDTD},
		{"undeclared entity", strings.Replace(psrWith(""), "<MsgId>M", "<MsgId>&foo;", 1), Limits{}, ErrMalformed},
		{"too deep", deep, Limits{}, ErrTooDeep},
		{"text too large", bigText, Limits{}, ErrTokenTooLarge},
		{"attribute too large", bigAttr, Limits{}, ErrTokenTooLarge},
		{"CDATA too large", bigCDATA, Limits{}, ErrTokenTooLarge},
		{"total too large", psrWith(""), Limits{MaxBytes: 100}, ErrTooLarge},
		{"too many AddtlInf", manyAddtl, Limits{}, ErrTooMany},
		{"huge processing instruction", `<?xml version="1.0"?><?pi ` + strings.Repeat("<a>", 30<<10) + `?>` + psrWith("")[22:], Limits{}, ErrTokenTooLarge},
		{"huge comment", `<!-- ` + strings.Repeat("<a>", 30<<10) + ` -->` + psrWith(""), Limits{}, ErrTokenTooLarge},
		{"too many reasons", psrWith(`<OrgnlPmtInfAndSts>` + strings.Repeat("<StsRsnInf><Rsn><Cd>NARR</Cd></Rsn></StsRsnInf>", 300) + `</OrgnlPmtInfAndSts>`), Limits{}, ErrTooMany},
		{"pain.001 root", `<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"><CstmrCdtTrfInitn/></Document>`, Limits{}, ErrNotPain002},
		{"pain.002 lookalike namespace", strings.Replace(psrWith(""), "pain.002.001.03", "pain.002.001.03.evil", 1), Limits{}, ErrNotPain002},
		{"pacs.002 namespace", strings.Replace(psrWith(""), "pain.002.001.03", "pacs.002.001.03", 1), Limits{}, ErrNotPain002},
		{"camt root", `<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt/></Document>`, Limits{}, ErrNotPain002},
		{"not Document", `<Envelope><Body/></Envelope>`, Limits{}, ErrNotPain002},
		{"wrong report element", `<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.03"><FIToFIPmtStsRpt/></Document>`, Limits{}, ErrNotPain002},
		{"empty report", `<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.03"></Document>`, Limits{}, ErrNotPain002},
		{"no group", `<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.03"><CstmrPmtStsRpt><GrpHdr/></CstmrPmtStsRpt></Document>`, Limits{}, ErrMalformed},
		{"two groups", psrWith(`<OrgnlGrpInfAndSts><GrpSts>RJCT</GrpSts></OrgnlGrpInfAndSts>`), Limits{}, ErrMalformed},
		{"PmtInf before group", `<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.03"><CstmrPmtStsRpt><OrgnlPmtInfAndSts/><OrgnlGrpInfAndSts/></CstmrPmtStsRpt></Document>`, Limits{}, ErrMalformed},
		{"duplicate TxSts", psrWith(`<OrgnlPmtInfAndSts><TxInfAndSts><TxSts>RJCT</TxSts><TxSts>ACSC</TxSts></TxInfAndSts></OrgnlPmtInfAndSts>`), Limits{}, ErrMalformed},
		{"bad status code", psrWith(`<OrgnlPmtInfAndSts><PmtInfSts>rejected!</PmtInfSts></OrgnlPmtInfAndSts>`), Limits{}, ErrMalformed},
		{"nested StsRsnInf", psrWith(`<OrgnlPmtInfAndSts><StsRsnInf><StsRsnInf/></StsRsnInf></OrgnlPmtInfAndSts>`), Limits{}, ErrMalformed},
		{"truncated", psrWith("")[:200], Limits{}, ErrMalformed},
		{"mismatched tags", `<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.03"><CstmrPmtStsRpt></Document>`, Limits{}, ErrMalformed},
		{"end tag with another prefix", `<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.03"><a:CstmrPmtStsRpt xmlns:a="x"></b:CstmrPmtStsRpt></Document>`, Limits{}, ErrMalformed},
		{"undeclared root prefix", `<p:Document><p:CstmrPmtStsRpt/></p:Document>`, Limits{}, ErrMalformed},
		{"stray end tag", `<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.03"></CstmrPmtStsRpt></Document>`, Limits{}, ErrMalformed},
		{"two roots", psrWith("") + `<Document/>`, Limits{}, ErrMalformed},
		{"unknown charset", `<?xml version="1.0" encoding="EBCDIC-CP-US"?><Document/>`, Limits{}, ErrMalformed},
		{"binary garbage", "\x00\x01\x02PK\xff\xfe", Limits{}, ErrMalformed},
		{"empty", "", Limits{}, ErrNotPain002},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ReadPSR(strings.NewReader(c.doc), c.lim)
			if !errors.Is(err, c.kind) {
				t.Fatalf("err = %v, want kind %v", err, c.kind)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("err %T is not a *ParseError", err)
			}
			if strings.Contains(err.Error(), "/etc/passwd") || len(err.Error()) > 400 {
				t.Errorf("error echoes hostile input: %.200q", err.Error())
			}
		})
	}
}

func zipOf(t *testing.T, entries map[string]string, method uint16) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range entries {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: method})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestContainerHostile(t *testing.T) {
	good := psrWith("")
	bomb := zipOf(t, map[string]string{"a.xml": psrWith(strings.Repeat(" ", 5<<20))}, zip.Deflate)
	encrypted := zipOf(t, map[string]string{"a.xml": good}, zip.Store)
	// Set the "encrypted" flag bit in the local and central headers.
	encrypted = bytes.Replace(encrypted, []byte("PK\x03\x04\x14\x00\x08\x00"), []byte("PK\x03\x04\x14\x00\x09\x00"), 1)
	encrypted = bytes.Replace(encrypted, []byte("PK\x01\x02\x14\x00\x14\x00\x08\x00"), []byte("PK\x01\x02\x14\x00\x14\x00\x09\x00"), 1)
	many := map[string]string{}
	for i := 0; i < 30; i++ {
		many[strings.Repeat("d", i+1)+".xml"] = good
	}
	cases := []struct {
		name string
		data []byte
		lim  Limits
		kind error
	}{
		{"zip bomb over MaxBytes", bomb, Limits{MaxBytes: 1 << 20, MaxTokenBytes: 8 << 20}, ErrTooLarge},
		{"nested archive", zipOf(t, map[string]string{"inner.zip": "PK"}, zip.Store), Limits{}, ErrContainer},
		{"truncated archive", zipOf(t, map[string]string{"a.xml": good}, zip.Deflate)[:60], Limits{}, ErrContainer},
		{"encrypted entry", encrypted, Limits{}, ErrContainer},
		{"too many entries", zipOf(t, many, zip.Store), Limits{MaxZipEntries: 10}, ErrTooMany},
		{"bad entry inside", zipOf(t, map[string]string{"bad.xml": `<!DOCTYPE x><Document/>`}, zip.Deflate), Limits{}, ErrDTD},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := ParsePSRDownload(c.data, c.lim, nil)
			if !errors.Is(err, c.kind) {
				t.Fatalf("err = %v, want %v", err, c.kind)
			}
		})
	}
	// The failing entry is named.
	_, _, err := ParsePSRDownload(zipOf(t, map[string]string{"bad.xml": `<!DOCTYPE x><Document/>`}, zip.Deflate), Limits{}, nil)
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Entry != "bad.xml" {
		t.Errorf("entry not named: %v", err)
	}
}

func FuzzParsePSR(f *testing.F) {
	for _, name := range []string{"nordea_pain_002_v3_txn_reject.xml", "acquit_pain_002_001_02_part.xml", "acquit_pain_002_001_10_part.xml", "cross_river_pain_002_batch_rejected.xml"} {
		f.Add(readTestdata(f, "psr/"+name))
	}
	f.Add(readTestdata(f, "hac/acquit_hac_ebics30_btf.xml"))
	f.Add(readTestdata(f, "psr/acquit_psr_container.zip"))
	f.Add([]byte(psrWith(`<OrgnlPmtInfAndSts><StsRsnInf><Orgtr><Id><OrgId><Othr><Id>X</Id><SchmeNm><Prtry>OrderID</Prtry></SchmeNm></Othr></OrgId></Id></Orgtr></StsRsnInf></OrgnlPmtInfAndSts>`)))
	f.Fuzz(func(t *testing.T, data []byte) {
		lim := Limits{MaxBytes: 1 << 20, MaxTokenBytes: 4 << 10, MaxRepeat: 16, MaxCollect: 1000}
		rep, err := ReadPSR(bytes.NewReader(data), lim)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			return
		}
		for _, x := range rep.AllTxs() {
			e := EffectiveStatus(&rep.Group, x.PmtInf, x.Tx)
			if (rep.Group.GrpSts == StatusRJCT || x.Tx.TxSts == StatusRJCT || x.PmtInf != nil && x.PmtInf.PmtInfSts == StatusRJCT) != (e.Status == StatusRJCT) {
				t.Fatalf("effective status %s contradicts levels", e.Status)
			}
		}
		if _, err := ParseEntries(data, ParseOptions{Kind: "psr", Limits: lim}); err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("ParseEntries untyped error %T: %v", err, err)
			}
		}
		if err := fuzzHAC(data, lim); err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("HAC untyped error %T: %v", err, err)
			}
		}
	})
}

func fuzzHAC(data []byte, lim Limits) error {
	_, err := ParseHAC(bytes.NewReader(data), lim)
	return err
}
