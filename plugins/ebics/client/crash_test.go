package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/acquit/acquit/plugins/ebics/client"
	"github.com/acquit/acquit/plugins/ebics/protocol"
	"github.com/acquit/acquit/plugins/ebics/sim"
)

// A crash (the process stops right after persisting segment 3) then a
// restart with the same state: the upload resumes, one order at the bank.
func TestUploadCrashResume(t *testing.T) {
	for _, v := range []protocol.Version{protocol.H004, protocol.H005} {
		for _, expire := range []bool{false, true} {
			name := string(v)
			if expire {
				name += "/bank-expired-transaction"
			}
			t.Run(name, func(t *testing.T) {
				e := newEnv(t, v, "", sim.Config{}, true)
				path := writePain(t, e.tmp, "MSG-CRASH", 300)
				crashAfterSegment3(t, e, path, "C1")
				if expire {
					e.sim.ExpireTransactions()
				}
				cl := e.newClient(t) // restarted daemon: same durable state
				res, err := cl.Upload(context.Background(), client.UploadSpec{ID: "C1", Function: "sct", Path: path})
				if err != nil {
					t.Fatal(err)
				}
				orig, _ := os.ReadFile(path)
				o := e.sim.Orders()
				if !res.Resumed || len(o) != 1 || !bytes.Equal(o[0].Data, orig) || o[0].OrderID != res.OrderID {
					t.Fatalf("resumed=%v orders=%d", res.Resumed, len(o))
				}
			})
		}
	}
}

// Faults during one upload: internal error, recovery sync, dropped
// connection before and after a segment is stored, lost final answer.
func TestUploadFaults(t *testing.T) {
	for _, v := range []protocol.Version{protocol.H004, protocol.H005} {
		t.Run(string(v), func(t *testing.T) {
			e := newEnv(t, v, "", sim.Config{Faults: sim.Faults{InternalErrorOnInit: true, InternalErrorAtSegment: 2, DropAtSegment: 3,
				RecoverySyncAtSegment: 4, DropAfterSegment: 5}}, true)
			path := writePain(t, e.tmp, "MSG-FAULTS", 300)
			res, err := e.cl.Upload(context.Background(), client.UploadSpec{ID: "F1", Function: "sct", Path: path})
			if err != nil {
				t.Fatal(err)
			}
			if o := e.sim.Orders(); len(o) != 1 || o[0].OrderID != res.OrderID {
				t.Fatalf("%d orders", len(o))
			}
		})
	}
}

// The final answer is lost and the client gives up; after restart it sends
// the last segment again and gets the bank's answer: still one order.
func TestLostFinalAnswer(t *testing.T) {
	e := newEnv(t, protocol.H004, "", sim.Config{}, true)
	path := writePain(t, e.tmp, "MSG-LOST", 300)
	loseFinalAnswer(t, e, path, "L1")
	res, err := e.newClient(t).Upload(context.Background(), client.UploadSpec{ID: "L1", Function: "sct", Path: path})
	if err != nil || !res.Resumed {
		t.Fatalf("%+v %v", res, err)
	}
	if o := e.sim.Orders(); len(o) != 1 || o[0].OrderID != res.OrderID {
		t.Fatalf("%d orders", len(o))
	}
}

