package e2e

import (
	"fmt"
	"math/big"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/acquit/acquit/daemon/demo"
	"github.com/acquit/acquit/daemon/painfile"
	"github.com/acquit/acquit/daemon/transmissions"
	"github.com/acquit/acquit/plugins/ebics/protocol"
	"github.com/acquit/acquit/plugins/ebics/sim"
)

// ebicsHooks binds the recorder to every transmission and ack event.
var ebicsHooks = []demo.HookData{{Events: `["transmission.*", "ack.*"]`, Script: "record.lua", Function: "on_event"}}

// TestEbicsProfiles runs the three shipped dialects through the real
// daemon, plugin process and simulator: onboarding, a file uploaded in at
// least 5 segments of which the bank rejects three transactions
// (partially_accepted, with exactly those EndToEndIds, reason codes and
// amounts in the event), a file accepted, and a file the bank never
// acknowledges (unacknowledged at the deadline).
func TestEbicsProfiles(t *testing.T) {
	for _, tc := range []struct {
		profile   string
		orderKind string   // what the bank records for the upload
		downloads []string // order types the daemon fetches acknowledgements with
		noFetch   []string // order types it must not ask for
	}{
		{"fr", "FUL:pain.001.001.03", []string{"FDL", "HAC", "PTK"}, []string{"Z01"}},
		{"de", "CCT", []string{"Z01", "HAC", "PTK"}, []string{"FDL"}},
		{"v3", "BTU:SCT", []string{"BTD:PSR", "HAC"}, []string{"PTK"}},
	} {
		t.Run(tc.profile, func(t *testing.T) {
			t.Parallel()
			rec := newRecorder(t, 0)
			h := newHarness(t)
			s, g := startEbicsBank(t, h, tc.profile, 2048, sim.Config{})
			tp := h.Template()
			tp.RecorderURL = rec.srv.URL
			tp.Hooks = ebicsHooks
			tp.AckDeadline = "15s"
			c := ctx(t)
			if err := h.Start(c); err != nil {
				t.Fatal(err)
			}
			if err := demo.Onboard(c, h, ebicsBank); err != nil {
				t.Fatal(err)
			}
			if st := s.State(ebicsPartner, ebicsUser); st != sim.StateReady {
				t.Fatalf("bank says subscriber is %s after onboarding", st)
			}
			dir := filepath.Join(h.Dir, "files")
			const n = 300
			msg := "E2E-" + strings.ToUpper(tc.profile)
			p1, e2e1, err := demo.GenerateFile(dir, msg+"-1", n, 101)
			if err != nil {
				t.Fatal(err)
			}
			p2, _, err := demo.GenerateFile(dir, msg+"-2", n, 102)
			if err != nil {
				t.Fatal(err)
			}
			p3, _, err := demo.GenerateFile(dir, msg+"-3", n, 103)
			if err != nil {
				t.Fatal(err)
			}
			rejected := []string{e2e1[0], e2e1[137], e2e1[n-1]}
			plans := []struct {
				path   string
				faults sim.Faults
				want   transmissions.State
			}{
				{p1, sim.Faults{RejectTxs: rejected}, transmissions.StatePartial},
				{p2, sim.Faults{}, transmissions.StateAccepted},
				{p3, sim.Faults{NeverAck: true}, transmissions.StateUnacknowledged},
			}
			ids := make([]string, len(plans))
			for i, pl := range plans {
				s.SetFaults(pl.faults)
				tr, err := demo.Upload(c, h, ebicsBank, pl.path)
				if err != nil {
					t.Fatalf("upload %s: %v", filepath.Base(pl.path), err)
				}
				if tr.State != transmissions.StateSubmitted {
					t.Fatalf("upload %s: state %s, want submitted", filepath.Base(pl.path), tr.State)
				}
				s.WaitAcks() // the bank's validation used these faults
				ids[i] = tr.ID
			}
			s.SetFaults(sim.Faults{})

			for i, pl := range plans {
				d, err := demo.WaitState(c, h, ids[i], 90*time.Second, pl.want)
				if err != nil {
					t.Fatalf("%s: %v", filepath.Base(pl.path), err)
				}
				data, _ := readPain(t, pl.path)
				orders := ordersOf(s, data)
				if len(orders) != 1 {
					t.Fatalf("%s: %d orders at the bank hold this file, want 1", filepath.Base(pl.path), len(orders))
				}
				if orders[0].OrderType != tc.orderKind {
					t.Errorf("%s: bank recorded order type %q, want %q", filepath.Base(pl.path), orders[0].OrderType, tc.orderKind)
				}
				if d.OrderID != orders[0].OrderID {
					t.Errorf("%s: transmission order id %q, bank's %q", filepath.Base(pl.path), d.OrderID, orders[0].OrderID)
				}
				if segs := segmentsOf(d); segs < 5 {
					t.Errorf("%s: uploaded in %d segments, want >= 5 (segment size too large for the test)", filepath.Base(pl.path), segs)
				}
			}

			// File 1: exactly the rejected transactions, in the detail and the event.
			_, txs1 := readPain(t, p1)
			d1 := describe(t, h, ids[0])
			var gotRej []string
			for _, x := range d1.Rejected {
				if x.Status != "RJCT" {
					continue
				}
				gotRej = append(gotRej, x.EndToEndID)
				if x.ReasonCode != "AC04" || x.Amount != txs1[x.EndToEndID].Amount {
					t.Errorf("detail: rejected %s: reason %s amount %s, want AC04 %s", x.EndToEndID, x.ReasonCode, x.Amount, txs1[x.EndToEndID].Amount)
				}
			}
			sort.Strings(gotRej)
			want := append([]string(nil), rejected...)
			sort.Strings(want)
			if fmt.Sprint(gotRej) != fmt.Sprint(want) {
				t.Errorf("detail: rejected %v, want %v", gotRej, want)
			}
			waitFor(t, time.Minute, "transmission.partially_accepted at the hook", func() bool {
				return len(deliveriesFor(rec, "transmission:"+ids[0], "transmission.partially_accepted")) == 1
			})
			ev := deliveriesFor(rec, "transmission:"+ids[0], "transmission.partially_accepted")[0]
			checkRejectedPayload(t, ev.Data, want, txs1)

			waitFor(t, time.Minute, "transmission.accepted and transmission.unacknowledged at the hook", func() bool {
				return len(deliveriesFor(rec, "transmission:"+ids[1], "transmission.accepted")) == 1 &&
					len(deliveriesFor(rec, "transmission:"+ids[2], "transmission.unacknowledged")) == 1
			})
			// Each file: one submitted event, one final event, nothing twice.
			finals := []string{"transmission.partially_accepted", "transmission.accepted", "transmission.unacknowledged"}
			for i, id := range ids {
				count := map[string]int{}
				for _, e := range subjectEvents(t, h, id) {
					count[e.Type]++
				}
				for typ, k := range count {
					if k != 1 {
						t.Errorf("file %d: %d %s events, want at most 1", i+1, k, typ)
					}
				}
				if count["transmission.submitted"] != 1 || count[finals[i]] != 1 {
					t.Errorf("file %d: events %v, want one transmission.submitted and one %s", i+1, count, finals[i])
				}
				for _, other := range finals {
					if other != finals[i] && count[other] != 0 {
						t.Errorf("file %d: unexpected %s (events %v)", i+1, other, count)
					}
				}
			}
			if n := len(eventsOfType(t, h, "ack.unmatched")); n != 0 {
				t.Errorf("%d ack.unmatched events, want 0", n)
			}
			d3 := describe(t, h, ids[2])
			if len(d3.Acks) != 0 {
				t.Errorf("never acknowledged file has %d ack entries", len(d3.Acks))
			}
			// Acknowledgements came through each order type of the profile.
			asked := map[string]bool{}
			for _, r := range g.requests() {
				if r.Req != nil && r.Req.TransactionID == "" && !r.Upload && r.Req.Kind == protocol.KindRequest {
					asked[r.Kind] = true
				}
			}
			for _, k := range tc.downloads {
				if !asked[k] {
					t.Errorf("the daemon never downloaded with %s (asked %v)", k, asked)
				}
			}
			for _, k := range tc.noFetch {
				if asked[k] {
					t.Errorf("the daemon asked for %s, not in profile %s", k, tc.profile)
				}
			}
			kinds := map[string]bool{}
			for _, a := range d1.Acks {
				kinds[a.Kind] = true
			}
			if !kinds["psr"] || !kinds["hac"] {
				t.Errorf("file 1 acknowledged by %v, want psr and hac", kinds)
			}
			if err := h.Stop(); err != nil {
				t.Fatalf("SIGTERM: %v", err)
			}
			t.Logf("%s: 3 files x %d transfers, %d segments each; %d EBICS requests; acks of file 1: %v", tc.profile, n, segmentsOf(d1), len(g.requests()), kinds)
		})
	}
}

