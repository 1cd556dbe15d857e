package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/acquit/acquit/daemon/transmissions"
	"github.com/acquit/acquit/internal/demo"
	"github.com/acquit/acquit/internal/painfile"
	"github.com/acquit/acquit/plugins/ebics/protocol"
	"github.com/acquit/acquit/plugins/ebics/sim"
)

// ebicsHooks binds the recorder to every transmission and ack event.
var ebicsHooks = []demo.HookData{{Events: `["transmission.*", "ack.*"]`, Script: "record.lua", Function: "on_event"}}

// TestEbicsProfiles runs the three shipped dialects through the real
// daemon, plugin process and simulator: onboarding, a file uploaded in at
// least 5 segments of which the bank rejects three transactions
// (partially_accepted, with exactly those EndToEndIds, reason codes and
// amounts in the event), a file accepted, a file rejected whole (FF01,
// every transaction counted) and a file the bank never acknowledges
// (unacknowledged at the deadline).
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
			tp.AckDeadline = "12s"
			// Acknowledgements are fetched by the test through the admin API
			// (the job the schedule runs), so that each report is applied in
			// a known order (PSR, then HAC, then PTK of one file): with the
			// schedule racing the bank's asynchronous validation, a HAC can
			// come first and the event then carries only its reasons.
			tp.FetchEvery = "@every 1h"
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
			p4, _, err := demo.GenerateFile(dir, msg+"-4", n, 104)
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
				{p4, sim.Faults{RejectFile: true}, transmissions.StateRejected},
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
				d := waitStateFetching(t, h, ids[i], 90*time.Second, pl.want)
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
					len(deliveriesFor(rec, "transmission:"+ids[2], "transmission.rejected")) == 1 &&
					len(deliveriesFor(rec, "transmission:"+ids[3], "transmission.unacknowledged")) == 1
			})
			// Each file: one submitted event, one final event, nothing twice.
			finals := []string{"transmission.partially_accepted", "transmission.accepted", "transmission.rejected", "transmission.unacknowledged"}
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
					// A HAC "final positive" fetched before the PSR of a partly
					// rejected file makes it accepted first, by design.
					earlyAccept := i == 0 && other == "transmission.accepted"
					if other != finals[i] && count[other] != 0 && !earlyAccept {
						t.Errorf("file %d: unexpected %s (events %v)", i+1, other, count)
					}
				}
			}
			if n := len(eventsOfType(t, h, "ack.unmatched")); n != 0 {
				t.Errorf("%d ack.unmatched events, want 0", n)
			}
			// File 3: the whole file rejected, every transaction with it.
			rj := deliveriesFor(rec, "transmission:"+ids[2], "transmission.rejected")[0].Data
			if c, _ := rj["rejected_count"].(float64); int(c) != n {
				t.Errorf("rejected file: rejected_count %v, want %d", rj["rejected_count"], n)
			}
			ff01 := false
			reasons, _ := rj["reasons"].([]any)
			for _, r := range reasons {
				m, _ := r.(map[string]any)
				ff01 = ff01 || m["code"] == "FF01"
			}
			if !ff01 {
				t.Errorf("rejected file: reasons %v, want a FF01", rj["reasons"])
			}
			d3 := describe(t, h, ids[3])
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
			t.Logf("%s: 4 files x %d transfers, %d segments each; %d EBICS requests; acks of file 1: %v", tc.profile, n, segmentsOf(d1), len(g.requests()), kinds)
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

