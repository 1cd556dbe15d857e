package acks

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// txGold is the expected outcome of one transaction.
type txGold struct {
	PmtInf, E2E, Instr string
	Sts                Status
	Eff                Status
	EffLevel           Level
	Reason             string // first reason key at the effective level
	Amount, Ccy        string
}

type psrGold struct {
	file                         string
	version                      string
	msgID, orgnlMsgID, orgnlNmID string
	nbTxs, ctrlSum               string
	grpSts                       Status
	grpReasons                   []string // keys
	grpAddtl                     []string
	pmtInfs                      []string // "ID:STS:reasonkey"
	txs                          []txGold
}

func readTestdata(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func keys(rs []Reason) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Key())
	}
	return out
}

func TestReadPSRGolden(t *testing.T) {
	cases := []psrGold{
		{
			file: "cross_river_pain_002_batch_rejected.xml", version: "", msgID: "abcdefg012345689",
			orgnlNmID: "pain.008.001.02", nbTxs: "0", ctrlSum: "0.0000", grpSts: StatusRJCT,
			grpReasons: []string{"NARR"},
			grpAddtl:   []string{"Error parsing file examplefile.xml: The 'MsgId' start tag on line 5 position 5 does not match the end tag of 'GrpHdr'. Line 19, position 5."},
		},
		{
			file: "cross_river_pain_002_credit_accepted.xml", msgID: "abcdefg0000000", orgnlMsgID: "AMBCD10000000",
			orgnlNmID: "pain.001.001.03", nbTxs: "3", ctrlSum: "5.0100", grpSts: StatusACTC,
			pmtInfs: []string{"ABCD10000000:ACTC:"},
			txs:     []txGold{{PmtInf: "ABCD10000000", E2E: "0000000000000108", Instr: "100ABCD012345", Sts: StatusACSP, Eff: StatusACSP, EffLevel: LevelTx}},
		},
		{
			file: "cross_river_pain_002_debit_accepted.xml", msgID: "abcdefg0123456789", orgnlMsgID: "DD1",
			orgnlNmID: "pain.008.001.02", nbTxs: "3", ctrlSum: "6.0000", grpSts: StatusACTC,
			pmtInfs: []string{"DD1-1:ACTC:"},
			txs: []txGold{
				{PmtInf: "DD1-1", E2E: "DD1-1", Sts: StatusACSP, Eff: StatusACSP, EffLevel: LevelTx},
				{PmtInf: "DD1-1", E2E: "DD1-2", Sts: StatusACSP, Eff: StatusACSP, EffLevel: LevelTx},
				{PmtInf: "DD1-1", E2E: "DD1-3", Sts: StatusACSP, Eff: StatusACSP, EffLevel: LevelTx},
			},
		},
		{
			file: "cross_river_pain_002_transaction_rejected.xml", msgID: "abcdefg0123456789", orgnlMsgID: "missing2",
			orgnlNmID: "pain.001.001.03", nbTxs: "3", ctrlSum: "5.0400", grpSts: StatusACTC,
			pmtInfs: []string{"missing2:RJCT:"},
			txs: []txGold{
				{PmtInf: "missing2", E2E: "sanity-10-1-12-1-21", Instr: "example01234567", Sts: StatusRJCT, Eff: StatusRJCT, EffLevel: LevelTx, Reason: "NARR"},
				{PmtInf: "missing2", E2E: "example01234567", Instr: "example01234567", Sts: StatusRJCT, Eff: StatusRJCT, EffLevel: LevelTx, Reason: "NARR"},
				{PmtInf: "missing2", E2E: "example012345678", Instr: "example012345678", Sts: StatusRJCT, Eff: StatusRJCT, EffLevel: LevelTx, Reason: "NARR"},
			},
		},
		{
			file: "goldman_sachs_pain_002_v3_accepted.xml", version: "pain.002.001.03", msgID: "1036XXX", orgnlMsgID: "10280093XXXX",
			nbTxs: "2", ctrlSum: "20.0000",
			pmtInfs: []string{"3B-CCY::"},
			txs:     []txGold{{PmtInf: "3B-CCY", E2E: "GSDGFKfLURaHb", Sts: StatusACCP, Eff: StatusACCP, EffLevel: LevelTx, Reason: "NARR", Amount: "10.00", Ccy: "USD"}},
		},
		{
			file: "goldman_sachs_pain_002_v3_group_accepted.xml", version: "pain.002.001.03", msgID: "13991356", orgnlMsgID: "CLIENT NAME_2023-09-06:04",
			orgnlNmID: "CHECK_DEPOSIT", nbTxs: "1", ctrlSum: "27.0", grpSts: StatusACTC,
			grpReasons: []string{""},
			grpAddtl:   []string{"File accepted post technical and profile validations", "Original File Name: 26951.json"},
		},
		{
			file: "goldman_sachs_pain_002_v3_payment_accepted.xml", version: "pain.002.001.03", msgID: "1744XXX", orgnlMsgID: "XXX001_20220315_B_DZSOXXXX",
			orgnlNmID: "NACHA", nbTxs: "8", ctrlSum: "72.5400",
			pmtInfs: []string{"xxx001220315B000XXXX:ACCP:NARR"},
		},
		{
			file: "nordea_pain_002_v3_group_reject.xml", version: "pain.002.001.03", msgID: "XML990920150810101909283", orgnlMsgID: "MSGID-PS-TEST-0708-01",
			orgnlNmID: "pain.001.001.03", grpSts: StatusRJCT, grpReasons: []string{"DU01"}, grpAddtl: []string{"ISO Duplicate Message ID"},
		},
		{
			file: "nordea_pain_002_v3_payment_reject.xml", version: "pain.002.001.03", msgID: "XML990920150717170814238", orgnlMsgID: "MSGID-COM-SCE25-1707-01",
			orgnlNmID: "pain.001.001.03", pmtInfs: []string{"PMTINFID-COM-SCE25-1707-01:RJCT:NARR"},
		},
		{
			file: "nordea_pain_002_v3_txn_reject.xml", version: "pain.002.001.03", msgID: "XML990920150728124014189", orgnlMsgID: "MSGID-950-TEST2-2807-01",
			orgnlNmID: "pain.001.001.03", pmtInfs: []string{"PMTINFID-950-TEST2-2807-01:RJCT:"},
			txs: []txGold{
				{PmtInf: "PMTINFID-950-TEST2-2807-01", E2E: "ENDTOENDID-950-TEST2-2807-02", Instr: "INSTRID-950-TEST2-2807-02", Sts: StatusRJCT, Eff: StatusRJCT, EffLevel: LevelTx, Reason: "NARR"},
				{PmtInf: "PMTINFID-950-TEST2-2807-01", E2E: "ENDTOENDID-950-TEST2-2807-01", Instr: "INSTRID-950-TEST2-2807-01", Sts: StatusRJCT, Eff: StatusRJCT, EffLevel: LevelTx, Reason: "NARR"},
			},
		},
		{
			file: "acquit_pain_002_001_02_part.xml", version: "pain.002.001.02", msgID: "PSR-20261105-000817", orgnlMsgID: "ACQ-SCT-20261104-0001",
			orgnlNmID: "pain.001.001.03", nbTxs: "4", ctrlSum: "1380.45", grpSts: StatusPART,
			txs: []txGold{
				{PmtInf: "ACQ-PMT-1", E2E: "E2E-0002", Instr: "I-0002", Sts: StatusRJCT, Eff: StatusRJCT, EffLevel: LevelTx, Reason: "AC01", Amount: "250.00", Ccy: "EUR"},
				{PmtInf: "ACQ-PMT-1", E2E: "E2E-0004", Instr: "I-0004", Sts: StatusRJCT, Eff: StatusRJCT, EffLevel: LevelTx, Reason: "F042", Amount: "980.45", Ccy: "EUR"},
			},
		},
		{
			file: "acquit_pain_002_001_10_part.xml", version: "pain.002.001.10", msgID: "STS-2026-11-06-4471", orgnlMsgID: "ACQ-SCT-20261106-0007",
			orgnlNmID: "pain.001.001.09", nbTxs: "5", ctrlSum: "5000.00", grpSts: StatusPART,
			pmtInfs: []string{"PMT-A:PART:", "PMT-B:RJCT:DT01"},
			txs: []txGold{
				{PmtInf: "PMT-A", E2E: "E2E-A-1", Instr: "A-1", Sts: StatusACSC, Eff: StatusACSC, EffLevel: LevelTx, Amount: "1000.00", Ccy: "EUR"},
				{PmtInf: "PMT-A", E2E: "E2E-A-2", Instr: "A-2", Sts: StatusRJCT, Eff: StatusRJCT, EffLevel: LevelTx, Reason: "AM04", Amount: "1000.00", Ccy: "EUR"},
				{PmtInf: "PMT-B", E2E: "E2E-B-1", Eff: StatusRJCT, EffLevel: LevelPmtInf, Reason: "DT01", Amount: "1200.00", Ccy: "EUR"},
				{PmtInf: "PMT-B", E2E: "E2E-B-2", Eff: StatusRJCT, EffLevel: LevelPmtInf, Reason: "DT01", Amount: "1300.00", Ccy: "EUR"},
			},
		},
		{
			file: "acquit_pain_002_001_10_latin1.xml", version: "pain.002.001.10", msgID: "PSR-L1-0001", orgnlMsgID: "ACQ-SCT-20261107-0001",
			orgnlNmID: "pain.001.001.09", grpSts: StatusACTC, pmtInfs: []string{"PMT-L1:ACTC:"},
			txs: []txGold{{PmtInf: "PMT-L1", E2E: "E2E-L1-1", Sts: StatusACSP, Eff: StatusACSP, EffLevel: LevelTx, Amount: "42.00", Ccy: "EUR"}},
		},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			rep, err := ReadPSR(bytes.NewReader(readTestdata(t, "psr/"+c.file)), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			g := rep.Group
			if g.Version != c.version || g.MsgId != c.msgID || g.OrgnlMsgId != c.orgnlMsgID || g.OrgnlMsgNmId != c.orgnlNmID ||
				g.OrgnlNbOfTxs != c.nbTxs || g.OrgnlCtrlSum != c.ctrlSum || g.GrpSts != c.grpSts {
				t.Errorf("group = %+v", g)
			}
			if g.Created.IsZero() {
				t.Errorf("CreDtTm %q not parsed", g.CreDtTm)
			}
			if got := keys(g.Reasons); !reflect.DeepEqual(got, c.grpReasons) {
				t.Errorf("group reasons = %q, want %q", got, c.grpReasons)
			}
			var addtl []string
			for _, r := range g.Reasons {
				addtl = append(addtl, r.AddtlInf...)
			}
			if !reflect.DeepEqual(addtl, c.grpAddtl) {
				t.Errorf("group AddtlInf = %q, want %q", addtl, c.grpAddtl)
			}
			var pmts []string
			for _, p := range rep.PmtInfs {
				k := ""
				if len(p.Reasons) > 0 {
					k = p.Reasons[0].Key()
				}
				pmts = append(pmts, p.OrgnlPmtInfId+":"+string(p.PmtInfSts)+":"+k)
			}
			if !reflect.DeepEqual(pmts, c.pmtInfs) {
				t.Errorf("pmtinfs = %q, want %q", pmts, c.pmtInfs)
			}
			all := rep.AllTxs()
			if len(all) != len(c.txs) {
				t.Fatalf("%d transactions, want %d", len(all), len(c.txs))
			}
			for i, w := range c.txs {
				tx := all[i].Tx
				eff := EffectiveStatus(&rep.Group, all[i].PmtInf, tx)
				rk := ""
				if len(eff.Reasons) > 0 {
					rk = eff.Reasons[0].Key()
				}
				got := txGold{PmtInf: tx.OrgnlPmtInfId, E2E: tx.OrgnlEndToEndId, Instr: tx.OrgnlInstrId, Sts: tx.TxSts,
					Eff: eff.Status, EffLevel: eff.Level, Reason: rk, Amount: tx.Amount, Ccy: tx.Currency}
				if got != w {
					t.Errorf("tx %d = %+v\nwant     %+v", i, got, w)
				}
			}
		})
	}
}

