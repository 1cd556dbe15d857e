package acks

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 6, 10, 0, 0, 0, time.UTC)

// candidate10 is the submitted file behind acquit_pain_002_001_10_part.xml.
func candidate10() Candidate {
	return Candidate{
		ID: "tr-10", Bank: "musterbank", OrderID: "B001", PartnerID: "ACQPART1", MsgId: "ACQ-SCT-20261106-0007",
		PmtInfIds: []string{"PMT-A", "PMT-B"}, SubmittedAt: t0,
		Txs: []CandidateTx{
			{PmtInfId: "PMT-A", EndToEndId: "E2E-A-1", InstrId: "A-1", Amount: "1000.00", Currency: "EUR"},
			{PmtInfId: "PMT-A", EndToEndId: "E2E-A-2", InstrId: "A-2", Amount: "1000.00", Currency: "EUR"},
			{PmtInfId: "PMT-A", EndToEndId: "E2E-A-3", InstrId: "A-3", Amount: "500.00", Currency: "EUR"},
			{PmtInfId: "PMT-B", EndToEndId: "E2E-B-1", Amount: "1200.00", Currency: "EUR"},
			{PmtInfId: "PMT-B", EndToEndId: "E2E-B-2", Amount: "1300.00", Currency: "EUR"},
		},
	}
}

func psrFacts(t *testing.T, doc []byte, id string, at time.Time) (AckFacts, PSRRef) {
	t.Helper()
	b := &PSRFactsBuilder{}
	b.Facts.DocID, b.Facts.At = id, at
	if _, err := ParsePSR(bytes.NewReader(doc), Limits{}, b.Handler()); err != nil {
		t.Fatal(err)
	}
	return b.Facts, b.Ref
}

func groupDoc(orgnlMsgID string, sts Status) []byte {
	return []byte(`<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.03"><CstmrPmtStsRpt><GrpHdr><MsgId>G-` + string(sts) +
		`</MsgId><CreDtTm>2026-11-06T11:00:00</CreDtTm></GrpHdr><OrgnlGrpInfAndSts><OrgnlMsgId>` + orgnlMsgID +
		`</OrgnlMsgId><OrgnlMsgNmId>pain.001.001.09</OrgnlMsgNmId><GrpSts>` + string(sts) + `</GrpSts></OrgnlGrpInfAndSts></CstmrPmtStsRpt></Document>`)
}

type rjGold struct {
	E2E, Amount string
	Level       Level
	Reason      string
	Unknown     bool
}

func rejectedGold(o Overall) []rjGold {
	var out []rjGold
	for _, r := range o.Rejected {
		k := ""
		if len(r.Reasons) > 0 {
			k = r.Reasons[0].Key()
		}
		out = append(out, rjGold{r.EndToEndId, r.Amount, r.Level, k, r.Unknown})
	}
	return out
}

