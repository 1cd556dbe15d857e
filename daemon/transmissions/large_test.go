package transmissions

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/sdk"
)

// largePSR is a pain.002 reporting n rejected transactions of one payment
// group of message msgID (E2E-1 first, then msgID-E2..En).
func largePSR(msgID, pmtInfID string, n int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.03"><CstmrPmtStsRpt>`+
		`<GrpHdr><MsgId>PSR-%s</MsgId><CreDtTm>2026-11-23T10:00:00</CreDtTm></GrpHdr><OrgnlGrpInfAndSts><OrgnlMsgId>%s</OrgnlMsgId>`+
		`<OrgnlMsgNmId>pain.001.001.03</OrgnlMsgNmId><GrpSts>PART</GrpSts></OrgnlGrpInfAndSts><OrgnlPmtInfAndSts><OrgnlPmtInfId>%s</OrgnlPmtInfId><PmtInfSts>PART</PmtInfSts>`,
		msgID, msgID, pmtInfID)
	for i := 1; i <= n; i++ {
		e2e := fmt.Sprintf("%s-E%d", msgID, i)
		if i == 1 {
			e2e = "E2E-1"
		}
		fmt.Fprintf(&b, "<TxInfAndSts><OrgnlEndToEndId>%s</OrgnlEndToEndId><TxSts>RJCT</TxSts><StsRsnInf><Rsn><Cd>AC04</Cd></Rsn><AddtlInf>account closed</AddtlInf></StsRsnInf></TxInfAndSts>\n", e2e)
	}
	b.WriteString(`</OrgnlPmtInfAndSts></CstmrPmtStsRpt></Document>`)
	return []byte(b.String())
}

// Reports of more entries than one INSERT carries: every entry is recorded
// once, in order, matched like a single entry would be (each lookup is
// answered once per document, the misses too).
func TestLargeReportEntries(t *testing.T) {
	n := 237 // more than two INSERTs of entryBatch rows
	for _, c := range []struct {
		name, msgID, pmtInfID string
		unmatched             int // the group entry names only the foreign message
	}{
		{"ours", "TEST-MSG-1", "TEST-PMT-1", 0},
		{"foreign message, our payment group", "NOT-OURS", "TEST-PMT-1", 1},
		{"foreign", "NOT-OURS", "NOT-OURS-P1", -1},
	} {
		for _, driver := range []string{"sqlite", "postgres"} {
			t.Run(driver+"/"+c.name, func(t *testing.T) {
				f := newFixtureOn(t, driver)
				tr := f.submitAndSend(t)
				r, err := f.svc.Ingest(context.Background(), "demo", "psr", sdk.Document{DownloadID: "big", Function: "psr", Name: "big.xml",
					Content: largePSR(c.msgID, c.pmtInfID, n)})
				if err != nil {
					t.Fatal(err)
				}
				if r.Entries < n {
					t.Fatalf("%d entries for %d transactions", r.Entries, n)
				}
				var rows, seqs, matched int
				var minSeq, maxSeq int
				err = f.st.InTx(context.Background(), func(tx store.Tx) error {
					return tx.QueryRow(context.Background(), `SELECT COUNT(*), COUNT(DISTINCT seq), MIN(seq), MAX(seq), SUM(CASE WHEN transmission_id = ? THEN 1 ELSE 0 END) FROM ack_entries WHERE ack_id = ?`,
						tr.ID, r.AckID).Scan(&rows, &seqs, &minSeq, &maxSeq, &matched)
				})
				if err != nil {
					t.Fatal(err)
				}
				if rows != r.Entries || seqs != rows || minSeq != 1 || maxSeq != rows {
					t.Fatalf("ack_entries: %d rows, %d seqs %d..%d for %d entries", rows, seqs, minSeq, maxSeq, r.Entries)
				}
				if c.unmatched >= 0 {
					if matched != rows-c.unmatched || r.Unmatched != c.unmatched || len(r.Changed) != 1 {
						t.Fatalf("%d of %d entries matched, result %+v", matched, rows, r)
					}
					got, _ := f.svc.Get(context.Background(), tr.ID)
					if got.State == tr.State {
						t.Fatalf("state still %s", got.State)
					}
				} else if matched != 0 || r.Unmatched != rows {
					t.Fatalf("%d foreign entries matched, result %+v", matched, r)
				}
			})
		}
	}
}

// BenchmarkIngestLargeReport ingests a PSR of 20 000 transactions that
// match no transmission (the shape of TestEbicsIssueLargeDocument's, at a
// sixth of its size) into a real SQLite store.
func BenchmarkIngestLargeReport(b *testing.B) {
	f := newFixture(b)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		msg := fmt.Sprintf("NOT-OURS-%d", i)
		doc := largePSR(msg, msg+"-P1", 20000)
		b.StartTimer()
		if _, err := f.svc.Ingest(context.Background(), "demo", "psr", sdk.Document{DownloadID: fmt.Sprint(i), Function: "psr", Name: "big.xml", Content: doc}); err != nil {
			b.Fatal(err)
		}
	}
}