// TestEbicsKill9DuringUpload kills the daemon and its plugin with SIGKILL
// while the bank holds one upload segment of a file of many segments, then
// restarts it: the retry loop resumes or restarts the upload, the bank ends
// with exactly one order holding the file byte for byte, and the
// transmission is submitted then accepted. Variants: the held segment (4,
// or the last) never reaches the bank, or reaches it after the client died
// (its answer lost); the bank drops the open transaction while the daemon
// is down (its timeout); EBICS 2.5 (client OrderIDs) and 3.0 (bank
// OrderIDs).
func TestEbicsKill9DuringUpload(t *testing.T) {
	const mid = 4
	for _, tc := range []struct {
		name    string
		profile string
		last    bool // hold the last segment instead of segment 4
		forward bool // the held segment reaches the bank after the kill
		expire  bool // the bank drops open transactions while the daemon is down
		forget  bool // the bank forgets even the completed transaction
	}{
		{"de/segment-lost", "de", false, false, false, false},
		{"de/segment-stored-answer-lost", "de", false, true, false, false},
		{"de/last-segment-stored-answer-lost", "de", true, true, false, false},
		{"de/bank-expired-transaction", "de", false, true, true, false},
		{"de/order-complete-bank-forgot-transaction", "de", true, true, true, true},
		{"v3/last-segment-stored-answer-lost", "v3", true, true, false, false},
		{"v3/bank-expired-transaction", "v3", false, true, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := newRecorder(t, 0)
			h := newHarness(t)
			s, g := startEbicsBank(t, h, tc.profile, 2048, sim.Config{})
			tp := h.Template()
			tp.RecorderURL = rec.srv.URL
			tp.Hooks = ebicsHooks
			tp.AckDeadline = "5m"
			// Acknowledgements are fetched through the admin API once the
			// upload is recorded: fetched while the resumed upload is still
			// queued they race it (TestEbicsIssueAckBeforeSubmission).
			tp.FetchEvery = "@every 1h"
			c := ctx(t)
			if err := h.Start(c); err != nil {
				t.Fatal(err)
			}
			if err := demo.Onboard(c, h, ebicsBank); err != nil {
				t.Fatal(err)
			}
			path, _, err := demo.GenerateFile(filepath.Join(h.Dir, "files"), "E2E-KILL-UP", 1000, 7)
			if err != nil {
				t.Fatal(err)
			}
			data, _ := readPain(t, path)
			g.setHold(func(r bankRequest) bool {
				if !r.Upload || r.Req.Phase != protocol.PhaseTransfer {
					return false
				}
				if tc.last {
					return r.Req.SegmentNumber == r.Segments
				}
				return r.Req.SegmentNumber == mid
			})
			done := submitAsync(h, path)
			held := g.waitHeld(t, 2*time.Minute, "the upload segment to hold")
			at := held.Req.SegmentNumber
			if held.Segments < mid+3 {
				t.Fatalf("file has %d segments; the kill would not be in the middle", held.Segments)
			}
			if n := len(s.Orders()); n != 0 {
				t.Fatalf("bank has %d orders before the kill", n)
			}
			if err := h.Kill9(true); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err == nil {
				t.Fatal("the API upload returned success although the daemon was killed mid-upload")
			}
			g.release <- tc.forward
			if tc.forward && tc.last {
				waitFor(t, 30*time.Second, "the bank to record the order from the held last segment", func() bool { return len(s.Orders()) == 1 })
			}
			if tc.expire {
				s.ExpireTransactions()
			}
			if tc.forget {
				g.forgetTransaction(held.Req.TransactionID)
			}
			if err := h.Start(c); err != nil {
				t.Fatal(err)
			}
			tr, ok := transmissionByFile(t, h, filepath.Base(path))
			if !ok {
				t.Fatal("transmission lost after the kill")
			}
			if d, err := demo.WaitState(c, h, tr.ID, 2*time.Minute, transmissions.StateSubmitted, transmissions.StateAccepted); err != nil {
				t.Fatalf("%v (%s)", err, describeErr(d))
			}
			d := waitStateFetching(t, h, tr.ID, 2*time.Minute, transmissions.StateAccepted)
			orders := s.Orders()
			if len(orders) != 1 {
				t.Fatalf("bank recorded %d orders, want exactly 1", len(orders))
			}
			if !bytes.Equal(orders[0].Data, data) {
				t.Fatalf("bank's document (%d bytes) differs from the file (%d bytes)", len(orders[0].Data), len(data))
			}
			if d.OrderID != orders[0].OrderID {
				t.Errorf("transmission order id %q, bank's %q", d.OrderID, orders[0].OrderID)
			}
			if d.UploadAttempts < 2 {
				t.Errorf("upload_attempts %d, want >= 2 (one before the kill, one after)", d.UploadAttempts)
			}
			inits := 0
			for _, r := range g.requests() {
				if r.Upload && r.Req.TransactionID == "" {
					inits++
				}
			}
			waitFor(t, time.Minute, "transmission.accepted at the hook", func() bool {
				return len(deliveriesFor(rec, "transmission:"+tr.ID, "transmission.accepted")) == 1
			})
			count := map[string]int{}
			for _, e := range subjectEvents(t, h, tr.ID) {
				count[e.Type]++
			}
			if count["transmission.submitted"] != 1 || count["transmission.accepted"] != 1 || len(count) != 2 {
				t.Errorf("events %v, want one transmission.submitted and one transmission.accepted", count)
			}
			if err := h.Stop(); err != nil {
				t.Fatalf("SIGTERM: %v", err)
			}
			var det struct {
				Resumed bool `json:"resumed"`
			}
			_ = json.Unmarshal(d.Details, &det)
			t.Logf("%d segments, killed at segment %d; %d upload initialisation(s), %d attempts, resumed %v",
				held.Segments, at, inits, d.UploadAttempts, det.Resumed)
		})
	}
}

