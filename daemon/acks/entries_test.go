package acks

import (
	"archive/zip"
	"errors"
	"testing"
	"time"
)

func TestParseEntriesPSR(t *testing.T) {
	p, err := ParseEntries(readTestdata(t, "psr/acquit_pain_002_001_10_part.xml"), ParseOptions{Kind: "psr"})
	if err != nil {
		t.Fatal(err)
	}
	type g struct {
		Level, Ref, Msg, Pmt, E2E string
		Status                    Status
		Code, Amount              string
		Final                     bool
	}
	want := []g{
		{"group", "ACQ-SCT-20261106-0007", "ACQ-SCT-20261106-0007", "", "", StatusPART, "", "", true},
		{"tx", "E2E-A-2", "ACQ-SCT-20261106-0007", "PMT-A", "E2E-A-2", StatusRJCT, "AM04", "1000.00", true},
		{"pmtinf", "PMT-A", "ACQ-SCT-20261106-0007", "PMT-A", "", StatusPART, "", "", true},
		{"tx", "E2E-B-1", "ACQ-SCT-20261106-0007", "PMT-B", "E2E-B-1", StatusRJCT, "DT01", "1200.00", true},
		{"tx", "E2E-B-2", "ACQ-SCT-20261106-0007", "PMT-B", "E2E-B-2", StatusRJCT, "DT01", "1300.00", true},
		{"pmtinf", "PMT-B", "ACQ-SCT-20261106-0007", "PMT-B", "", StatusRJCT, "DT01", "", true},
	}
	if len(p.Entries) != len(want) {
		t.Fatalf("%d entries: %+v", len(p.Entries), p.Entries)
	}
	for i, w := range want {
		e := p.Entries[i]
		got := g{e.Level, e.Ref, e.MsgID, e.PmtInfID, e.EndToEndID, e.Status, e.ReasonCode, e.Amount, e.Final}
		if got != w || e.Kind != "psr" {
			t.Errorf("entry %d = %+v\nwant       %+v", i, got, w)
		}
	}
	if p.Entries[1].ReasonText != "Deckung nicht ausreichend" {
		t.Errorf("reason text %q", p.Entries[1].ReasonText)
	}
	all, err := ParseEntries(readTestdata(t, "psr/acquit_pain_002_001_10_part.xml"), ParseOptions{Kind: "psr", KeepAcceptedTxs: true})
	if err != nil || len(all.Entries) != 7 {
		t.Errorf("KeepAcceptedTxs: %v %d", err, len(all.Entries))
	}
}

func TestParseEntriesHACDetectedAndZip(t *testing.T) {
	// A HAC delivered under the "psr" kind is recognised.
	p, err := ParseEntries(readTestdata(t, "hac/acquit_hac_de_ebics25.xml"), ParseOptions{Kind: "psr"})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Entries) != 7 {
		t.Fatalf("%d entries", len(p.Entries))
	}
	type g struct {
		Kind, Ref, Order string
		Status           Status
		Stage            Stage
		Final, Pos       bool
	}
	want := []g{
		{"hac", "FILE_UPLOAD", "A107", StatusRCVD, StageReceived, false, true},
		{"hac", "ES_VERIFICATION", "A107", StatusRCVD, StageSignatureVerified, false, true},
		{"hac", "ORDER_HAC_FINAL_POS", "A107", StatusACTC, StageFinal, true, true},
		{"hac", "FILE_UPLOAD", "A108", StatusRCVD, StageReceived, false, true},
		{"hac", "ES_VERIFICATION", "A108", StatusPDNG, StageNone, false, false},
		{"hac", "ORDER_HAC_FINAL_NEG", "A108", StatusRJCT, StageFinal, true, false},
		{"hac", "FILE_DOWNLOAD", "A109", StatusNone, StageNone, false, true},
	}
	for i, w := range want {
		e := p.Entries[i]
		got := g{e.Kind, e.Ref, e.OrderID, e.Status, e.Stage, e.Final, e.Positive}
		if got != w || e.PartnerID != "ACQPART1" {
			t.Errorf("entry %d = %+v\nwant       %+v", i, got, w)
		}
	}
	// ZIP: PSRs and a HAC together; the txt file is listed as skipped.
	data := zipOf(t, map[string]string{
		"a.xml":     string(readTestdata(t, "psr/nordea_pain_002_v3_group_reject.xml")),
		"b.xml":     string(readTestdata(t, "hac/acquit_hac_ebics30_btf.xml")),
		"notes.txt": "hello",
	}, zip.Deflate)
	z, err := ParseEntries(data, ParseOptions{Kind: "hac"})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, e := range z.Entries {
		kinds[e.Kind+":"+e.Doc]++
	}
	if kinds["psr:a.xml"] != 1 || kinds["hac:b.xml"] != 9 || len(z.Skipped) != 1 {
		t.Errorf("kinds %v skipped %v", kinds, z.Skipped)
	}
}

func TestParseEntriesPTK(t *testing.T) {
	prof, _ := PTKProfileByName("de")
	p, err := ParseEntries(readTestdata(t, "ptk/ptk_de_sample.txt"), ParseOptions{Kind: "ptk", PTK: prof})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Entries) != 8 || len(p.Unmatched) != 1 || p.Raw == "" {
		t.Fatalf("entries %d unmatched %d", len(p.Entries), len(p.Unmatched))
	}
	if e := p.Entries[5]; e.Status != StatusRJCT || !e.Final || e.OrderID != "A108" || e.Ref != "line 16" || e.At.IsZero() {
		t.Errorf("final negative = %+v", e)
	}
	// PTK files in a ZIP, whatever their extension.
	data := zipOf(t, map[string]string{"ptk_20261110.txt": string(readTestdata(t, "ptk/ptk_en_sample.txt"))}, zip.Deflate)
	en, _ := PTKProfileByName("en")
	z, err := ParseEntries(data, ParseOptions{Kind: "ptk", PTK: en, Ref: time.Now()})
	if err != nil || len(z.Entries) != 5 || z.Entries[0].Doc != "ptk_20261110.txt" {
		t.Errorf("zip ptk: %v %+v", err, z)
	}
	if _, err := ParseEntries([]byte("x"), ParseOptions{Kind: "camt"}); !errors.Is(err, ErrMalformed) {
		t.Errorf("unknown kind: %v", err)
	}
	if _, err := ParseEntries([]byte("x"), ParseOptions{Kind: "ptk"}); !errors.Is(err, ErrPTK) {
		t.Errorf("no profile: %v", err)
	}
}