func TestMergePSRSequences(t *testing.T) {
	c := candidate10()
	actc, _ := psrFacts(t, groupDoc(c.MsgId, StatusACTC), "actc", t0.Add(time.Minute))
	part, ref := psrFacts(t, readTestdata(t, "psr/acquit_pain_002_001_10_part.xml"), "part", t0.Add(2*time.Hour))
	acsc, _ := psrFacts(t, groupDoc(c.MsgId, StatusACSC), "acsc", t0.Add(30*time.Hour))
	rjct, _ := psrFacts(t, groupDoc(c.MsgId, StatusRJCT), "rjct", t0.Add(3*time.Hour))
	partRejected := []rjGold{
		{"E2E-A-2", "1000.00", LevelTx, "AM04", false},
		{"E2E-B-1", "1200.00", LevelPmtInf, "DT01", false},
		{"E2E-B-2", "1300.00", LevelPmtInf, "DT01", false},
	}
	allGroup := []rjGold{}
	for _, tx := range c.Txs {
		allGroup = append(allGroup, rjGold{tx.EndToEndId, tx.Amount, LevelGroup, "", false})
	}
	cases := []struct {
		name      string
		acks      []AckFacts
		status    Status
		stage     Stage
		rejected  []rjGold
		conflicts int
	}{
		{"ACTC only", []AckFacts{actc}, StatusACTC, StageFinal, nil, 0},
		{"ACTC then PART", []AckFacts{actc, part}, StatusPART, StageFinal, partRejected, 0},
		{"given out of order", []AckFacts{part, actc}, StatusPART, StageFinal, partRejected, 0},
		{"later ACSC does not undo PART", []AckFacts{actc, part, acsc}, StatusPART, StageFinal, partRejected, 0},
		{"ACTC then RJCT", []AckFacts{actc, rjct}, StatusRJCT, StageFinal, allGroup, 0},
		{"RJCT then later ACSC ignored", []AckFacts{rjct, acsc}, StatusRJCT, StageFinal, allGroup, 1},
		{"none", nil, StatusNone, StageNone, nil, 0},
	}
	for _, cs := range cases {
		t.Run(cs.name, func(t *testing.T) {
			o := Merge(c, cs.acks)
			if o.Status != cs.status || o.Stage != cs.stage || len(o.Conflicts) != cs.conflicts {
				t.Errorf("status %s stage %s conflicts %q", o.Status, o.Stage, o.Conflicts)
			}
			got := rejectedGold(o)
			if len(got) == 0 {
				got = nil
			}
			want := cs.rejected
			if len(want) == 0 {
				want = nil
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("rejected = %+v\nwant       %+v", got, want)
			}
			if o.Final != (o.Status == StatusRJCT || o.Status == StatusPART || o.Status.Positive()) {
				t.Errorf("final = %v for %s", o.Final, o.Status)
			}
			if len(o.History) != len(cs.acks) {
				t.Errorf("history %d items", len(o.History))
			}
		})
	}
	// The reference collected while streaming matches the candidate.
	if ref.OrgnlMsgId != c.MsgId || !reflect.DeepEqual(ref.PmtInfIds, []string{"PMT-A", "PMT-B"}) || len(ref.EndToEndIds) != 4 {
		t.Errorf("ref = %+v", ref)
	}
	if part.AcceptedTxs != 1 || len(part.Txs) != 3 {
		t.Errorf("part facts: %d accepted, %d kept", part.AcceptedTxs, len(part.Txs))
	}
	// Rejection texts reach the rejected list.
	o := Merge(c, []AckFacts{actc, part})
	if d := o.Rejected[0].Reasons[0].Describe("fr"); d != "AM04 Provision insuffisante. — Deckung nicht ausreichend" {
		t.Errorf("describe = %q", d)
	}
	if o.Rejected[0].DocID != "part" || !o.Rejected[0].At.Equal(t0.Add(2*time.Hour)) {
		t.Errorf("provenance = %+v", o.Rejected[0])
	}
}

func TestMergeRealRejections(t *testing.T) {
	// Nordea transaction reject: both transactions rejected -> whole file.
	nt, ref := psrFacts(t, readTestdata(t, "psr/nordea_pain_002_v3_txn_reject.xml"), "n1", t0)
	c := Candidate{ID: "n", MsgId: "MSGID-950-TEST2-2807-01", PmtInfIds: []string{"PMTINFID-950-TEST2-2807-01"}, Txs: []CandidateTx{
		{EndToEndId: "ENDTOENDID-950-TEST2-2807-01", Amount: "10.00", Currency: "EUR"},
		{EndToEndId: "ENDTOENDID-950-TEST2-2807-02", Amount: "20.00", Currency: "EUR"},
	}}
	if m := MatchPSR(ref, []Candidate{c}); m.CandidateID != "n" || m.By != ByMsgId {
		t.Errorf("match = %+v", m)
	}
	o := Merge(c, []AckFacts{nt})
	if o.Status != StatusRJCT || len(o.Rejected) != 2 || o.Rejected[0].Amount != "10.00" || o.Rejected[0].PmtInfId != "PMTINFID-950-TEST2-2807-01" {
		t.Errorf("overall = %+v", o)
	}
	// A rejected transaction the file does not contain is kept, marked Unknown.
	c.Txs = c.Txs[:1]
	o = Merge(c, []AckFacts{nt})
	if o.Status != StatusRJCT || len(o.Rejected) != 2 || !o.Rejected[1].Unknown || o.Rejected[1].EndToEndId != "ENDTOENDID-950-TEST2-2807-02" {
		t.Errorf("unknown tx: %+v", o.Rejected)
	}
	// PmtInf reject with a single PmtInf and no transaction list -> RJCT.
	pr, _ := psrFacts(t, readTestdata(t, "psr/nordea_pain_002_v3_payment_reject.xml"), "n2", t0)
	o = Merge(Candidate{ID: "p", PmtInfIds: []string{"PMTINFID-COM-SCE25-1707-01"}}, []AckFacts{pr})
	if o.Status != StatusRJCT || len(o.GroupReasons) != 1 || o.GroupReasons[0].Text() != "CAP Invalid code or combinations in CategoryPurpose or ServiceLevel" {
		t.Errorf("pmtinf reject: %+v", o)
	}
	// Cross River: PmtInf RJCT, but the file had a second PmtInf -> PART.
	cr, _ := psrFacts(t, readTestdata(t, "psr/cross_river_pain_002_transaction_rejected.xml"), "c", t0)
	o = Merge(Candidate{ID: "x", PmtInfIds: []string{"missing2", "other"}}, []AckFacts{cr})
	if o.Status != StatusPART || len(o.Rejected) != 3 {
		t.Errorf("cross river: %s %d", o.Status, len(o.Rejected))
	}
}