// TestEbicsKill9DuringDownload kills the daemon and its plugin while they
// download a payment status report of many segments that rejects 200
// transactions: in the middle of the segments (nothing stored), or after
// the daemon stored it but before the receipt. The bank times the
// transaction out and delivers the report again; it is ingested exactly
// once (one acknowledgement, no duplicated entries, one event) and the
// transmission ends partially_accepted.
func TestEbicsKill9DuringDownload(t *testing.T) {
	for _, tc := range []struct {
		name    string
		profile string
		psrKind string // the order type of the report's download
		stored  bool
	}{
		{"de/mid-segments", "de", "Z01", false},
		{"de/stored-before-receipt", "de", "Z01", true},
		{"fr/stored-before-receipt", "fr", "FDL", true},
		{"v3/stored-before-receipt", "v3", "BTD:PSR", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := newRecorder(t, 0)
			h := newHarness(t)
			s, g := startEbicsBank(t, h, tc.profile, 64<<10, sim.Config{DownloadSegmentSize: 256})
			tp := h.Template()
			tp.RecorderURL = rec.srv.URL
			tp.Hooks = ebicsHooks
			tp.AckDeadline = "5m"
			c := ctx(t)
			if err := h.Start(c); err != nil {
				t.Fatal(err)
			}
			if err := demo.Onboard(c, h, ebicsBank); err != nil {
				t.Fatal(err)
			}
			const n, every = 600, 3
			path, e2e, err := demo.GenerateFile(filepath.Join(h.Dir, "files"), "E2E-KILL-DL", n, 9)
			if err != nil {
				t.Fatal(err)
			}
			var rejected []string
			for i := 0; i < n; i += every {
				rejected = append(rejected, e2e[i])
			}
			isPSR := func(r bankRequest) bool { return !r.Upload && r.Kind == tc.psrKind }
			if tc.stored {
				g.setHold(func(r bankRequest) bool { return isPSR(r) && r.Req.Phase == protocol.PhaseReceipt })
			} else {
				g.setHold(func(r bankRequest) bool {
					return isPSR(r) && r.Req.Phase == protocol.PhaseTransfer && r.Req.SegmentNumber == 2
				})
			}
			s.SetFaults(sim.Faults{RejectTxs: rejected})
			tr, err := demo.Upload(c, h, ebicsBank, path)
			if err != nil {
				t.Fatal(err)
			}
			s.WaitAcks()
			s.SetFaults(sim.Faults{})
			held := g.waitHeld(t, 2*time.Minute, "the payment status report download")
			if held.Segments < 3 {
				t.Fatalf("the report came in %d segments, want >= 3", held.Segments)
			}
			before := describe(t, h, tr.ID)
			if tc.stored != (before.State == transmissions.StatePartial) {
				t.Fatalf("at the kill the transmission is %s (stored variant: %v)", before.State, tc.stored)
			}
			if err := h.Kill9(true); err != nil {
				t.Fatal(err)
			}
			g.release <- false
			s.ExpireTransactions() // the bank's transaction timeout
			if psrDelivered(s) {
				t.Fatal("the bank counts the report as delivered without a receipt")
			}
			if err := h.Start(c); err != nil {
				t.Fatal(err)
			}
			// The fetch-acks schedule (every 2s) asks for the report again.
			waitFor(t, time.Minute, "the report delivered again by the schedule and confirmed", func() bool { return psrDelivered(s) })
			d, err := demo.WaitState(c, h, tr.ID, time.Minute, transmissions.StatePartial)
			if err != nil {
				t.Fatal(err)
			}
			// Exactly one stored acknowledgement of kind psr, entries not duplicated.
			psrAcks := map[string]bool{}
			entries := map[string]int{}
			txEntries := 0
			for _, a := range d.Acks {
				if a.Kind != "psr" {
					continue
				}
				psrAcks[a.AckID] = true
				entries[a.Level+"/"+a.Ref]++
				if a.Level == "tx" {
					txEntries++
				}
			}
			if len(psrAcks) != 1 {
				t.Errorf("%d psr acknowledgements stored for the transmission, want 1", len(psrAcks))
			}
			for k, v := range entries {
				if v != 1 {
					t.Errorf("ack entry %s stored %d times", k, v)
				}
			}
			if txEntries != len(rejected) {
				t.Errorf("%d transaction entries from the report, want %d", txEntries, len(rejected))
			}
			rj := 0
			for _, x := range d.Rejected {
				if x.Status == "RJCT" {
					rj++
				}
			}
			if rj != len(rejected) {
				t.Errorf("%d transactions rejected, want %d", rj, len(rejected))
			}
			waitFor(t, time.Minute, "transmission.partially_accepted at the hook", func() bool {
				return len(deliveriesFor(rec, "transmission:"+tr.ID, "transmission.partially_accepted")) == 1
			})
			count := map[string]int{}
			for _, e := range subjectEvents(t, h, tr.ID) {
				count[e.Type]++
			}
			for typ, k := range count {
				if k != 1 {
					t.Errorf("%d %s events, want at most 1", k, typ)
				}
			}
			if count["transmission.partially_accepted"] != 1 {
				t.Errorf("events %v, want one transmission.partially_accepted", count)
			}
			if k := len(eventsOfType(t, h, "ack.unmatched")); k != 0 {
				t.Errorf("%d ack.unmatched events", k)
			}
			psrInits := 0
			for _, r := range g.requests() {
				if isPSR(r) && r.Req.TransactionID == "" {
					psrInits++
				}
			}
			if psrInits < 2 {
				t.Errorf("the report was downloaded %d times, want >= 2 (again after the kill)", psrInits)
			}
			if err := h.Stop(); err != nil {
				t.Fatalf("SIGTERM: %v", err)
			}
			t.Logf("report of %d segments, %d rejected; %d PSR downloads; events %v", held.Segments, len(rejected), psrInits, count)
		})
	}
}

