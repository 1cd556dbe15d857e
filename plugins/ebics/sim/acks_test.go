package sim

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/acquit/acquit/daemon/acks"
	"github.com/acquit/acquit/internal/painfile"
	"github.com/acquit/acquit/plugins/ebics/keys"
)

var bankKeys *keys.Set

func newTestSim(t *testing.T) *Sim {
	t.Helper()
	if bankKeys == nil {
		k, err := keys.Generate("BANK", "SIM", keys.Options{SelfSigned: true})
		if err != nil {
			t.Fatal(err)
		}
		bankKeys = k
	}
	s, err := New(Config{HostID: "SIM", BankKeys: bankKeys})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func pain(t *testing.T, msgID string, n int, mutate func(string) string) []byte {
	var b bytes.Buffer
	if _, err := painfile.Generate(&b, painfile.GenOptions{MsgID: msgID, N: n, PerPmt: 5, Seed: 9, Debtor: "ACME", Date: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	if mutate != nil {
		return []byte(mutate(b.String()))
	}
	return b.Bytes()
}

// The simulator's acknowledgements are what daemon/acks parses: each
// validation outcome is checked through the real parsers.
func TestAcknowledgementsParse(t *testing.T) {
	cases := []struct {
		name     string
		data     func(t *testing.T) []byte
		faults   Faults
		grpSts   string
		reason   string
		positive bool
		txReject string
	}{
		{"accepted", func(t *testing.T) []byte { return pain(t, "M-OK", 12, nil) }, Faults{}, "ACCP", "", true, ""},
		{"not xml", func(t *testing.T) []byte { return []byte("garbage") }, Faults{}, "", "", false, ""},
		{"control sum", func(t *testing.T) []byte {
			return pain(t, "M-SUM", 12, func(s string) string {
				i := strings.Index(s, "<CtrlSum>")
				return s[:i+9] + "1" + s[i+9:]
			})
		}, Faults{}, "RJCT", "AM10", false, ""},
		{"nb of txs", func(t *testing.T) []byte {
			return pain(t, "M-NB", 12, func(s string) string { return strings.Replace(s, "<NbOfTxs>12</NbOfTxs>", "<NbOfTxs>13</NbOfTxs>", 1) })
		}, Faults{}, "RJCT", "AM18", false, ""},
		{"bad iban", func(t *testing.T) []byte {
			return pain(t, "M-IBAN", 12, func(s string) string {
				i := strings.LastIndex(s, "<IBAN>")
				return s[:i+6] + "FR00" + s[i+10:]
			})
		}, Faults{}, "PART", "", true, "AC01"},
		{"reject file", func(t *testing.T) []byte { return pain(t, "M-REJ", 3, nil) }, Faults{RejectFile: true}, "RJCT", "FF01", false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newTestSim(t)
			s.orders = append(s.orders, Order{OrderID: "A001", OrderType: "CCT", PartnerID: "P", UserID: "U", Data: c.data(t)})
			s.acknowledge(0, c.faults)
			var hac, psr, ptk *Doc
			for _, d := range s.docs {
				switch d.Kind {
				case "HAC":
					hac = d
				case "PSR":
					psr = d
				case "PTK":
					ptk = d
				}
			}
			if hac == nil || ptk == nil {
				t.Fatal("no HAC/PTK")
			}
			entries, err := acks.ParseHAC(bytes.NewReader(hac.Content), acks.Limits{})
			if err != nil || len(entries) != 3 {
				t.Fatalf("HAC: %v %d", err, len(entries))
			}
			last := entries[2]
			if !last.Final || last.OrderID != "A001" || last.Positive != (c.grpSts == "ACCP" || c.grpSts == "PART") {
				t.Fatalf("HAC final entry %+v", last)
			}
			prof, err := acks.PTKProfileByName("en")
			if err != nil {
				t.Fatal(err)
			}
			pr, err := acks.ParsePTK(ptk.Content, prof, time.Now(), acks.Limits{})
			if err != nil || len(pr.Entries) == 0 || len(pr.Unmatched) != 0 {
				t.Fatalf("PTK: %v %+v", err, pr)
			}
			if c.grpSts == "" {
				if psr != nil {
					t.Fatal("PSR for an unreadable file")
				}
				return
			}
			rep, err := acks.ReadPSR(bytes.NewReader(psr.Content), acks.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if string(rep.Group.GrpSts) != c.grpSts {
				t.Fatalf("GrpSts %s, want %s", rep.Group.GrpSts, c.grpSts)
			}
			if c.reason != "" && !strings.Contains(string(psr.Content), "<Cd>"+c.reason+"</Cd>") {
				t.Fatalf("reason %s missing", c.reason)
			}
			if c.txReject != "" {
				txs := rep.AllTxs()
				if len(txs) != 1 || string(txs[0].Tx.TxSts) != "RJCT" {
					t.Fatalf("tx rejects %+v", txs)
				}
			}
		})
	}
}