func TestMergeHACAndPTK(t *testing.T) {
	es, err := ParseHAC(bytes.NewReader(readTestdata(t, "hac/acquit_hac_de_ebics25.xml")), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	byOrder := map[string][]HACEntry{}
	for _, e := range es {
		byOrder[e.OrderID] = append(byOrder[e.OrderID], e)
	}
	ok := Merge(Candidate{ID: "a107"}, []AckFacts{FactsFromHAC("hac1", byOrder["A107"])})
	if ok.Status != StatusACTC || ok.Stage != StageFinal || !ok.Final {
		t.Errorf("A107 = %+v", ok)
	}
	bad := Merge(Candidate{ID: "a108", Txs: []CandidateTx{{EndToEndId: "X", Amount: "1.00"}}}, []AckFacts{FactsFromHAC("hac1", byOrder["A108"])})
	if bad.Status != StatusRJCT || len(bad.GroupReasons) != 2 || bad.GroupReasons[0].Code != "TD03" ||
		!strings.Contains(bad.GroupReasons[1].Text(), "Auftrag abgelehnt") || len(bad.Rejected) != 1 || bad.Rejected[0].Source != "hac" {
		t.Errorf("A108 = %+v", bad)
	}
	// Only the first steps so far: received, signature verified, not final.
	partial := FactsFromHAC("hac0", byOrder["A107"][:2])
	if o := Merge(Candidate{ID: "a107"}, []AckFacts{partial}); o.Status != StatusRCVD || o.Stage != StageSignatureVerified || o.Final {
		t.Errorf("partial = %+v", o)
	}
	// A negative step without its final entry stays pending with the reason.
	neg := FactsFromHAC("hac2", byOrder["A108"][:2])
	if o := Merge(Candidate{ID: "a108"}, []AckFacts{neg}); o.Status != StatusPDNG || o.Final {
		t.Errorf("negative step = %+v", o)
	}
	// PTK: the same outcomes from the French protocol.
	p, _ := PTKProfileByName("fr")
	res, err := ParsePTK(readTestdata(t, "ptk/ptk_fr_sample.txt"), p, time.Date(2026, 4, 7, 13, 0, 0, 0, time.UTC), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	pt := map[string][]PTKEntry{}
	for _, e := range res.Entries {
		pt[e.OrderID] = append(pt[e.OrderID], e)
	}
	if o := Merge(Candidate{ID: "a107"}, []AckFacts{FactsFromPTK("ptk1", pt["A107"])}); o.Status != StatusACTC || !o.Final {
		t.Errorf("PTK A107 = %+v", o)
	}
	o := Merge(Candidate{ID: "a108"}, []AckFacts{FactsFromPTK("ptk1", pt["A108"])})
	if o.Status != StatusRJCT || o.GroupReasons[0].Code != "DS0D" {
		t.Errorf("PTK A108 = %+v", o)
	}
	// HAC positive, then a PSR rejection later: the rejection wins.
	rj, _ := psrFacts(t, groupDoc("M", StatusRJCT), "psr", time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC))
	if o := Merge(Candidate{ID: "a107"}, []AckFacts{FactsFromHAC("hac1", byOrder["A107"]), rj}); o.Status != StatusRJCT {
		t.Errorf("HAC then PSR RJCT = %s", o.Status)
	}
}

func TestMatchPSR(t *testing.T) {
	old := Candidate{ID: "old", Bank: "b", MsgId: "M1", PmtInfIds: []string{"P1"}, SubmittedAt: t0.Add(-48 * time.Hour),
		Txs: []CandidateTx{{EndToEndId: "E1"}, {EndToEndId: "E2"}}}
	recent := Candidate{ID: "recent", Bank: "b", MsgId: "M1", PmtInfIds: []string{"P1", "P2"}, SubmittedAt: t0,
		Txs: []CandidateTx{{EndToEndId: "E2"}, {EndToEndId: "E3"}}}
	other := Candidate{ID: "other", Bank: "c", MsgId: "M9", PmtInfIds: []string{"P9"}, SubmittedAt: t0}
	all := []Candidate{old, recent, other}
	cases := []struct {
		name string
		ref  PSRRef
		id   string
		by   MatchBy
		amb  []string
	}{
		{"msgid reused: most recent, ambiguity reported", PSRRef{OrgnlMsgId: "M1"}, "recent", ByMsgId, []string{"old"}},
		{"msgid with spaces", PSRRef{OrgnlMsgId: "  M9 "}, "other", ByMsgId, nil},
		{"bank filter", PSRRef{Bank: "b", OrgnlMsgId: "M9"}, "", "", nil},
		{"pmtinf best overlap", PSRRef{OrgnlMsgId: "unknown", PmtInfIds: []string{"P1", "P2"}}, "recent", ByPmtInfId, nil},
		{"pmtinf tie", PSRRef{PmtInfIds: []string{"P1"}}, "recent", ByPmtInfId, []string{"old"}},
		{"endtoend", PSRRef{EndToEndIds: []string{"E1"}}, "old", ByEndToEndId, nil},
		{"endtoend best", PSRRef{EndToEndIds: []string{"E2", "E3"}}, "recent", ByEndToEndId, nil},
		{"nothing", PSRRef{OrgnlMsgId: "Z", PmtInfIds: []string{"Z"}, EndToEndIds: []string{"Z"}}, "", "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := MatchPSR(c.ref, all)
			if m.CandidateID != c.id || m.By != c.by || !reflect.DeepEqual(m.Ambiguous, c.amb) {
				t.Errorf("match = %+v", m)
			}
			if !m.Matched() && m.Reason == "" {
				t.Error("no reason for a miss")
			}
		})
	}
}