// psrDelivered tells whether the bank got a positive receipt for a PSR.
func psrDelivered(s *sim.Sim) bool {
	for _, d := range s.Docs() {
		if d.Kind == "PSR" && d.Delivered {
			return true
		}
	}
	return false
}

// TestEbicsOutboxFolder drops a file into the bank's outbox folder, then
// the same file again under another name, and a hostile file: one order at
// the bank; the first moved to sent/ with the OrderID prefix, the second
// recognised as the same transmission (same prefix, no second order); the
// hostile one moved to failed/ with its reason, never sent.
func TestEbicsOutboxFolder(t *testing.T) {
	t.Parallel()
	_, h, s, _, c := startOnboardedRecorded(t, "5m", "")
	outbox := filepath.Join(h.Dir, "outbox", ebicsBank)
	if err := os.MkdirAll(outbox, 0o750); err != nil {
		t.Fatal(err)
	}
	src, _, err := demo.GenerateFile(filepath.Join(h.Dir, "files"), "E2E-OUTBOX", 500, 21)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := readPain(t, src)
	// drop writes a file as a well-behaved producer does: hidden name, then rename.
	drop := func(name string, b []byte) {
		tmp := filepath.Join(outbox, "."+name+".part")
		if err := os.WriteFile(tmp, b, 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(outbox, name)); err != nil {
			t.Fatal(err)
		}
	}
	sentAs := func(name string) (string, bool) {
		m, _ := filepath.Glob(filepath.Join(outbox, "sent", "*_"+name))
		if len(m) != 1 {
			return "", false
		}
		return strings.TrimSuffix(filepath.Base(m[0]), "_"+name), true
	}

	drop("pay-A.xml", data)
	waitFor(t, time.Minute, "pay-A.xml moved to sent/", func() bool { _, ok := sentAs("pay-A.xml"); return ok })
	prefixA, _ := sentAs("pay-A.xml")
	trA, ok := transmissionByFile(t, h, "pay-A.xml")
	if !ok {
		t.Fatal("no transmission for pay-A.xml")
	}
	if prefixA != trA.OrderID || trA.OrderID == "" {
		t.Fatalf("pay-A.xml sent as %s_pay-A.xml, transmission order id %q", prefixA, trA.OrderID)
	}

	drop("pay-B.xml", data)
	hostile := []byte(`<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>` +
		`<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"><CstmrCdtTrfInitn><GrpHdr><MsgId>&x;</MsgId></GrpHdr></CstmrCdtTrfInitn></Document>`)
	drop("evil.xml", hostile)
	waitFor(t, time.Minute, "pay-B.xml moved to sent/ and evil.xml to failed/", func() bool {
		_, ok := sentAs("pay-B.xml")
		_, err := os.Stat(filepath.Join(outbox, "failed", "evil.xml.reason.txt"))
		return ok && err == nil
	})
	if prefixB, _ := sentAs("pay-B.xml"); prefixB != prefixA {
		t.Errorf("pay-B.xml sent as %s_pay-B.xml, want the first file's order %s", prefixB, prefixA)
	}
	for _, name := range []string{"pay-A.xml", "pay-B.xml"} {
		b, err := os.ReadFile(filepath.Join(outbox, "sent", prefixA+"_"+name))
		if err != nil || !bytes.Equal(b, data) {
			t.Errorf("sent/%s_%s: %v (content equal: %v)", prefixA, name, err, bytes.Equal(b, data))
		}
	}
	reason, _ := os.ReadFile(filepath.Join(outbox, "failed", "evil.xml.reason.txt"))
	if len(bytes.TrimSpace(reason)) == 0 {
		t.Error("failed/evil.xml.reason.txt is empty")
	}
	if b, err := os.ReadFile(filepath.Join(outbox, "failed", "evil.xml")); err != nil || !bytes.Equal(b, hostile) {
		t.Errorf("failed/evil.xml: %v", err)
	}
	left, _ := filepath.Glob(filepath.Join(outbox, "*.xml"))
	if len(left) != 0 {
		t.Errorf("files left in the outbox: %v", left)
	}
	orders := s.Orders()
	if len(orders) != 1 || !bytes.Equal(orders[0].Data, data) || orders[0].OrderID != prefixA {
		t.Fatalf("bank has %d orders, want exactly one with the file as order %s", len(orders), prefixA)
	}
	var ts []transmissions.Transmission
	if _, err := h.Client().Do(c, "GET", "/v1/transmissions?limit=1000", nil, &ts); err != nil {
		t.Fatal(err)
	}
	if len(ts) != 1 {
		t.Errorf("%d transmissions recorded, want 1", len(ts))
	}
	if n := len(eventsOfType(t, h, "transmission.submitted")); n != 1 {
		t.Errorf("%d transmission.submitted events, want 1", n)
	}
	waitStateFetching(t, h, trA.ID, time.Minute, transmissions.StateAccepted)
	if err := h.Stop(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	t.Logf("order %s; evil.xml refused: %s", prefixA, bytes.TrimSpace(reason))
}

// TestEbicsOutboxKill9 drops a file into the outbox folder and kills the
// daemon and its plugin with SIGKILL while the bank holds upload segment 2;
// after the restart the scan finds the file again, maps it to the same
// transmission, finishes the upload and moves it to sent/: one order.
func TestEbicsOutboxKill9(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	s, g := startEbicsBank(t, h, "de", 2048, sim.Config{})
	h.Template().AckDeadline = "5m"
	c := ctx(t)
	if err := h.Start(c); err != nil {
		t.Fatal(err)
	}
	if err := demo.Onboard(c, h, ebicsBank); err != nil {
		t.Fatal(err)
	}
	outbox := filepath.Join(h.Dir, "outbox", ebicsBank)
	if err := os.MkdirAll(outbox, 0o750); err != nil {
		t.Fatal(err)
	}
	src, _, err := demo.GenerateFile(filepath.Join(h.Dir, "files"), "E2E-OUTBOX-KILL", 500, 22)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := readPain(t, src)
	g.setHold(func(r bankRequest) bool {
		return r.Upload && r.Req.Phase == protocol.PhaseTransfer && r.Req.SegmentNumber == 2
	})
	if err := os.WriteFile(filepath.Join(outbox, "pay.xml"), data, 0o640); err != nil {
		t.Fatal(err)
	}
	held := g.waitHeld(t, time.Minute, "upload segment 2 of the outbox file")
	if err := h.Kill9(true); err != nil {
		t.Fatal(err)
	}
	g.release <- true // the segment reaches the bank; the answer is lost
	if _, err := os.Stat(filepath.Join(outbox, "pay.xml")); err != nil {
		t.Fatalf("the file left the outbox before its upload finished: %v", err)
	}
	if err := h.Start(c); err != nil {
		t.Fatal(err)
	}
	var prefix string
	waitFor(t, time.Minute, "pay.xml moved to sent/ after the restart", func() bool {
		m, _ := filepath.Glob(filepath.Join(outbox, "sent", "*_pay.xml"))
		if len(m) == 1 {
			prefix = strings.TrimSuffix(filepath.Base(m[0]), "_pay.xml")
		}
		return len(m) == 1
	})
	orders := s.Orders()
	if len(orders) != 1 || !bytes.Equal(orders[0].Data, data) || orders[0].OrderID != prefix {
		t.Fatalf("bank has %d orders, want exactly one with the file as order %s", len(orders), prefix)
	}
	var ts []transmissions.Transmission
	if _, err := h.Client().Do(c, "GET", "/v1/transmissions?limit=1000", nil, &ts); err != nil {
		t.Fatal(err)
	}
	if len(ts) != 1 || ts[0].UploadAttempts < 2 {
		t.Fatalf("transmissions %d (want 1), attempts %d (want >= 2)", len(ts), ts[0].UploadAttempts)
	}
	if err := h.Stop(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	t.Logf("%d segments, killed at 2; order %s after %d attempts", held.Segments, prefix, ts[0].UploadAttempts)
}

// BenchmarkEbicsUpload measures an upload through the admin API (wait=true)
// end to end: daemon, plugin process (hash, pain reader, deflate, E002,
// segments, X002 on every request) and the simulator (which decrypts and
// checks the ES), for a pain.001 of 8,000 transfers in 512 KiB segments (more than
// ~11,500 fail today: TestEbicsIssueUploadManyTransfers).
// Needs ACQUIT_BIN_DIR (built binaries).
func BenchmarkEbicsUpload(b *testing.B) {
	bin := os.Getenv("ACQUIT_BIN_DIR")
	if bin == "" {
		b.Skip("set ACQUIT_BIN_DIR to the built binaries (make build)")
	}
	h, err := demo.NewHarness(filepath.Join(b.TempDir(), "state"), bin, "testdata/scripts")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = h.Stop() })
	s, _ := startEbicsBank(b, h, "de", 512<<10, sim.Config{})
	h.Template().FetchEvery = "@every 1h"
	c := context.Background()
	if err := h.Start(c); err != nil {
		b.Fatal(err)
	}
	if err := demo.Onboard(c, h, ebicsBank); err != nil {
		b.Fatal(err)
	}
	var paths []string
	for i := 0; i < b.N; i++ {
		p, _, err := demo.GenerateFile(filepath.Join(h.Dir, "files"), fmt.Sprintf("E2E-BENCH-%d", i), 8000, uint64(i))
		if err != nil {
			b.Fatal(err)
		}
		paths = append(paths, p)
	}
	fi, _ := os.Stat(paths[0])
	b.SetBytes(fi.Size())
	b.ResetTimer()
	for _, p := range paths {
		tr, err := demo.Upload(c, h, ebicsBank, p)
		if err != nil || tr.State != transmissions.StateSubmitted {
			b.Fatalf("upload: %v", err)
		}
	}
	b.StopTimer()
	if n := len(s.Orders()); n != b.N {
		b.Fatalf("%d orders for %d uploads", n, b.N)
	}
}

