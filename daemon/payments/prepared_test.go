package payments

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/sdk"
)

// TestPreparedDecisionStale: on SQLite an automatic response's decision is
// read and encoded off the writer (prepare) and written only if the
// payment is still as read. A payment changed in between, by a decision or
// by a change that does not move its version (a reconciliation's check
// count and next check), must not be decided from the stale read: the
// general path decides (or records a duplicate) from the current row.
func TestPreparedDecisionStale(t *testing.T) {
	e := newEnvOn(t, "sqlite", nil)
	ctx := context.Background()
	verified := func() *sdk.PaymentResult {
		t.Helper()
		st := e.start(t, 1000)
		e.pay(t, st)
		form := e.sim.decide(t, st.Reference, "00")
		pr, err := e.gw.VerifyNotification(ctx, sdk.Notification{Channel: sdk.ChannelAutomatic, Body: []byte(form.Encode())})
		if err != nil {
			t.Fatal(err)
		}
		return pr
	}
	apply := func(pr *sdk.PaymentResult, pre *prepared) *applied {
		t.Helper()
		rawID, err := e.st.RecordRaw(ctx, store.RawInput{Source: "sim", Channel: "automatic", Body: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		var out *applied
		if err := e.st.InTx(ctx, func(tx store.Tx) error {
			var err error
			out, err = e.svc.applyTx(ctx, tx, "sim", sdk.ChannelAutomatic, rawID, pr, "", encodeResult(pr), pre, e.clock.Now().UTC())
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	prepare := func(pr *sdk.PaymentResult) *prepared {
		t.Helper()
		pre := e.svc.prepare(ctx, "sim", sdk.ChannelAutomatic, 1, pr, encodeResult(pr), e.clock.Now().UTC())
		if pre == nil {
			t.Fatal("no prepared decision for a pending payment")
		}
		return pre
	}

	t.Run("decided in between", func(t *testing.T) {
		pr := verified()
		pre := prepare(pr)
		if out := apply(pr, nil); out.verdict != VerdictDecided {
			t.Fatalf("first response: %s", out.verdict)
		}
		out := apply(pr, pre)
		if out.verdict != VerdictDuplicate {
			t.Fatalf("stale prepared decision: verdict %s, want duplicate", out.verdict)
		}
		if n := e.events(t, "payment.%", out.payment.Reference); n != 1 {
			t.Fatalf("%d events, want 1", n)
		}
	})

	t.Run("check count moved", func(t *testing.T) {
		pr := verified()
		pre := prepare(pr)
		// What a reconciliation's "ask again later" does: the version
		// stays, the check count and the next check move.
		if _, err := e.db.Exec(`UPDATE payments SET check_count = check_count + 1, next_check_at = next_check_at + 1000
			WHERE reference = ?`, pre.before.Reference); err != nil {
			t.Fatal(err)
		}
		out := apply(pr, pre)
		if out.verdict != VerdictDecided {
			t.Fatalf("verdict %s, want decided", out.verdict)
		}
		var payload string
		if err := e.db.QueryRow(`SELECT payload FROM events WHERE subject = ?`, "payment:"+pre.before.Reference).Scan(&payload); err != nil {
			t.Fatal(err)
		}
		var pl EventPayload
		if err := json.Unmarshal([]byte(payload), &pl); err != nil {
			t.Fatal(err)
		}
		if pl.Payment.CheckCount != 1 || !pl.Payment.NextCheckAt.Equal(pre.before.NextCheckAt.Add(1e9)) {
			t.Fatalf("event payload from the stale read: check_count %d, next_check_at %s (read %s)",
				pl.Payment.CheckCount, pl.Payment.NextCheckAt, pre.before.NextCheckAt)
		}
	})
}

// TestPreparedEventSameAsGeneral: the event of a decision prepared off the
// writer is byte for byte the one the general path encodes (the same
// payment, result and instant).
func TestPreparedEventSameAsGeneral(t *testing.T) {
	e := newEnvOn(t, "sqlite", nil)
	ctx := context.Background()
	st := e.start(t, 1000)
	e.pay(t, st)
	form := e.sim.decide(t, st.Reference, "00")
	pr, err := e.gw.VerifyNotification(ctx, sdk.Notification{Channel: sdk.ChannelAutomatic, Body: []byte(form.Encode())})
	if err != nil {
		t.Fatal(err)
	}
	now := e.clock.Now().UTC()
	pre := e.svc.prepare(ctx, "sim", sdk.ChannelAutomatic, 7, pr, encodeResult(pr), now)
	if pre == nil {
		t.Fatal("no prepared decision")
	}
	var general json.RawMessage
	if err := e.st.InTx(ctx, func(tx store.Tx) error {
		p, err := getPayment(ctx, tx, st.Reference)
		if err != nil {
			return err
		}
		p.State, p.DecidedChannel, p.DecidedAt, p.DecidedRawID = State(pr.Outcome), "automatic", now, 7
		p.ResponseCode, p.AcquirerResponseCode, p.AuthorisationID, p.Explanation = pr.ResponseCode, pr.AcquirerResponseCode, pr.AuthorisationID, pr.Explanation
		p.UpdatedAt, p.Version = now, p.Version+1
		pl := EventPayload{Payment: *p, Channel: "automatic", RawID: 7, Outcome: string(pr.Outcome), ResponseCode: pr.ResponseCode,
			AcquirerResponseCode: pr.AcquirerResponseCode, AuthorisationID: pr.AuthorisationID, Explanation: pr.Explanation, Fields: pr.Fields}
		general, err = json.Marshal(pl)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(pr.Fields) == 0 {
		t.Fatal("the sim result has no fields: the test would not compare them")
	}
	if string(pre.event.Payload) != string(general) {
		t.Fatalf("prepared event\n%s\ngeneral\n%s", pre.event.Payload, general)
	}
	if pre.event.Type != "payment.accepted" || pre.event.Subject != "payment:"+st.Reference {
		t.Fatalf("prepared event %s %s", pre.event.Type, pre.event.Subject)
	}
}