func TestMatchOrder(t *testing.T) {
	now := t0
	cands := []Candidate{
		{ID: "a107-old", Bank: "b", OrderID: "A107", PartnerID: "P1", SubmittedAt: now.Add(-72 * time.Hour)},
		{ID: "a107-new", Bank: "b", OrderID: "A107", PartnerID: "P1", SubmittedAt: now.Add(-time.Hour)},
		{ID: "a107-p2", Bank: "b", OrderID: "A107", PartnerID: "P2", SubmittedAt: now.Add(-30 * time.Minute)},
		{ID: "a107-c", Bank: "c", OrderID: "A107", PartnerID: "P1", SubmittedAt: now.Add(-10 * time.Minute)},
		{ID: "a200-future", Bank: "b", OrderID: "A200", PartnerID: "P1", SubmittedAt: now.Add(time.Hour)},
	}
	cases := []struct {
		name   string
		ref    OrderRef
		window time.Duration
		id     string
		amb    []string
	}{
		{"recent within 1 day", OrderRef{Bank: "b", OrderID: "a107", PartnerID: "P1", At: now}, 24 * time.Hour, "a107-new", nil},
		{"reused OrderID within 7 days: ambiguity", OrderRef{Bank: "b", OrderID: "A107", PartnerID: "P1", At: now}, 7 * 24 * time.Hour, "a107-new", []string{"a107-old"}},
		{"other partner", OrderRef{Bank: "b", OrderID: "A107", PartnerID: "P2", At: now}, 24 * time.Hour, "a107-p2", nil},
		{"unknown partner on entry", OrderRef{Bank: "b", OrderID: "A107", At: now}, 24 * time.Hour, "a107-p2", []string{"a107-new"}},
		{"ack older than the submission", OrderRef{Bank: "b", OrderID: "A200", PartnerID: "P1", At: now}, 24 * time.Hour, "", nil},
		{"outside window", OrderRef{Bank: "b", OrderID: "A107", PartnerID: "P1", At: now.Add(30 * 24 * time.Hour)}, 7 * 24 * time.Hour, "", nil},
		{"no time on entry", OrderRef{Bank: "b", OrderID: "A107", PartnerID: "P1"}, time.Hour, "a107-new", []string{"a107-old"}},
		{"unknown OrderID", OrderRef{Bank: "b", OrderID: "ZZZZ", At: now}, time.Hour, "", nil},
		{"empty OrderID", OrderRef{Bank: "b", At: now}, time.Hour, "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := MatchOrder(c.ref, cands, c.window)
			if m.CandidateID != c.id || !reflect.DeepEqual(m.Ambiguous, c.amb) {
				t.Errorf("match = %+v", m)
			}
			if m.Matched() && m.By != ByOrderID || !m.Matched() && m.Reason == "" {
				t.Errorf("by/reason = %+v", m)
			}
		})
	}
}

func TestOverallJSON(t *testing.T) {
	c := candidate10()
	part, _ := psrFacts(t, readTestdata(t, "psr/acquit_pain_002_001_10_part.xml"), "part", t0)
	o := Merge(c, []AckFacts{part})
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"status":"PART"`, `"stage":"final"`, `"end_to_end_id":"E2E-A-2"`, `"amount":"1000.00"`, `"code":"AM04"`, `"level":"pmtinf"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s: %s", want, b)
		}
	}
	if got := o.Rejected[1].Texts("fr"); len(got) != 1 || got[0] != "DT01 Date invalide (par exemple date de règlement erronée ou absente). — Ausfuehrungsdatum liegt in der Vergangenheit" {
		t.Errorf("texts = %q", got)
	}
}