// TestEbicsLateAcknowledgement: the bank acknowledges after the deadline.
// The transmission is first unacknowledged (the alarm), then the late
// report settles it: accepted for one file, partially_accepted for
// another, each final event once.
func TestEbicsLateAcknowledgement(t *testing.T) {
	t.Parallel()
	rec, h, s, _, c := startOnboardedRecorded(t, "3s", "")
	dir := filepath.Join(h.Dir, "files")
	p1, _, err := demo.GenerateFile(dir, "E2E-LATE-1", 40, 41)
	if err != nil {
		t.Fatal(err)
	}
	p2, e2e2, err := demo.GenerateFile(dir, "E2E-LATE-2", 40, 42)
	if err != nil {
		t.Fatal(err)
	}
	type plan struct {
		path   string
		faults sim.Faults
		final  string
	}
	plans := []plan{
		{p1, sim.Faults{AckDelay: 8 * time.Second}, "transmission.accepted"},
		{p2, sim.Faults{AckDelay: 8 * time.Second, RejectTxs: []string{e2e2[3]}}, "transmission.partially_accepted"},
	}
	var ids []string
	for _, pl := range plans {
		s.SetFaults(pl.faults)
		tr, err := demo.Upload(c, h, ebicsBank, pl.path)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, tr.ID)
	}
	s.SetFaults(sim.Faults{})
	for i, id := range ids {
		if _, err := demo.WaitState(c, h, id, 30*time.Second, transmissions.StateUnacknowledged); err != nil {
			t.Fatalf("file %d: %v", i+1, err)
		}
	}
	for i, id := range ids {
		want := transmissions.StateAccepted
		if i == 1 {
			want = transmissions.StatePartial
		}
		if _, err := demo.WaitState(c, h, id, time.Minute, want); err != nil {
			t.Fatalf("file %d after the late report: %v", i+1, err)
		}
	}
	for i, id := range ids {
		final := plans[i].final
		waitFor(t, time.Minute, final+" at the hook", func() bool {
			return len(deliveriesFor(rec, "transmission:"+id, final)) == 1
		})
		count := map[string]int{}
		var order []string
		for _, e := range subjectEvents(t, h, id) {
			count[e.Type]++
			order = append(order, e.Type)
		}
		want := []string{"transmission.submitted", "transmission.unacknowledged", final}
		if i == 1 && len(order) == 4 && order[2] == "transmission.accepted" {
			// HAC "final positive" fetched before the PSR: accepted, then partial.
			order = append(order[:2], order[3])
		}
		if fmt.Sprint(order) != fmt.Sprint(want) {
			t.Errorf("file %d: events %v, want %v", i+1, order, want)
		}
		dt := describe(t, h, id)
		settled := false
		for _, hr := range dt.History {
			settled = settled || hr.From == string(transmissions.StateUnacknowledged) && transmissions.State(hr.To).Final()
		}
		if !settled {
			t.Errorf("file %d: no transition from unacknowledged to a final state in %+v", i+1, dt.History)
		}
	}
	if err := h.Stop(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
}