// checkRejectedPayload compares a transmission.partially_accepted payload
// with the transactions the bank rejected (EndToEndIds, AC04, amounts from
// the file, count and total).
func checkRejectedPayload(t *testing.T, data map[string]any, want []string, txs map[string]painfile.Tx) {
	t.Helper()
	list, _ := data["rejected_transactions"].([]any)
	var got []string
	sum := new(big.Rat)
	for _, it := range list {
		m, _ := it.(map[string]any)
		e2e, _ := m["end_to_end_id"].(string)
		amount, _ := m["amount"].(string)
		code, _ := m["reason_code"].(string)
		got = append(got, e2e)
		tx, ok := txs[e2e]
		if !ok {
			t.Errorf("event: rejected %q is not in the file", e2e)
			continue
		}
		if amount != tx.Amount || code != "AC04" {
			t.Errorf("event: rejected %s: amount %q code %q, want %q AC04", e2e, amount, code, tx.Amount)
		}
		if a, ok := new(big.Rat).SetString(tx.Amount); ok {
			sum.Add(sum, a)
		}
	}
	sort.Strings(got)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("event: rejected_transactions %v, want %v", got, want)
	}
	if c, _ := data["rejected_count"].(float64); int(c) != len(want) {
		t.Errorf("event: rejected_count %v, want %d", data["rejected_count"], len(want))
	}
	if a, _ := data["rejected_amount"].(string); a != sum.FloatString(2) {
		t.Errorf("event: rejected_amount %v, want %s", data["rejected_amount"], sum.FloatString(2))
	}
	if tr, _ := data["transmission"].(map[string]any); tr == nil || tr["state"] != string(transmissions.StatePartial) {
		t.Errorf("event: transmission %v, want state partially_accepted", data["transmission"])
	}
}