// The final answer is lost and the bank forgets finished transactions:
// after restart the client starts again with the same OrderID (2.5), the
// bank answers 091115, and the upload ends with that code, not a second order.
func TestLostFinalAnswerBankForgets(t *testing.T) {
	e := newEnv(t, protocol.H004, "", sim.Config{}, true)
	path := writePain(t, e.tmp, "MSG-FORGET", 300)
	loseFinalAnswer(t, e, path, "F1")
	e.sim.ForgetTransactions()
	res, err := e.newClient(t).Upload(context.Background(), client.UploadSpec{ID: "F1", Function: "sct", Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if res.ReturnCode != protocol.CodeOrderIDExists || len(e.sim.Orders()) != 1 || e.sim.Orders()[0].OrderID != res.OrderID {
		t.Fatalf("%+v, %d orders", res, len(e.sim.Orders()))
	}
}

// Acknowledgement faults: rejected file, rejected transactions, never ack.
func TestAckFaults(t *testing.T) {
	e := newEnv(t, protocol.H004, "", sim.Config{}, true)
	ctx := context.Background()
	path := writePain(t, e.tmp, "MSG-ACK1", 20)
	e.sim.SetFaults(sim.Faults{RejectFile: true})
	if _, err := e.cl.Upload(ctx, client.UploadSpec{ID: "A1", Function: "sct", Path: path}); err != nil {
		t.Fatal(err)
	}
	e.sim.WaitAcks()
	d, err := e.cl.Download(ctx, "psr", time.Time{}, time.Time{})
	if err != nil || d == nil || !bytes.Contains(d.Content, []byte("<GrpSts>RJCT</GrpSts>")) {
		t.Fatalf("%v %v", d, err)
	}
	e.cl.Receipt(ctx, d.TransactionID, true)
	h, err := e.cl.Download(ctx, "hac", time.Time{}, time.Time{})
	if err != nil || h == nil || !bytes.Contains(h.Content, []byte("ORDER_HAC_FINAL_NEG")) {
		t.Fatalf("%v %v", h, err)
	}
	e.cl.Receipt(ctx, h.TransactionID, true)
	// Accepted once, then the same MsgId again: duplicate.
	e.sim.SetFaults(sim.Faults{})
	for _, id := range []string{"A2", "A2-again"} {
		if _, err := e.cl.Upload(ctx, client.UploadSpec{ID: id, Function: "sct", Path: path}); err != nil {
			t.Fatal(err)
		}
		e.sim.WaitAcks()
		if id == "A2" {
			d, err := e.cl.Download(ctx, "psr", time.Time{}, time.Time{})
			if err != nil || d == nil || !bytes.Contains(d.Content, []byte("<GrpSts>ACCP</GrpSts>")) {
				t.Fatalf("accepted: %v %v", d, err)
			}
			e.cl.Receipt(ctx, d.TransactionID, true)
		}
	}
	d, err = e.cl.Download(ctx, "psr", time.Time{}, time.Time{})
	if err != nil || d == nil || !bytes.Contains(d.Content, []byte("DU01")) {
		t.Fatalf("duplicate: %v %v", d, err)
	}
	e.cl.Receipt(ctx, d.TransactionID, true)
	// Chosen transactions rejected.
	path2 := writePain(t, e.tmp, "MSG-ACK3", 20)
	e.sim.SetFaults(sim.Faults{RejectTxs: []string{firstE2E(t, e, path2)}})
	if _, err := e.cl.Upload(ctx, client.UploadSpec{ID: "A3", Function: "sct", Path: path2}); err != nil {
		t.Fatal(err)
	}
	e.sim.WaitAcks()
	d, err = e.cl.Download(ctx, "psr", time.Time{}, time.Time{})
	if err != nil || d == nil || !bytes.Contains(d.Content, []byte("<GrpSts>PART</GrpSts>")) || !bytes.Contains(d.Content, []byte("AC04")) {
		t.Fatalf("tx reject: %v %s", err, d.Content)
	}
	e.cl.Receipt(ctx, d.TransactionID, true)
	// Never acknowledged.
	path3 := writePain(t, e.tmp, "MSG-ACK4", 5)
	e.sim.SetFaults(sim.Faults{NeverAck: true})
	if _, err := e.cl.Upload(ctx, client.UploadSpec{ID: "A4", Function: "sct", Path: path3}); err != nil {
		t.Fatal(err)
	}
	e.sim.WaitAcks()
	if d, err := e.cl.Download(ctx, "psr", time.Time{}, time.Time{}); err != nil || d != nil {
		t.Fatalf("never-ack produced %v %v", d, err)
	}
}

func firstE2E(t *testing.T, e *env, path string) string {
	b, _ := os.ReadFile(path)
	i := bytes.Index(b, []byte("<EndToEndId>"))
	j := bytes.Index(b, []byte("</EndToEndId>"))
	if i < 0 || j < i {
		t.Fatal("no EndToEndId")
	}
	return string(b[i+len("<EndToEndId>") : j])
}

// Late acknowledgement: nothing to download right after the upload, the
// documents appear once the bank has processed the file.
func TestAckLate(t *testing.T) {
	e := newEnv(t, protocol.H005, "", sim.Config{Faults: sim.Faults{AckDelay: 3 * time.Second}}, true)
	ctx := context.Background()
	path := writePain(t, e.tmp, "MSG-LATE", 10)
	if _, err := e.cl.Upload(ctx, client.UploadSpec{ID: "LATE", Function: "sct", Path: path}); err != nil {
		t.Fatal(err)
	}
	if d, err := e.cl.Download(ctx, "psr", time.Time{}, time.Time{}); err != nil || d != nil {
		t.Fatalf("before the acknowledgement: %v %v", d, err)
	}
	e.sim.WaitAcks()
	if d, err := e.cl.Download(ctx, "psr", time.Time{}, time.Time{}); err != nil || d == nil {
		t.Fatalf("after the acknowledgement: %v %v", d, err)
	}
}

// The bank stored the last segment but its answer was lost, and the spool
// vanished before the restart (a work_dir emptied at boot). With the
// client's OrderID (2.5) the restart reuses it and the bank's 091115 ends
// the upload; with an OrderID the bank assigns (3.0) nothing is sent again
// and the upload ends with spool_lost. Either way, one order at the bank.
func TestSpoolVanishedAfterLastSegment(t *testing.T) {
	for _, tc := range []struct {
		v    protocol.Version
		code string
	}{
		{protocol.H004, protocol.CodeOrderIDExists},
		{protocol.H005, client.ReturnSpoolLost},
	} {
		t.Run(string(tc.v), func(t *testing.T) {
			e := newEnv(t, tc.v, "", sim.Config{}, true)
			path := writePain(t, e.tmp, "MSG-VANISH", 300)
			loseFinalAnswer(t, e, path, "V1")
			removeSpool(t, e)
			e.sim.SetFaults(sim.Faults{})
			res, err := e.newClient(t).Upload(context.Background(), client.UploadSpec{ID: "V1", Function: "sct", Path: path})
			if err != nil {
				t.Fatal(err)
			}
			o := e.sim.Orders()
			if len(o) != 1 || res.ReturnCode != tc.code {
				t.Fatalf("after the spool vanished: return code %q (want %q), %d orders at the bank", res.ReturnCode, tc.code, len(o))
			}
			if tc.v == protocol.H004 && res.OrderID != o[0].OrderID {
				t.Fatalf("order %s at the bank, upload reports %s", o[0].OrderID, res.OrderID)
			}
			// Asked again, the same answer: the upload is done.
			again, err := e.newClient(t).Upload(context.Background(), client.UploadSpec{ID: "V1", Function: "sct", Path: path})
			if err != nil || again.ReturnCode != tc.code || len(e.sim.Orders()) != 1 {
				t.Fatalf("asked again: %+v, %v, %d orders", again, err, len(e.sim.Orders()))
			}
		})
	}
}

// The upload stopped after segment 3 (a crash) and its spool vanished
// before the restart: the bank cannot have the order (the last segment
// never went out), so the file is spooled again and sent in a new
// transaction; one order at the bank, the file's bytes.
func TestSpoolVanishedMidTransaction(t *testing.T) {
	for _, v := range []protocol.Version{protocol.H004, protocol.H005} {
		t.Run(string(v), func(t *testing.T) {
			e := newEnv(t, v, "", sim.Config{}, true)
			path := writePain(t, e.tmp, "MSG-VANISH-MID", 300)
			crashAfterSegment3(t, e, path, "M1")
			removeSpool(t, e)
			var st struct {
				OrderID string `json:"order_id"`
			}
			if b, _, err := e.host.StateGet(context.Background(), "ebics/"+e.bank.Name+"/upload/M1"); err != nil || json.Unmarshal(b, &st) != nil || st.OrderID == "" {
				t.Fatalf("the interrupted upload's state: %s, %v", b, err)
			}
			res, err := e.newClient(t).Upload(context.Background(), client.UploadSpec{ID: "M1", Function: "sct", Path: path})
			if err != nil {
				t.Fatal(err)
			}
			orig, _ := os.ReadFile(path)
			o := e.sim.Orders()
			if res.ReturnCode != protocol.CodeOK || len(o) != 1 || !bytes.Equal(o[0].Data, orig) || o[0].OrderID != res.OrderID {
				t.Fatalf("return code %q, %d orders at the bank", res.ReturnCode, len(o))
			}
			// Not the OrderID of the transaction left open: a bank that
			// holds it until that transaction expires would refuse it.
			if res.OrderID == st.OrderID {
				t.Fatalf("the new transaction reused OrderID %s of the abandoned one", st.OrderID)
			}
		})
	}
}

// crashAfterSegment3 uploads path under id and stops it (as a kill -9
// would) once segment 3 is persisted; the bank has no order yet.
func crashAfterSegment3(t *testing.T, e *env, path, id string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := e.cl.Upload(ctx, client.UploadSpec{ID: id, Function: "sct", Path: path, Progress: func(sent, total int64) {
		if sent >= 3000 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want the crash, got %v", err)
	}
	if len(e.sim.Orders()) != 0 {
		t.Fatal("order before the upload finished")
	}
}

// loseFinalAnswer uploads path under id with a client that does not retry,
// the bank dropping the connection once it stored the last segment: the
// bank has the order, the client never heard so. The segment count comes
// from uploading the same file to a second bank first.
func loseFinalAnswer(t *testing.T, e *env, path, id string) {
	t.Helper()
	probe := newEnv(t, e.v, "", sim.Config{}, true)
	pr, err := probe.cl.Upload(context.Background(), client.UploadSpec{ID: "P", Function: "sct", Path: path})
	if err != nil {
		t.Fatal(err)
	}
	e.sim.SetFaults(sim.Faults{DropAfterSegment: pr.Segments})
	cl, _ := client.New(e.bank, e.keys, e.host, client.Options{WorkDir: e.tmp, Retries: -1})
	if _, err := cl.Upload(context.Background(), client.UploadSpec{ID: id, Function: "sct", Path: path}); err == nil {
		t.Fatal("want a transport error")
	}
	if len(e.sim.Orders()) != 1 {
		t.Fatal("bank should have the order already")
	}
}

// removeSpool deletes the one upload spool in the client's work_dir, as a
// work_dir emptied at boot would.
func removeSpool(t *testing.T, e *env) {
	t.Helper()
	spools, _ := filepath.Glob(filepath.Join(e.tmp, "*.b64"))
	if len(spools) != 1 {
		t.Fatalf("spool files %v, want one", spools)
	}
	if err := os.Remove(spools[0]); err != nil {
		t.Fatal(err)
	}
}