// TestEbicsOutboxSlowWriter: a producer writes a file straight into the
// outbox folder, slowly (a chunk every 400 ms for 6 s, longer than two
// scans): the daemon leaves it alone while it changes (settle time) and
// sends it once complete; nothing lands in failed/.
func TestEbicsOutboxSlowWriter(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	s, _ := startEbicsBank(t, h, "de", 64<<10, sim.Config{})
	h.Template().AckDeadline = "5m"
	c := ctx(t)
	if err := h.Start(c); err != nil {
		t.Fatal(err)
	}
	if err := demo.Onboard(c, h, ebicsBank); err != nil {
		t.Fatal(err)
	}
	outbox := filepath.Join(h.Dir, "outbox", ebicsBank)
	if err := os.MkdirAll(outbox, 0o750); err != nil {
		t.Fatal(err)
	}
	src, _, err := demo.GenerateFile(filepath.Join(h.Dir, "files"), "E2E-SLOW", 200, 23)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := readPain(t, src)
	f, err := os.Create(filepath.Join(outbox, "slow.xml"))
	if err != nil {
		t.Fatal(err)
	}
	const chunks = 15
	step := (len(data) + chunks - 1) / chunks
	for off := 0; off < len(data); off += step {
		if _, err := f.Write(data[off:min(off+step, len(data))]); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(outbox, "slow.xml")); err != nil {
			t.Fatalf("the file left the outbox while being written (at %d of %d bytes)", off, len(data))
		}
		time.Sleep(400 * time.Millisecond)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "slow.xml moved to sent/", func() bool {
		m, _ := filepath.Glob(filepath.Join(outbox, "sent", "*_slow.xml"))
		return len(m) == 1
	})
	if m, _ := filepath.Glob(filepath.Join(outbox, "failed", "*")); len(m) != 0 {
		t.Errorf("failed/ holds %v", m)
	}
	if o := s.Orders(); len(o) != 1 || !bytes.Equal(o[0].Data, data) {
		t.Fatalf("bank has %d orders, want one holding the whole file", len(o))
	}
	if err := h.Stop(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
}