func TestReadPSRPartiesAndTexts(t *testing.T) {
	rep, err := ReadPSR(bytes.NewReader(readTestdata(t, "psr/acquit_pain_002_001_10_part.xml")), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	tx := rep.PmtInfs[0].Txs[0]
	if tx.DebtorName != "Acquit Demo GmbH" || tx.DebtorIBAN != "DE89370400440532013000" || tx.CreditorName != "Lieferant Schmidt KG" ||
		tx.CreditorIBAN != "DE02120300000000202051" || tx.ReqdExctnDt != "2026-11-07" || tx.OrgnlUETR != "8a562c67-ca16-48ba-b074-65581be6f011" {
		t.Errorf("tx = %+v", tx)
	}
	r := rep.PmtInfs[0].Txs[1].Reasons[0]
	if r.OriginatorBIC != "MUSTDEFFXXX" || r.Text() != "Deckung nicht ausreichend" {
		t.Errorf("reason = %+v", r)
	}
	want := []StatusCount{{"2", StatusACSC, "1500.00"}, {"3", StatusRJCT, "3500.00"}}
	if !reflect.DeepEqual(rep.Group.NbOfTxsPerSts, want) {
		t.Errorf("NbOfTxsPerSts = %+v", rep.Group.NbOfTxsPerSts)
	}
	// ISO-8859-1 is decoded.
	l1, err := ReadPSR(bytes.NewReader(readTestdata(t, "psr/acquit_pain_002_001_10_latin1.xml")), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if l1.Group.InitgPtyName != "Crédit Régional Français" || l1.PmtInfs[0].Txs[0].CreditorName != "Société Générale d'Éclairage" {
		t.Errorf("latin1 names = %q / %q", l1.Group.InitgPtyName, l1.PmtInfs[0].Txs[0].CreditorName)
	}
	// .02 reasons with StsOrgtr, Prtry and two AddtlStsRsnInf.
	v2, err := ReadPSR(bytes.NewReader(readTestdata(t, "psr/acquit_pain_002_001_02_part.xml")), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if r := v2.Txs[0].Reasons[0]; r.Originator != "BANQUE EXEMPLE SA" || r.Code != "AC01" {
		t.Errorf("v02 reason 0 = %+v", r)
	}
	if r := v2.Txs[1].Reasons[0]; r.Proprietary != "F042" || r.Text() != "Montant superieur au plafond autorise pour ce contrat" {
		t.Errorf("v02 reason 1 = %+v", r)
	}
	if v2.Txs[0].CreditorIBAN != "FR7630006000011234567890189" || v2.Txs[0].CreditorName != "Fournisseur Dupont SARL" {
		t.Errorf("v02 creditor = %+v", v2.Txs[0])
	}
}

func TestParsePSRCallbackOrderAndError(t *testing.T) {
	var trace []string
	h := PSRHandler{
		OnGroup:  func(g *PSRGroup) error { trace = append(trace, "group:"+string(g.GrpSts)); return nil },
		OnPmtInf: func(g *PSRGroup, p *PSRPmtInf) error { trace = append(trace, "pmt:"+p.OrgnlPmtInfId); return nil },
		OnTx: func(g *PSRGroup, p *PSRPmtInf, tx *PSRTx) error {
			trace = append(trace, "tx:"+p.OrgnlPmtInfId+"/"+string(p.PmtInfSts)+"/"+tx.OrgnlEndToEndId)
			return nil
		},
	}
	sum, err := ParsePSR(bytes.NewReader(readTestdata(t, "psr/acquit_pain_002_001_10_part.xml")), Limits{}, h)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"group:PART", "tx:PMT-A/PART/E2E-A-1", "tx:PMT-A/PART/E2E-A-2", "pmt:PMT-A",
		"tx:PMT-B/RJCT/E2E-B-1", "tx:PMT-B/RJCT/E2E-B-2", "pmt:PMT-B"}
	if !reflect.DeepEqual(trace, want) {
		t.Errorf("trace = %q", trace)
	}
	if sum.Txs != 4 || sum.PmtInfs != 2 {
		t.Errorf("summary = %+v", sum)
	}
	stop := errors.New("stop here")
	_, err = ParsePSR(bytes.NewReader(readTestdata(t, "psr/acquit_pain_002_001_10_part.xml")), Limits{},
		PSRHandler{OnTx: func(*PSRGroup, *PSRPmtInf, *PSRTx) error { return stop }})
	if !errors.Is(err, stop) {
		t.Errorf("callback error not returned: %v", err)
	}
}

func TestParsePSRDownloadZip(t *testing.T) {
	var e2e []string
	res, skipped, err := ParsePSRDownload(readTestdata(t, "psr/acquit_psr_container.zip"), Limits{}, func(entry string) PSRHandler {
		return PSRHandler{OnTx: func(g *PSRGroup, p *PSRPmtInf, tx *PSRTx) error {
			e2e = append(e2e, entry+"|"+tx.OrgnlEndToEndId)
			return nil
		}}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].Entry != "PSR/2026-11-06/psr_0001.xml" || res[0].Summary.Group.OrgnlMsgId != "10280093XXXX" ||
		res[1].Summary.Group.OrgnlMsgId != "ACQ-SCT-20261106-0007" {
		t.Errorf("results = %+v", res)
	}
	if !reflect.DeepEqual(skipped, []string{"readme.txt"}) {
		t.Errorf("skipped = %q", skipped)
	}
	if len(e2e) != 5 || e2e[0] != "PSR/2026-11-06/psr_0001.xml|GSDGFKfLURaHb" {
		t.Errorf("e2e = %q", e2e)
	}
	// A bare document goes through the same function.
	res, _, err = ParsePSRDownload(readTestdata(t, "psr/nordea_pain_002_v3_group_reject.xml"), Limits{}, nil)
	if err != nil || len(res) != 1 || res[0].Entry != "" || res[0].Summary.Group.GrpSts != StatusRJCT {
		t.Errorf("bare: %+v %v", res, err)
	}
}

func TestEffectiveStatusLevels(t *testing.T) {
	rj := []Reason{{Code: "AM05"}}
	cases := []struct {
		name      string
		g, p, tx  Status
		want      Status
		wantLevel Level
	}{
		{"group reject wins over tx accept", StatusRJCT, StatusACTC, StatusACSC, StatusRJCT, LevelGroup},
		{"pmtinf reject over tx accept", StatusACTC, StatusRJCT, StatusACCP, StatusRJCT, LevelPmtInf},
		{"tx reject is most precise", StatusRJCT, StatusRJCT, StatusRJCT, StatusRJCT, LevelTx},
		{"tx status when no reject", StatusACTC, StatusACTC, StatusACSC, StatusACSC, LevelTx},
		{"PART ignored for a tx", StatusPART, StatusPART, StatusNone, StatusNone, ""},
		{"inherit group", StatusACCP, StatusNone, StatusNone, StatusACCP, LevelGroup},
		{"pending tx", StatusACTC, StatusNone, StatusPDNG, StatusPDNG, LevelTx},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := EffectiveStatus(&PSRGroup{GrpSts: c.g, Reasons: rj}, &PSRPmtInf{PmtInfSts: c.p}, &PSRTx{TxSts: c.tx})
			if e.Status != c.want || e.Level != c.wantLevel {
				t.Errorf("got %s/%s, want %s/%s", e.Status, e.Level, c.want, c.wantLevel)
			}
		})
	}
}

var _ = io.EOF
var _ = strings.Contains

func TestReadPSRSyntaxVariants(t *testing.T) {
	prefixed := `<?xml version="1.0"?>
<ns2:Document xmlns:ns2="urn:iso:std:iso:20022:tech:xsd:pain.002.001.03"><ns2:CstmrPmtStsRpt><ns2:GrpHdr><ns2:MsgId>P</ns2:MsgId></ns2:GrpHdr>
<ns2:OrgnlGrpInfAndSts><ns2:OrgnlMsgId>O1</ns2:OrgnlMsgId><ns2:GrpSts>RJCT</ns2:GrpSts><!-- a comment --><ns2:StsRsnInf><ns2:Rsn><ns2:Cd>FF01</ns2:Cd></ns2:Rsn></ns2:StsRsnInf></ns2:OrgnlGrpInfAndSts></ns2:CstmrPmtStsRpt></ns2:Document>`
	cases := []struct {
		name, doc, version, msg string
		sts                     Status
	}{
		{"namespace prefix", prefixed, "pain.002.001.03", "O1", StatusRJCT},
		{"UTF-8 BOM", "\ufeff" + psrWith(""), "pain.002.001.03", "O", StatusACTC},
		{"German DK variant namespace", strings.Replace(psrWith(""), "pain.002.001.03", "pain.002.002.03", 1), "pain.002.002.03", "O", StatusACTC},
		{"pain.002.001.14", strings.Replace(psrWith(""), "pain.002.001.03", "pain.002.001.14", 1), "pain.002.001.14", "O", StatusACTC},
		{"Swiss SIX namespace (Z01)", strings.Replace(psrWith(""), "urn:iso:std:iso:20022:tech:xsd:pain.002.001.03", "http://www.six-interbank-clearing.com/de/pain.002.001.03.ch.02.xsd", 1), "pain.002.001.03", "O", StatusACTC},
		{"German DK swift namespace", strings.Replace(psrWith(""), "urn:iso:std:iso:20022:tech:xsd:pain.002.001.03", "urn:swift:xsd:$pain.002.002.03", 1), "pain.002.002.03", "O", StatusACTC},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep, err := ReadPSR(strings.NewReader(c.doc), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Group.Version != c.version || rep.Group.OrgnlMsgId != c.msg || rep.Group.GrpSts != c.sts {
				t.Errorf("group = %+v", rep.Group)
			}
		})
	}
}
