package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acquit/acquit/daemon/transmissions"
	"github.com/acquit/acquit/internal/demo"
	"github.com/acquit/acquit/plugins/ebics/sim"
)

// psrNotOurs is a well-formed payment status report about a file this
// daemon never sent.
const psrNotOurs = `<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.03">
 <CstmrPmtStsRpt>
  <GrpHdr><MsgId>PSR-FOREIGN-1</MsgId><CreDtTm>2026-11-23T10:00:00</CreDtTm></GrpHdr>
  <OrgnlGrpInfAndSts><OrgnlMsgId>NOT-OURS-1</OrgnlMsgId><OrgnlMsgNmId>pain.001.001.03</OrgnlMsgNmId><GrpSts>PART</GrpSts></OrgnlGrpInfAndSts>
  <OrgnlPmtInfAndSts><OrgnlPmtInfId>NOT-OURS-1-P1</OrgnlPmtInfId><PmtInfSts>PART</PmtInfSts>
   <TxInfAndSts><OrgnlEndToEndId>NOT-OURS-1-E1</OrgnlEndToEndId><TxSts>RJCT</TxSts><StsRsnInf><Rsn><Cd>AC04</Cd></Rsn></StsRsnInf></TxInfAndSts>
  </OrgnlPmtInfAndSts>
 </CstmrPmtStsRpt>
</Document>
`

// hostileReports are documents a bank channel could deliver as payment
// status reports that must be stored raw, refused with a reason, confirmed
// (so they do not block the queue) and never change a transmission.
func hostileReports() []struct {
	name, content, reason string
} {
	laughs := `<!DOCTYPE Document [<!ENTITY l "lol"><!ENTITY l2 "&l;&l;&l;&l;&l;&l;&l;&l;&l;&l;"><!ENTITY l3 "&l2;&l2;&l2;&l2;&l2;&l2;&l2;&l2;&l2;&l2;">]>`
	return []struct{ name, content, reason string }{
		{"billion-laughs", strings.Replace(psrNotOurs, "<Document", laughs+"<Document", 1), "DOCTYPE"},
		{"external-entity", strings.Replace(strings.Replace(psrNotOurs, "<Document", `<!DOCTYPE Document [<!ENTITY x SYSTEM "file:///etc/passwd">]><Document`, 1),
			"PSR-FOREIGN-1", "&x;", 1), "DOCTYPE"},
		{"truncated", psrNotOurs[:len(psrNotOurs)/2], "unexpected end"},
		{"camt-in-psr-channel", `<?xml version="1.0"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt><GrpHdr><MsgId>S1</MsgId></GrpHdr></BkToCstmrStmt></Document>`, "not a pain.002"},
		{"binary", "\x00\x01\xfe\xff" + strings.Repeat("\x89PNG\r\n\x1a\n", 64), "malformed"},
		{"deep-nesting", `<?xml version="1.0"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.03">` +
			strings.Repeat("<CstmrPmtStsRpt>", 20000) + strings.Repeat("</CstmrPmtStsRpt>", 20000) + `</Document>`, "nesting too deep"},
	}
}

// TestEbicsHostileReports has the bank deliver forged, malformed and
// malicious payment status reports before the real one of an uploaded
// file: each is stored, refused with an ack.unmatched event naming why,
// confirmed to the bank, and the real report behind them still applies
// (partially_accepted with the one rejected transaction). A well-formed
// report about a file never sent is ack.unmatched with its entries.
func TestEbicsHostileReports(t *testing.T) {
	t.Parallel()
	// Fetched through the admin API, not by the schedule.
	rec, h, s, _, c := startOnboardedRecorded(t, "5m", "@every 1h")
	hostile := hostileReports()
	ids := map[string]string{} // document id -> case
	for _, hc := range hostile {
		ids[s.AddDocument(ebicsPartner, "PSR", "pain.002.001.03", []byte(hc.content))] = hc.name
	}
	ids[s.AddDocument(ebicsPartner, "PSR", "pain.002.001.03", []byte(psrNotOurs))] = "not-ours"
	path, e2e, err := demo.GenerateFile(filepath.Join(h.Dir, "files"), "E2E-HOSTILE", 50, 31)
	if err != nil {
		t.Fatal(err)
	}
	s.SetFaults(sim.Faults{RejectTxs: []string{e2e[7]}})
	tr, err := demo.Upload(c, h, ebicsBank, path)
	if err != nil {
		t.Fatal(err)
	}
	s.WaitAcks()

	// Fetch PSRs until the bank has none left; count the calls.
	calls := 0
	var summaries []string
	for ; calls < 30; calls++ {
		var out map[string]string
		_, err := h.Client().Do(c, "POST", "/v1/banks/"+ebicsBank+"/fetch-acks?kinds=psr", nil, &out)
		if err != nil {
			t.Fatalf("fetch-acks call %d: %v (%v)", calls+1, err, out)
		}
		summaries = append(summaries, out["summary"])
		if strings.Contains(out["summary"], "no data") {
			break
		}
	}
	for _, d := range s.Docs() {
		if d.Kind == "PSR" && !d.Delivered {
			t.Errorf("PSR %s (%s) not confirmed: it would block or repeat", d.ID, ids[d.ID])
		}
	}
	d, err := demo.WaitState(c, h, tr.ID, 30*time.Second, transmissions.StatePartial)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Rejected) != 1 || d.Rejected[0].EndToEndID != e2e[7] || d.Rejected[0].ReasonCode != "AC04" {
		t.Errorf("rejected %+v, want only %s AC04", d.Rejected, e2e[7])
	}

	waitFor(t, time.Minute, "an ack.unmatched per forged report", func() bool {
		return countType(rec, "ack.unmatched") >= len(hostile)+1
	})
	var unparseable, withEntries int
	var reasons []string
	for _, dl := range uniqueOfType(rec, "ack.unmatched") {
		reason, _ := dl.Data["reason"].(string)
		switch {
		case strings.HasPrefix(reason, "unparseable: "):
			unparseable++
			reasons = append(reasons, reason)
		case reason == "":
			entries, _ := dl.Data["entries"].([]any)
			if len(entries) == 0 {
				t.Errorf("ack.unmatched without reason or entries: %v", dl.Data)
			}
			withEntries++
		default:
			t.Errorf("ack.unmatched reason %q", reason)
		}
	}
	if unparseable != len(hostile) || withEntries != 1 {
		t.Errorf("%d unparseable and %d unmatched-with-entries events, want %d and 1", unparseable, withEntries, len(hostile))
	}
	for _, hc := range hostile {
		n := 0
		for _, r := range reasons {
			if strings.Contains(r, hc.reason) {
				n++
			}
		}
		if n == 0 {
			t.Errorf("%s: no refusal names %q (reasons %q)", hc.name, hc.reason, reasons)
		}
	}
	if n := countType(rec, "transmission.partially_accepted"); n != 1 {
		t.Errorf("%d transmission.partially_accepted deliveries, want 1", n)
	}
	if err := h.Stop(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	t.Logf("%d reports fetched in %d fetch-acks calls (one document per kind per call): %s", len(hostile)+2, calls+1, strings.Join(summaries, " | "))
	for _, r := range reasons {
		t.Logf("refused: %.160s", r)
	}
}

func uniqueOfType(rec *recorder, typ string) []delivery {
	var out []delivery
	seen := map[string]bool{}
	for _, d := range rec.all() {
		if d.Type == typ && !seen[d.ID] {
			seen[d.ID] = true
			out = append(out, d)
		}
	}
	return out
}

func countType(rec *recorder, typ string) int { return len(uniqueOfType(rec, typ)) }