// TestEbicsUnsentWhenBankDown: a file submitted while the bank is
// unreachable stays queued (every upload fails) and, its ack_deadline after
// submission, the real daemon raises transmission.unsent once to the hook,
// with the upload attempts and the last error; the transmission is still
// queued for the next attempt.
func TestEbicsUnsentWhenBankDown(t *testing.T) {
	t.Parallel()
	rec, h, _, gate, c := startOnboardedRecorded(t, "3s", "")
	gate.srv.CloseClientConnections()
	gate.srv.Close() // the bank is gone: connections refused
	p, _, err := demo.GenerateFile(filepath.Join(h.Dir, "files"), "E2E-UNSENT-1", 20, 51)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := demo.Upload(c, h, ebicsBank, p)
	if err == nil || tr == nil || tr.ID == "" {
		t.Fatalf("upload to a bank that is down: %+v, %v", tr, err)
	}
	var got delivery
	waitFor(t, time.Minute, "transmission.unsent at the hook", func() bool {
		for _, d := range rec.all() {
			if d.Type == "transmission.unsent" {
				got = d
				return true
			}
		}
		return false
	})
	if got.Subject != "transmission:"+tr.ID {
		t.Fatalf("transmission.unsent for %s, want %s", got.Subject, tr.ID)
	}
	if n, _ := got.Data["upload_attempts"].(float64); n < 1 {
		t.Fatalf("upload_attempts %v", got.Data["upload_attempts"])
	}
	if e, _ := got.Data["last_error"].(string); !strings.Contains(e, "connect") {
		t.Fatalf("last_error %q, want the connection failure", e)
	}
	// Once only, while the daemon keeps trying (its loop runs every 3 s).
	time.Sleep(7 * time.Second)
	n := 0
	for _, d := range rec.all() {
		if d.Type == "transmission.unsent" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d transmission.unsent deliveries, want 1", n)
	}
	cur, err := demo.WaitState(c, h, tr.ID, time.Second, transmissions.StateQueued)
	if err != nil || cur.UploadAttempts < 2 {
		t.Fatalf("after the alarm: %+v, %v; want queued and still tried", cur, err)
	}
}
