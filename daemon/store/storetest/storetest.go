// Package storetest is the conformance suite every store.Store
// implementation passes (SQLite and PostgreSQL).
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/acquit/acquit/daemon/store"
)

// Opener returns a fresh, empty store for one test; the suite closes it.
type Opener func(t *testing.T) store.Store

// Run runs the whole suite against stores made by open.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"RawInputs", testRawInputs},
		{"RawInputsHostile", testRawHostile},
		{"RawStreamChunked", testRawStream},
		{"RawStreamHostile", testRawStreamHostile},
		{"RawChunksGoWithTheirInput", testRawChunksCascade},
		{"History", testHistory},
		{"AppendOnly", testAppendOnly},
		{"PruneRaw", testPruneRaw},
		{"PruneRawBatches", testPruneRawBatches},
		{"EmitInTx", testEmitInTx},
		{"EmitHostile", testEmitHostile},
		{"ClaimCompleteFailDeadReplay", testClaimLifecycle},
		{"PerSubjectOrder", testPerSubjectOrder},
		{"LeaseExpiry", testLeaseExpiry},
		{"ExtendLease", testExtendLease},
		{"ExpireLeasesOfDeadProcess", testExpireLeases},
		{"AbandonInstanceRuns", testAbandonInstanceRuns},
		{"NotDueNotClaimed", testNotDue},
		{"ConcurrentClaimers", testConcurrentClaimers},
		{"ListAndCount", testListCount},
		{"PruneEvents", testPrune},
		{"CompleteEvents", testCompleteEvents},
		{"KVSweep", testKVSweep},
		{"KV", testKV},
		{"KVConcurrentIncr", testKVConcurrentIncr},
		{"StateCAS", testStateCAS},
		{"StateCASConcurrent", testStateCASConcurrent},
		{"SequencesConcurrent", testSequences},
		{"Schedules", testSchedules},
		{"SchedulesConcurrentStart", testSchedulesConcurrent},
		{"TxExecQuery", testTxExecQuery},
		{"SerialWrites", testSerialWrites},
		{"View", testView},
		{"TimesInMilliseconds", testTimesInMilliseconds},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { s.Close() })
			tc.fn(t, s)
		})
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want %v", err, target)
	}
}

func emit(t *testing.T, s store.Store, evs ...store.NewEvent) []store.Event {
	t.Helper()
	var out []store.Event
	must(t, s.InTx(ctxT(t), func(tx store.Tx) error {
		for _, ne := range evs {
			e, err := tx.Emit(context.Background(), ne)
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	}))
	return out
}

func ev(typ, subject string) store.NewEvent {
	return store.NewEvent{Type: typ, Subject: subject, Payload: json.RawMessage(`{"s":"` + subject + `"}`)}
}

func ids(evs []store.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

func testRawInputs(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	body := []byte("DATA=amount=1000|currencyCode=978&Seal=abc")
	id, err := s.RecordRaw(ctx, store.RawInput{
		Source: "atos", Channel: "automatic", RemoteAddr: "127.0.0.1:5555", Method: "POST", Path: "/atos/auto",
		Headers: map[string][]string{"Content-Type": {"application/x-www-form-urlencoded"}}, Body: body,
		Verdicts: []store.Verdict{{Verified: false, Code: "received"}},
	})
	must(t, err)
	must(t, s.InTx(ctx, func(tx store.Tx) error {
		return tx.AddVerdict(ctx, id, store.Verdict{Verified: true, Code: "ok", Subject: "pay-1"})
	}))
	must(t, s.InTx(ctx, func(tx store.Tx) error {
		return tx.AddVerdict(ctx, id, store.Verdict{Verified: false, Code: "duplicate", Message: "seen", Subject: "pay-1"})
	}))
	got, err := s.GetRaw(ctx, id)
	must(t, err)
	if string(got.Body) != string(body) || got.Source != "atos" || got.Path != "/atos/auto" || got.Headers["Content-Type"][0] != "application/x-www-form-urlencoded" {
		t.Fatalf("raw round trip: %+v", got)
	}
	if sum := sha256.Sum256(body); got.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("sha256 = %q", got.SHA256)
	}
	if len(got.Verdicts) != 3 || got.Verdicts[0].Code != "received" || !got.Verdicts[1].Verified || got.Verdicts[2].Code != "duplicate" {
		t.Fatalf("verdicts = %+v", got.Verdicts)
	}
	if got.ReceivedAt.IsZero() || got.Verdicts[1].Subject != "pay-1" {
		t.Fatalf("received/subject not kept: %+v", got)
	}
	// The stored hash is the body's.
	id2, err := s.RecordRaw(ctx, store.RawInput{Source: "atos", Body: body, SHA256: got.SHA256})
	must(t, err)
	if id2 == id {
		t.Fatal("same id for two inputs")
	}
	// Empty and binary bodies survive.
	id3, err := s.RecordRaw(ctx, store.RawInput{Source: "ebics:bnp", Body: []byte{0, 1, 2, 0xff, 0}})
	must(t, err)
	got3, err := s.GetRaw(ctx, id3)
	must(t, err)
	if string(got3.Body) != "\x00\x01\x02\xff\x00" {
		t.Fatalf("binary body = %q", got3.Body)
	}
	_, err = s.GetRaw(ctx, 999999)
	wantErr(t, err, store.ErrNotFound)
	err = s.InTx(ctx, func(tx store.Tx) error { return tx.AddVerdict(ctx, 999999, store.Verdict{Code: "ok"}) })
	wantErr(t, err, store.ErrNotFound)

	// DeferSync: stored and read back like any other; the relaxed commit
	// does not leak into the transactions after it.
	for i := 0; i < 4; i++ {
		id4, err := s.RecordRaw(ctx, store.RawInput{Source: "atos", Channel: "automatic", Body: body, DeferSync: true})
		must(t, err)
		got4, err := s.GetRaw(ctx, id4)
		must(t, err)
		if string(got4.Body) != string(body) || got4.Channel != "automatic" {
			t.Fatalf("DeferSync raw round trip: %+v", got4)
		}
		if s.Driver() != "postgres" {
			continue
		}
		var mode string
		must(t, s.InTx(ctx, func(tx store.Tx) error {
			return tx.QueryRow(ctx, "SHOW synchronous_commit").Scan(&mode)
		}))
		if mode != "on" {
			t.Fatalf("synchronous_commit after a DeferSync raw = %q, want on", mode)
		}
	}
}

func testRawHostile(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	cases := []struct {
		name string
		in   store.RawInput
		want error
	}{
		{"no source", store.RawInput{Body: []byte("x")}, store.ErrInvalid},
		{"forged sha256", store.RawInput{Source: "atos", Body: []byte("x"), SHA256: strings.Repeat("0", 64)}, store.ErrInvalid},
		{"oversized body", store.RawInput{Source: "atos", Body: make([]byte, 16<<20+1)}, store.ErrTooLarge},
		{"huge source name", store.RawInput{Source: strings.Repeat("a", 10000)}, store.ErrTooLarge},
		{"source with NUL", store.RawInput{Source: "at\x00os"}, store.ErrInvalid},
		{"bad verdict", store.RawInput{Source: "atos", Verdicts: []store.Verdict{{Code: ""}}}, store.ErrInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.RecordRaw(ctx, c.in)
			wantErr(t, err, c.want)
		})
	}
	// A refused input leaves nothing behind (the bad verdict case rolled back).
	must(t, s.InTx(ctx, func(tx store.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM raw_inputs`).Scan(&n); err != nil {
			return err
		}
		if n != 0 {
			return fmt.Errorf("%d raw inputs stored by refused calls", n)
		}
		return nil
	}))
	// Hostile header content is stored as data, not interpreted.
	id, err := s.RecordRaw(ctx, store.RawInput{Source: "atos", Path: "/x'; DROP TABLE raw_inputs; --",
		Headers: map[string][]string{"X-Evil": {"'\"\\\x01"}}, Body: []byte("'); DELETE FROM events; --")})
	must(t, err)
	got, err := s.GetRaw(ctx, id)
	must(t, err)
	if got.Path != "/x'; DROP TABLE raw_inputs; --" || got.Headers["X-Evil"][0] != "'\"\\\x01" {
		t.Fatalf("hostile input altered: %+v", got)
	}
}

func testHistory(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	rawID, err := s.RecordRaw(ctx, store.RawInput{Source: "atos", Body: []byte("x")})
	must(t, err)
	must(t, s.InTx(ctx, func(tx store.Tx) error {
		if err := tx.RecordHistory(ctx, store.History{Entity: "payment", ID: "p1", From: "", To: "pending", Cause: "init"}); err != nil {
			return err
		}
		return tx.RecordHistory(ctx, store.History{Entity: "payment", ID: "p1", From: "pending", To: "accepted", Cause: "automatic",
			RawID: rawID, Details: json.RawMessage(`{"code":"00"}`)})
	}))
	must(t, s.InTx(ctx, func(tx store.Tx) error {
		rows, err := tx.Query(ctx, `SELECT from_state, to_state, cause, raw_id, details FROM history WHERE entity = ? AND entity_id = ? ORDER BY id`, "payment", "p1")
		if err != nil {
			return err
		}
		defer rows.Close()
		var got []string
		for rows.Next() {
			var from, to, cause, details string
			var raw *int64
			if err := rows.Scan(&from, &to, &cause, &raw, &details); err != nil {
				return err
			}
			r := int64(0)
			if raw != nil {
				r = *raw
			}
			got = append(got, fmt.Sprintf("%s>%s/%s/%d/%s", from, to, cause, r, details))
		}
		want := []string{">pending/init/0/", fmt.Sprintf("pending>accepted/automatic/%d/{\"code\":\"00\"}", rawID)}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("history = %q, want %q", got, want)
		}
		return rows.Err()
	}))
	err = s.InTx(ctx, func(tx store.Tx) error {
		return tx.RecordHistory(ctx, store.History{Entity: "payment", ID: "p1", Details: json.RawMessage(`{not json`)})
	})
	wantErr(t, err, store.ErrInvalid)
	err = s.InTx(ctx, func(tx store.Tx) error { return tx.RecordHistory(ctx, store.History{Entity: "payment"}) })
	wantErr(t, err, store.ErrInvalid)
}

func testAppendOnly(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	id, err := s.RecordRaw(ctx, store.RawInput{Source: "atos", Body: []byte("original"), Verdicts: []store.Verdict{{Code: "ok"}}})
	must(t, err)
	must(t, s.InTx(ctx, func(tx store.Tx) error {
		return tx.RecordHistory(ctx, store.History{Entity: "payment", ID: "p", To: "x"})
	}))
	for _, c := range []struct {
		q    string
		args []any
	}{
		{`UPDATE raw_inputs SET body = ? WHERE id = ?`, []any{[]byte("forged"), id}},
		{`DELETE FROM raw_inputs WHERE id = ?`, []any{id}},
		{`UPDATE raw_verdicts SET code = ? WHERE raw_id = ?`, []any{"forged", id}},
		{`DELETE FROM raw_verdicts WHERE raw_id = ?`, []any{id}},
		{`UPDATE history SET to_state = ? WHERE entity_id = ?`, []any{"forged", "p"}},
		{`DELETE FROM history WHERE entity_id = ?`, []any{"p"}},
	} {
		err := s.InTx(ctx, func(tx store.Tx) error {
			_, err := tx.Exec(ctx, c.q, c.args...)
			return err
		})
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: error = %v, want append-only refusal", c.q, err)
		}
	}
	got, err := s.GetRaw(ctx, id)
	must(t, err)
	if string(got.Body) != "original" || len(got.Verdicts) != 1 || got.Verdicts[0].Code != "ok" {
		t.Fatalf("append-only rows changed: %+v", got)
	}
}

// testPruneRaw: refused and never verified raw inputs past the retention
// go, with their verdicts; everything verified or named by another table
// stays, unchanged, and the triggers still refuse any other delete.
func testPruneRaw(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	now := time.Now()
	old, recent := now.Add(-48*time.Hour), now.Add(-time.Hour)
	cut := now.Add(-24 * time.Hour)
	// A domain table naming raw inputs, as payments and acks do.
	must(t, s.InTx(ctx, func(tx store.Tx) error {
		_, err := tx.Exec(ctx, `CREATE TABLE storetest_refs (k TEXT NOT NULL, decided_raw_id BIGINT NOT NULL DEFAULT 0)`)
		return err
	}))
	rec := func(name string, at time.Time, verdicts ...store.Verdict) int64 {
		t.Helper()
		id, err := s.RecordRaw(ctx, store.RawInput{Source: "atos", Channel: "automatic", Path: "/" + name,
			Body: []byte(name + " body"), ReceivedAt: at, Verdicts: verdicts})
		must(t, err)
		return id
	}
	refused := store.Verdict{Code: "bad_seal", Message: "seal does not match"}
	verified := store.Verdict{Verified: true, Code: "decided", Subject: "payment:p1"}
	oldRefused := rec("old-refused", old, refused, store.Verdict{Code: "duplicate"})
	oldNoVerdict := rec("old-no-verdict", old)
	recentRefused := rec("recent-refused", recent, refused)
	recentNoVerdict := rec("recent-no-verdict", recent)
	oldVerified := rec("old-verified", old, verified)
	oldMixed := rec("old-refused-then-verified", old, refused, verified)
	oldHistory := rec("old-refused-in-history", old, refused)
	oldDomain := rec("old-refused-named-by-domain", old, store.Verdict{Code: "rejected"})
	must(t, s.InTx(ctx, func(tx store.Tx) error {
		if err := tx.RecordHistory(ctx, store.History{Entity: "payment", ID: "p1", To: "refused", RawID: oldHistory}); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO storetest_refs (k, decided_raw_id) VALUES (?, ?)`, "p1", oldDomain)
		return err
	}))
	emit(t, s, ev("payment.refused", "payment:p1"))
	kept := []int64{recentRefused, recentNoVerdict, oldVerified, oldMixed, oldHistory, oldDomain}
	before := map[int64]*store.RawInput{}
	for _, id := range kept {
		got, err := s.GetRaw(ctx, id)
		must(t, err)
		before[id] = got
	}
	counts := func() (verdicts, history, events int64) {
		t.Helper()
		must(t, s.InTx(ctx, func(tx store.Tx) error {
			if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM raw_verdicts`).Scan(&verdicts); err != nil {
				return err
			}
			if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM history`).Scan(&history); err != nil {
				return err
			}
			return tx.QueryRow(ctx, `SELECT COUNT(*) FROM events`).Scan(&events)
		}))
		return
	}
	v0, h0, e0 := counts()

	n, err := s.PruneRaw(ctx, cut, 0)
	must(t, err)
	if n != 2 {
		t.Fatalf("PruneRaw = %d, want 2 (the old refused input and the old one never verified)", n)
	}
	for _, id := range []int64{oldRefused, oldNoVerdict} {
		if _, err := s.GetRaw(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("raw %d past retention: GetRaw error = %v, want not found", id, err)
		}
	}
	for _, id := range kept {
		got, err := s.GetRaw(ctx, id)
		if err != nil {
			t.Errorf("raw %d (%s) should be kept: %v", id, before[id].Path, err)
			continue
		}
		if string(got.Body) != string(before[id].Body) || got.SHA256 != before[id].SHA256 || len(got.Verdicts) != len(before[id].Verdicts) {
			t.Errorf("raw %d (%s) changed: %+v, was %+v", id, got.Path, got, before[id])
		}
	}
	v1, h1, e1 := counts()
	if v1 != v0-2 || h1 != h0 || e1 != e0 {
		t.Fatalf("after prune: %d verdicts (want %d: the pruned input's two go with it), %d history (want %d), %d events (want %d)",
			v1, v0-2, h1, h0, e1, e0)
	}
	var orphans int64
	must(t, s.InTx(ctx, func(tx store.Tx) error {
		return tx.QueryRow(ctx, `SELECT COUNT(*) FROM raw_verdicts WHERE raw_id = ?`, oldRefused).Scan(&orphans)
	}))
	if orphans != 0 {
		t.Fatalf("%d verdicts of a pruned input remain", orphans)
	}
	// A later run picks up what aged past the retention since (a store
	// may resume where its previous run stopped).
	lateRefused := rec("refused-30h-ago", now.Add(-30*time.Hour), refused)
	n, err = s.PruneRaw(ctx, cut, 0)
	must(t, err)
	if _, gerr := s.GetRaw(ctx, lateRefused); n != 1 || !errors.Is(gerr, store.ErrNotFound) {
		t.Fatalf("second PruneRaw = %d (GetRaw: %v), want 1: the input recorded since, 30 h old", n, gerr)
	}
	n, err = s.PruneRaw(ctx, cut, 0)
	must(t, err)
	if n != 0 {
		t.Fatalf("third PruneRaw = %d, want 0", n)
	}
	// Everything past a later cut that nothing keeps goes, the rest stays.
	n, err = s.PruneRaw(ctx, now.Add(time.Second), 0)
	must(t, err)
	if n != 2 {
		t.Fatalf("PruneRaw(now) = %d, want 2 (the recent refused and never verified inputs)", n)
	}
	for _, id := range []int64{oldVerified, oldMixed, oldHistory, oldDomain} {
		if _, err := s.GetRaw(ctx, id); err != nil {
			t.Errorf("raw %d kept forever: %v", id, err)
		}
	}

	// Outside PruneRaw, deletes stay refused, even with a permit for an
	// input a verdict verified.
	for _, c := range []struct {
		q    string
		args []any
	}{
		{`DELETE FROM raw_inputs WHERE id = ?`, []any{oldDomain}},
		{`DELETE FROM raw_verdicts WHERE raw_id = ?`, []any{oldDomain}},
		{`DELETE FROM raw_inputs WHERE id = ?`, []any{oldVerified}},
		{`DELETE FROM raw_verdicts WHERE raw_id = ?`, []any{oldMixed}},
		{`UPDATE raw_inputs SET body = ? WHERE id = ?`, []any{[]byte("forged"), oldDomain}},
	} {
		for _, permit := range []bool{false, true} {
			var stmtErr error
			err := s.InTx(ctx, func(tx store.Tx) error {
				if permit {
					if _, err := tx.Exec(ctx, `INSERT INTO raw_prune (raw_id) VALUES (?), (?), (?)`, oldVerified, oldMixed, oldDomain); err != nil {
						return err
					}
					if _, err := tx.Exec(ctx, `DELETE FROM raw_verdicts WHERE raw_id = ? AND verified = 0`, oldDomain); err != nil {
						return err
					}
				}
				_, stmtErr = tx.Exec(ctx, c.q, c.args...)
				return errRollback // nothing here is committed
			})
			wantErr(t, err, errRollback)
			if permit && c.args[0] == oldDomain && strings.HasPrefix(c.q, "DELETE") {
				// The triggers guard verified inputs and history (foreign
				// key); the references of domain tables are PruneRaw's to
				// check (the core schema comes before them).
				continue
			}
			if stmtErr == nil || !strings.Contains(stmtErr.Error(), "append-only") {
				t.Errorf("%s (permit %v): error = %v, want append-only refusal", c.q, permit, stmtErr)
			}
		}
	}
	for _, id := range []int64{oldVerified, oldMixed, oldDomain} {
		got, err := s.GetRaw(ctx, id)
		must(t, err)
		if string(got.Body) != string(before[id].Body) || len(got.Verdicts) != len(before[id].Verdicts) {
			t.Errorf("raw %d changed by refused statements: %+v", id, got)
		}
	}
}

// testPruneRawBatches: many refused inputs go in several small
// transactions, interleaved with kept ones, and a later input stays.
func testPruneRawBatches(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	old := time.Now().Add(-48 * time.Hour)
	var keep []int64
	for i := 0; i < 250; i++ {
		v := []store.Verdict{{Code: "bad_seal"}}
		if i%10 == 0 {
			v = []store.Verdict{{Verified: true, Code: "decided"}}
		}
		id, err := s.RecordRaw(ctx, store.RawInput{Source: "atos", Body: []byte(fmt.Sprint("body ", i)),
			ReceivedAt: old.Add(time.Duration(i%7) * time.Second), Verdicts: v})
		must(t, err)
		if i%10 == 0 {
			keep = append(keep, id)
		}
	}
	n, err := s.PruneRaw(ctx, time.Now().Add(-24*time.Hour), 7)
	must(t, err)
	if n != 225 {
		t.Fatalf("PruneRaw in batches of 7 = %d, want 225", n)
	}
	var left int64
	must(t, s.InTx(ctx, func(tx store.Tx) error {
		return tx.QueryRow(ctx, `SELECT COUNT(*) FROM raw_inputs`).Scan(&left)
	}))
	if left != int64(len(keep)) {
		t.Fatalf("%d raw inputs left, want %d", left, len(keep))
	}
	for _, id := range keep {
		if _, err := s.GetRaw(ctx, id); err != nil {
			t.Fatalf("verified raw %d: %v", id, err)
		}
	}
}

var errRollback = errors.New("rollback please")

func testEmitInTx(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	err := s.InTx(ctx, func(tx store.Tx) error {
		if _, err := tx.Emit(ctx, ev("payment.accepted", "p1")); err != nil {
			return err
		}
		return errRollback
	})
	wantErr(t, err, errRollback)
	n, err := s.CountEvents(ctx, "")
	must(t, err)
	if n != 0 {
		t.Fatalf("rolled-back emit left %d events", n)
	}
	got, err := s.ClaimEvents(ctx, "w", 10, time.Minute, time.Now())
	must(t, err)
	if len(got) != 0 {
		t.Fatalf("claimed %d events after rollback", len(got))
	}
	// A panic in fn rolls back too.
	func() {
		defer func() { _ = recover() }()
		_ = s.InTx(ctx, func(tx store.Tx) error {
			if _, err := tx.Emit(ctx, ev("payment.accepted", "p1")); err != nil {
				return err
			}
			panic("boom")
		})
	}()
	n, err = s.CountEvents(ctx, "")
	must(t, err)
	if n != 0 {
		t.Fatalf("panicking tx left %d events", n)
	}

	evs := emit(t, s, ev("payment.accepted", "p1"), ev("payment.refunded", "p1"))
	if evs[0].ID == "" || evs[0].ID == evs[1].ID || evs[1].Seq <= evs[0].Seq || evs[0].ID >= evs[1].ID {
		t.Fatalf("ids/seqs not unique and increasing: %+v", evs)
	}
	g, err := s.GetEvent(ctx, evs[0].ID)
	must(t, err)
	if g.State != store.EventPending || g.Type != "payment.accepted" || g.Subject != "p1" || string(g.Payload) != `{"s":"p1"}` || g.Attempts != 0 {
		t.Fatalf("event = %+v", g)
	}
	_, err = s.GetEvent(ctx, "nope")
	wantErr(t, err, store.ErrNotFound)
}

func testEmitHostile(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	cases := []struct {
		name string
		ne   store.NewEvent
		want error
	}{
		{"no type", store.NewEvent{Subject: "p"}, store.ErrInvalid},
		{"payload not JSON", store.NewEvent{Type: "x", Payload: json.RawMessage(`{"a":`)}, store.ErrInvalid},
		{"payload too large", store.NewEvent{Type: "x", Payload: json.RawMessage(`"` + strings.Repeat("a", 2<<20) + `"`)}, store.ErrTooLarge},
		{"subject too long", store.NewEvent{Type: "x", Subject: strings.Repeat("s", 300)}, store.ErrTooLarge},
		{"type not UTF-8", store.NewEvent{Type: "x\xff"}, store.ErrInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := s.InTx(ctx, func(tx store.Tx) error { _, err := tx.Emit(ctx, c.ne); return err })
			wantErr(t, err, c.want)
		})
	}
	n, err := s.CountEvents(ctx, "")
	must(t, err)
	if n != 0 {
		t.Fatalf("%d events from refused emits", n)
	}
	// Empty payload is stored as JSON null.
	e := emit(t, s, store.NewEvent{Type: "x"})[0]
	g, err := s.GetEvent(ctx, e.ID)
	must(t, err)
	if string(g.Payload) != "null" {
		t.Fatalf("payload = %s", g.Payload)
	}
	_, err = s.ClaimEvents(ctx, "", 1, time.Minute, time.Now())
	wantErr(t, err, store.ErrInvalid)
	_, err = s.ClaimEvents(ctx, "w", 0, time.Minute, time.Now())
	wantErr(t, err, store.ErrInvalid)
	_, err = s.ClaimEvents(ctx, "w", 1, 0, time.Now())
	wantErr(t, err, store.ErrInvalid)
}

func testClaimLifecycle(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	e := emit(t, s, ev("payment.accepted", "p1"))[0]
	now := time.Now()
	got, err := s.ClaimEvents(ctx, "w1", 10, time.Minute, now)
	must(t, err)
	if len(got) != 1 || got[0].ID != e.ID || got[0].State != store.EventRunning || got[0].Attempts != 1 || got[0].LockedBy != "w1" {
		t.Fatalf("claim = %+v", got)
	}
	if d := got[0].LockedUntil.Sub(now); d < 59*time.Second || d > 61*time.Second {
		t.Fatalf("lease until %s, want now+1m", got[0].LockedUntil)
	}
	// Leased: nobody else gets it.
	again, err := s.ClaimEvents(ctx, "w2", 10, time.Minute, now)
	must(t, err)
	if len(again) != 0 {
		t.Fatalf("leased event claimed twice: %+v", again)
	}
	// Only the holder may settle it.
	wantErr(t, s.CompleteEvent(ctx, e.ID, "w2"), store.ErrConflict)
	wantErr(t, s.FailEvent(ctx, e.ID, "w2", "x", now, false), store.ErrConflict)
	wantErr(t, s.CompleteEvent(ctx, "missing", "w1"), store.ErrNotFound)

	must(t, s.FailEvent(ctx, e.ID, "w1", "hook said no", now.Add(-time.Second), false))
	g, _ := s.GetEvent(ctx, e.ID)
	if g.State != store.EventPending || g.LastError != "hook said no" || g.LockedBy != "" {
		t.Fatalf("after fail: %+v", g)
	}
	got, err = s.ClaimEvents(ctx, "w1", 10, time.Minute, now)
	must(t, err)
	if len(got) != 1 || got[0].Attempts != 2 {
		t.Fatalf("reclaim = %+v", got)
	}
	must(t, s.FailEvent(ctx, e.ID, "w1", "still no", now, true))
	g, _ = s.GetEvent(ctx, e.ID)
	if g.State != store.EventDead {
		t.Fatalf("state = %s, want dead", g.State)
	}
	got, err = s.ClaimEvents(ctx, "w1", 10, time.Minute, now.Add(time.Hour))
	must(t, err)
	if len(got) != 0 {
		t.Fatal("dead event claimed")
	}
	wantErr(t, s.CompleteEvent(ctx, e.ID, "w1"), store.ErrConflict)

	must(t, s.ReplayEvent(ctx, e.ID))
	g, _ = s.GetEvent(ctx, e.ID)
	if g.State != store.EventPending || g.Attempts != 0 || g.ID != e.ID || g.LastError != "" {
		t.Fatalf("after replay: %+v", g)
	}
	wantErr(t, s.ReplayEvent(ctx, e.ID), store.ErrConflict) // pending: nothing to replay
	wantErr(t, s.ReplayEvent(ctx, "missing"), store.ErrNotFound)
	got, err = s.ClaimEvents(ctx, "w3", 10, time.Minute, time.Now())
	must(t, err)
	if len(got) != 1 || got[0].Attempts != 1 {
		t.Fatalf("claim after replay = %+v", got)
	}
	must(t, s.CompleteEvent(ctx, e.ID, "w3"))
	wantErr(t, s.CompleteEvent(ctx, e.ID, "w3"), store.ErrConflict)
	g, _ = s.GetEvent(ctx, e.ID)
	if g.State != store.EventDelivered {
		t.Fatalf("state = %s", g.State)
	}
	att, err := s.EventAttempts(ctx, e.ID)
	must(t, err)
	var summary []string
	for _, a := range att {
		if a.Finished.IsZero() || a.Started.IsZero() {
			t.Fatalf("unfinished attempt %+v", a)
		}
		summary = append(summary, fmt.Sprintf("%d:%s:%v:%s", a.N, a.Worker, a.OK, a.Error))
	}
	want := []string{"1:w1:false:hook said no", "2:w1:false:still no", "1:w3:true:"}
	if fmt.Sprint(summary) != fmt.Sprint(want) {
		t.Fatalf("attempts = %q, want %q", summary, want)
	}
	// A delivered event may be replayed too.
	must(t, s.ReplayEvent(ctx, e.ID))
}

func testPerSubjectOrder(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	evs := emit(t, s, ev("t", "a"), ev("t", "a"), ev("t", "b"), ev("t", "a"), ev("t", ""), ev("t", ""))
	a1, a2, b1, a3, n1, n2 := evs[0], evs[1], evs[2], evs[3], evs[4], evs[5]
	now := time.Now()
	got, err := s.ClaimEvents(ctx, "w", 10, time.Minute, now)
	must(t, err)
	// Heads of a and b, and every subject-less event.
	if fmt.Sprint(ids(got)) != fmt.Sprint([]string{a1.ID, b1.ID, n1.ID, n2.ID}) {
		t.Fatalf("claimed %v, want heads a1 b1 and unordered n1 n2", ids(got))
	}
	for _, e := range []store.Event{b1, n1, n2} {
		must(t, s.CompleteEvent(ctx, e.ID, "w"))
	}
	// a2 waits while a1 runs, is pending after a failure, and is dead.
	must(t, s.FailEvent(ctx, a1.ID, "w", "x", now, false))
	got, err = s.ClaimEvents(ctx, "w", 10, time.Minute, now)
	must(t, err)
	if fmt.Sprint(ids(got)) != fmt.Sprint([]string{a1.ID}) {
		t.Fatalf("claimed %v, want a1 again", ids(got))
	}
	must(t, s.FailEvent(ctx, a1.ID, "w", "x", now, true))
	got, err = s.ClaimEvents(ctx, "w", 10, time.Minute, now.Add(time.Hour))
	must(t, err)
	if len(got) != 0 {
		t.Fatalf("a dead head let %v through", ids(got))
	}
	must(t, s.ReplayEvent(ctx, a1.ID))
	got, err = s.ClaimEvents(ctx, "w", 10, time.Minute, time.Now())
	must(t, err)
	if fmt.Sprint(ids(got)) != fmt.Sprint([]string{a1.ID}) {
		t.Fatalf("claimed %v after replay, want a1", ids(got))
	}
	must(t, s.CompleteEvent(ctx, a1.ID, "w"))
	got, err = s.ClaimEvents(ctx, "w", 10, time.Minute, time.Now())
	must(t, err)
	if fmt.Sprint(ids(got)) != fmt.Sprint([]string{a2.ID}) {
		t.Fatalf("claimed %v, want a2", ids(got))
	}
	must(t, s.CompleteEvent(ctx, a2.ID, "w"))
	got, err = s.ClaimEvents(ctx, "w", 10, time.Minute, time.Now())
	must(t, err)
	if fmt.Sprint(ids(got)) != fmt.Sprint([]string{a3.ID}) {
		t.Fatalf("claimed %v, want a3", ids(got))
	}
}

func testLeaseExpiry(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	e := emit(t, s, ev("t", "a"))[0]
	now := time.Now()
	got, err := s.ClaimEvents(ctx, "dead-worker", 1, time.Second, now)
	must(t, err)
	if len(got) != 1 {
		t.Fatal("not claimed")
	}
	got, err = s.ClaimEvents(ctx, "w2", 1, time.Minute, now.Add(500*time.Millisecond))
	must(t, err)
	if len(got) != 0 {
		t.Fatal("claimed before the lease expired")
	}
	got, err = s.ClaimEvents(ctx, "w2", 1, time.Minute, now.Add(2*time.Second))
	must(t, err)
	if len(got) != 1 || got[0].LockedBy != "w2" || got[0].Attempts != 2 {
		t.Fatalf("reclaim after expiry = %+v", got)
	}
	// The first worker lost its lease.
	wantErr(t, s.CompleteEvent(ctx, e.ID, "dead-worker"), store.ErrConflict)
	wantErr(t, s.ExtendLease(ctx, e.ID, "dead-worker", now.Add(time.Hour)), store.ErrConflict)
	must(t, s.CompleteEvent(ctx, e.ID, "w2"))
	att, err := s.EventAttempts(ctx, e.ID)
	must(t, err)
	if len(att) != 2 || att[0].Error != "lease expired" || att[0].OK || !att[1].OK || att[1].Worker != "w2" {
		t.Fatalf("attempts = %+v", att)
	}
}

func testExtendLease(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	e := emit(t, s, ev("t", "a"))[0]
	now := time.Now()
	_, err := s.ClaimEvents(ctx, "w", 1, time.Second, now)
	must(t, err)
	must(t, s.ExtendLease(ctx, e.ID, "w", now.Add(time.Hour)))
	got, err := s.ClaimEvents(ctx, "w2", 1, time.Minute, now.Add(30*time.Minute))
	must(t, err)
	if len(got) != 0 {
		t.Fatal("claimed an event whose lease was extended")
	}
	wantErr(t, s.ExtendLease(ctx, "missing", "w", now), store.ErrNotFound)
	must(t, s.CompleteEvent(ctx, e.ID, "w"))
	wantErr(t, s.ExtendLease(ctx, e.ID, "w", now.Add(time.Hour)), store.ErrConflict)
}

func testNotDue(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	e := emit(t, s, ev("t", "a"))[0]
	now := time.Now()
	_, err := s.ClaimEvents(ctx, "w", 1, time.Minute, now)
	must(t, err)
	must(t, s.FailEvent(ctx, e.ID, "w", "later", now.Add(time.Hour), false))
	got, err := s.ClaimEvents(ctx, "w", 1, time.Minute, now.Add(59*time.Minute))
	must(t, err)
	if len(got) != 0 {
		t.Fatal("claimed before next attempt")
	}
	got, err = s.ClaimEvents(ctx, "w", 1, time.Minute, now.Add(61*time.Minute))
	must(t, err)
	if len(got) != 1 {
		t.Fatal("not claimed when due")
	}
}

// testConcurrentClaimers runs claimers in parallel and checks that no event
// and no subject is ever held by two of them at once, every event is
// delivered exactly once (leases do not expire here), and per subject in
// order.
func testConcurrentClaimers(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	const subjects, perSubject, workers = 12, 15, 4
	var batch []store.NewEvent
	for i := 0; i < perSubject; i++ {
		for j := 0; j < subjects; j++ {
			batch = append(batch, store.NewEvent{Type: "t", Subject: fmt.Sprintf("s%02d", j), Payload: json.RawMessage(fmt.Sprint(i))})
		}
	}
	all := emit(t, s, batch...)
	var (
		mu          sync.Mutex
		inFlight    = map[string]string{} // event -> worker
		subjectBusy = map[string]bool{}
		delivered   = map[string]int{}
		order       = map[string][]int64{}
		errs        []string
	)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(worker string) {
			defer wg.Done()
			idle := 0
			for idle < 50 {
				got, err := s.ClaimEvents(ctx, worker, 3, time.Hour, time.Now())
				if err != nil {
					mu.Lock()
					errs = append(errs, err.Error())
					mu.Unlock()
					return
				}
				if len(got) == 0 {
					idle++
					mu.Lock()
					done := len(delivered) == len(all)
					mu.Unlock()
					if done {
						return
					}
					time.Sleep(2 * time.Millisecond)
					continue
				}
				idle = 0
				mu.Lock()
				for _, e := range got {
					if other, ok := inFlight[e.ID]; ok {
						errs = append(errs, fmt.Sprintf("event %s held by %s and %s", e.ID, other, worker))
					}
					if subjectBusy[e.Subject] {
						errs = append(errs, fmt.Sprintf("subject %s claimed twice at once", e.Subject))
					}
					inFlight[e.ID] = worker
					subjectBusy[e.Subject] = true
				}
				mu.Unlock()
				for _, e := range got {
					mu.Lock()
					delete(inFlight, e.ID)
					subjectBusy[e.Subject] = false
					delivered[e.ID]++
					order[e.Subject] = append(order[e.Subject], e.Seq)
					mu.Unlock()
					if err := s.CompleteEvent(ctx, e.ID, worker); err != nil {
						mu.Lock()
						errs = append(errs, err.Error())
						mu.Unlock()
					}
				}
			}
		}(fmt.Sprintf("w%d", w))
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d problems, first: %s", len(errs), errs[0])
	}
	if len(delivered) != len(all) {
		t.Fatalf("delivered %d of %d", len(delivered), len(all))
	}
	for id, n := range delivered {
		if n != 1 {
			t.Fatalf("event %s delivered %d times", id, n)
		}
	}
	for subj, seqs := range order {
		if !sort.SliceIsSorted(seqs, func(i, j int) bool { return seqs[i] < seqs[j] }) {
			t.Fatalf("subject %s out of order: %v", subj, seqs)
		}
	}
}

func testListCount(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	evs := emit(t, s, ev("a", "x"), ev("b", "x"), ev("a", "y"))
	_, err := s.ClaimEvents(ctx, "w", 10, time.Minute, time.Now())
	must(t, err)
	list, err := s.ListEvents(ctx, store.EventFilter{Type: "a"})
	must(t, err)
	if len(list) != 2 || list[0].ID != evs[0].ID || list[1].ID != evs[2].ID {
		t.Fatalf("list by type = %v", ids(list))
	}
	list, err = s.ListEvents(ctx, store.EventFilter{State: store.EventPending})
	must(t, err)
	if len(list) != 1 || list[0].ID != evs[1].ID {
		t.Fatalf("list pending = %v", ids(list))
	}
	list, err = s.ListEvents(ctx, store.EventFilter{AfterSeq: evs[0].Seq, Limit: 1})
	must(t, err)
	if len(list) != 1 || list[0].ID != evs[1].ID {
		t.Fatalf("list after/limit = %v", ids(list))
	}
	list, err = s.ListEvents(ctx, store.EventFilter{Subject: "y"})
	must(t, err)
	if len(list) != 1 || list[0].ID != evs[2].ID {
		t.Fatalf("list subject = %v", ids(list))
	}
	_, err = s.ListEvents(ctx, store.EventFilter{Limit: -1})
	wantErr(t, err, store.ErrInvalid)
	for state, want := range map[store.EventState]int64{"": 3, store.EventPending: 1, store.EventRunning: 2, store.EventDead: 0} {
		n, err := s.CountEvents(ctx, state)
		must(t, err)
		if n != want {
			t.Errorf("count %q = %d, want %d", state, n, want)
		}
	}
}

func testKV(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	_, ok, err := s.KVGet(ctx, "hooks", "k")
	must(t, err)
	if ok {
		t.Fatal("missing key found")
	}
	must(t, s.KVSet(ctx, "hooks", "k", "v1", 0))
	must(t, s.KVSet(ctx, "hooks", "k", "v2", 0))
	must(t, s.KVSet(ctx, "other", "k", "o", 0))
	v, ok, err := s.KVGet(ctx, "hooks", "k")
	must(t, err)
	if !ok || v != "v2" {
		t.Fatalf("get = %q %v", v, ok)
	}
	must(t, s.KVDelete(ctx, "hooks", "k"))
	must(t, s.KVDelete(ctx, "hooks", "k"))
	if _, ok, _ := s.KVGet(ctx, "hooks", "k"); ok {
		t.Fatal("deleted key found")
	}
	if v, _, _ := s.KVGet(ctx, "other", "k"); v != "o" {
		t.Fatal("namespaces not separate")
	}
	// TTL.
	must(t, s.KVSet(ctx, "hooks", "long", "x", time.Hour))
	if _, ok, _ := s.KVGet(ctx, "hooks", "long"); !ok {
		t.Fatal("unexpired ttl key missing")
	}
	must(t, s.KVSet(ctx, "hooks", "ttl", "x", time.Millisecond))
	time.Sleep(20 * time.Millisecond)
	if _, ok, _ := s.KVGet(ctx, "hooks", "ttl"); ok {
		t.Fatal("expired key still found")
	}
	// Incr: missing = 0, expired = 0, keeps ttl of live values.
	n, err := s.KVIncr(ctx, "hooks", "n", 5)
	must(t, err)
	if n != 5 {
		t.Fatalf("incr = %d", n)
	}
	n, err = s.KVIncr(ctx, "hooks", "n", -7)
	must(t, err)
	if n != -2 {
		t.Fatalf("incr = %d", n)
	}
	n, err = s.KVIncr(ctx, "hooks", "ttl", 1)
	must(t, err)
	if n != 1 {
		t.Fatalf("incr of expired = %d, want 1", n)
	}
	must(t, s.KVSet(ctx, "hooks", "s", "not a number", 0))
	_, err = s.KVIncr(ctx, "hooks", "s", 1)
	wantErr(t, err, store.ErrNotInteger)
	must(t, s.KVSet(ctx, "hooks", "big", "9223372036854775807", 0))
	_, err = s.KVIncr(ctx, "hooks", "big", 1)
	wantErr(t, err, store.ErrInvalid)
	// Hostile arguments.
	wantErr(t, s.KVSet(ctx, "", "k", "v", 0), store.ErrInvalid)
	wantErr(t, s.KVSet(ctx, "ns", "k", "v", -time.Second), store.ErrInvalid)
	wantErr(t, s.KVSet(ctx, "ns", "k", strings.Repeat("v", 2<<20), 0), store.ErrTooLarge)
	wantErr(t, s.KVSet(ctx, "ns", strings.Repeat("k", 1000), "v", 0), store.ErrTooLarge)
	wantErr(t, s.KVSet(ctx, "ns", "k", "\xff\xfe", 0), store.ErrInvalid)
	_, _, err = s.KVGet(ctx, "ns", "")
	wantErr(t, err, store.ErrInvalid)
}

func testKVConcurrentIncr(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	const g, each = 6, 25
	concurrently(t, g, func() error {
		for j := 0; j < each; j++ {
			if _, err := s.KVIncr(ctx, "c", "n", 1); err != nil {
				return err
			}
		}
		return nil
	})
	v, _, err := s.KVGet(ctx, "c", "n")
	must(t, err)
	if v != fmt.Sprint(g*each) {
		t.Fatalf("counter = %s, want %d (lost updates)", v, g*each)
	}
}

func testStateCAS(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	v, ver, err := s.StateGet(ctx, "atos", "k")
	must(t, err)
	if v != nil || ver != 0 {
		t.Fatalf("missing = %q %d", v, ver)
	}
	ver, err = s.StatePut(ctx, "atos", "k", []byte("one"), 0)
	must(t, err)
	if ver != 1 {
		t.Fatalf("version = %d", ver)
	}
	_, err = s.StatePut(ctx, "atos", "k", []byte("again"), 0)
	wantErr(t, err, store.ErrConflict)
	ver, err = s.StatePut(ctx, "atos", "k", []byte("two"), 1)
	must(t, err)
	if ver != 2 {
		t.Fatalf("version = %d", ver)
	}
	_, err = s.StatePut(ctx, "atos", "k", []byte("stale"), 1)
	wantErr(t, err, store.ErrConflict)
	_, err = s.StatePut(ctx, "atos", "nokey", []byte("x"), 5)
	wantErr(t, err, store.ErrConflict)
	_, err = s.StatePut(ctx, "atos", "k", []byte("x"), -1)
	wantErr(t, err, store.ErrInvalid)
	_, err = s.StatePut(ctx, "", "k", []byte("x"), 0)
	wantErr(t, err, store.ErrInvalid)
	v, ver, err = s.StateGet(ctx, "atos", "k")
	must(t, err)
	if string(v) != "two" || ver != 2 {
		t.Fatalf("get = %q %d", v, ver)
	}
	// Other plugins do not see it.
	v, _, _ = s.StateGet(ctx, "ebics", "k")
	if v != nil {
		t.Fatal("state leaked across plugins")
	}
	// Binary and empty values.
	_, err = s.StatePut(ctx, "atos", "bin", []byte{0, 0xff}, 0)
	must(t, err)
	v, _, _ = s.StateGet(ctx, "atos", "bin")
	if string(v) != "\x00\xff" {
		t.Fatalf("binary = %q", v)
	}
	_, err = s.StatePut(ctx, "atos", "empty", nil, 0)
	must(t, err)
	v, ver, _ = s.StateGet(ctx, "atos", "empty")
	if v == nil || len(v) != 0 || ver != 1 {
		t.Fatalf("empty = %q %d", v, ver)
	}
}

func testStateCASConcurrent(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	const g, each = 4, 15
	var conflicts atomic.Int32
	concurrently(t, g, func() error {
		for done := 0; done < each; {
			v, ver, err := s.StateGet(ctx, "p", "counter")
			if err != nil {
				return err
			}
			var n int
			if len(v) > 0 {
				fmt.Sscan(string(v), &n)
			}
			_, err = s.StatePut(ctx, "p", "counter", []byte(fmt.Sprint(n+1)), ver)
			if errors.Is(err, store.ErrConflict) {
				conflicts.Add(1)
				continue
			}
			if err != nil {
				return err
			}
			done++
		}
		return nil
	})
	v, ver, err := s.StateGet(ctx, "p", "counter")
	must(t, err)
	if string(v) != fmt.Sprint(g*each) || ver != g*each {
		t.Fatalf("counter = %s version %d, want %d (a CAS let a lost update through)", v, ver, g*each)
	}
	t.Logf("%d CAS conflicts retried", conflicts.Load())
}

func testSequences(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	const g, each = 6, 25
	var mu sync.Mutex
	seen := map[int64]bool{}
	concurrently(t, g, func() error {
		for j := 0; j < each; j++ {
			v, err := s.NextSequence(ctx, "atos", "daily")
			if err != nil {
				return err
			}
			mu.Lock()
			twice := seen[v]
			seen[v] = true
			mu.Unlock()
			if twice {
				return fmt.Errorf("value %d handed out twice", v)
			}
		}
		return nil
	})
	for i := int64(1); i <= g*each; i++ {
		if !seen[i] {
			t.Fatalf("value %d never handed out", i)
		}
	}
	v, err := s.NextSequence(ctx, "atos", "other")
	must(t, err)
	if v != 1 {
		t.Fatalf("new counter starts at %d", v)
	}
	_, err = s.NextSequence(ctx, "atos", "")
	wantErr(t, err, store.ErrInvalid)
}

func testSchedules(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	t0 := time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)
	now := t0.Add(time.Second)
	id, err := s.StartRun(ctx, "ebics-download", t0, "i1", now)
	must(t, err)
	_, err = s.StartRun(ctx, "ebics-download", t0, "i2", now)
	wantErr(t, err, store.ErrConflict) // same due time
	_, err = s.StartRun(ctx, "ebics-download", t0.Add(time.Hour), "i1", now)
	wantErr(t, err, store.ErrConflict) // previous still running
	other, err := s.StartRun(ctx, "reconcile", t0, "i1", now)
	must(t, err)
	must(t, s.FinishRun(ctx, id, true, "3 files", "", now.Add(time.Minute)))
	wantErr(t, s.FinishRun(ctx, id, false, "", "again", now), store.ErrConflict)
	wantErr(t, s.FinishRun(ctx, 999999, false, "", "", now), store.ErrNotFound)
	_, err = s.StartRun(ctx, "ebics-download", t0, "i1", now)
	wantErr(t, err, store.ErrConflict) // already ran
	id2, err := s.StartRun(ctx, "ebics-download", t0.Add(time.Hour), "i2", now.Add(time.Hour))
	must(t, err)
	last, err := s.LastRun(ctx, "ebics-download")
	must(t, err)
	if last.ID != id2 || !last.Finished.IsZero() || last.Instance != "i2" || !last.Scheduled.Equal(t0.Add(time.Hour)) {
		t.Fatalf("last = %+v", last)
	}
	runs, err := s.ListRuns(ctx, "ebics-download", 10)
	must(t, err)
	if len(runs) != 2 || runs[1].ID != id || !runs[1].OK || runs[1].Summary != "3 files" {
		t.Fatalf("runs = %+v", runs)
	}
	_, err = s.LastRun(ctx, "never")
	wantErr(t, err, store.ErrNotFound)
	// The instance died: its runs are abandoned, then the schedule runs again.
	n, err := s.AbandonRuns(ctx, now.Add(30*time.Minute))
	must(t, err)
	if n != 1 { // "reconcile" started at now; id2 started after the cutoff
		t.Fatalf("abandoned %d, want 1", n)
	}
	r, _ := s.ListRuns(ctx, "reconcile", 1)
	if r[0].ID != other || r[0].OK || r[0].Finished.IsZero() || !strings.Contains(r[0].Error, "abandoned") {
		t.Fatalf("abandoned run = %+v", r[0])
	}
	n, err = s.AbandonRuns(ctx, now.Add(2*time.Hour))
	must(t, err)
	if n != 1 {
		t.Fatalf("abandoned %d, want 1", n)
	}
	_, err = s.StartRun(ctx, "ebics-download", t0.Add(2*time.Hour), "i1", now.Add(2*time.Hour))
	must(t, err)
	_, err = s.StartRun(ctx, "", t0, "i1", now)
	wantErr(t, err, store.ErrInvalid)
}

func testSchedulesConcurrent(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	t0 := time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)
	for slot := 0; slot < 5; slot++ {
		due := t0.Add(time.Duration(slot) * time.Hour)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var won []int64
		var other []error
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func(inst string) {
				defer wg.Done()
				id, err := s.StartRun(ctx, "job", due, inst, due)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					won = append(won, id)
				case !errors.Is(err, store.ErrConflict):
					other = append(other, err)
				}
			}(fmt.Sprintf("i%d", i))
		}
		wg.Wait()
		if len(other) > 0 {
			t.Fatal(other[0])
		}
		if len(won) != 1 {
			t.Fatalf("slot %d: %d instances started the run, want 1", slot, len(won))
		}
		must(t, s.FinishRun(ctx, won[0], true, "", "", due.Add(time.Minute)))
	}
}

func testTxExecQuery(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	// Domain packages use kv-like portable SQL on their own tables; here
	// the kv table stands in.
	must(t, s.InTx(ctx, func(tx store.Tx) error {
		n, err := tx.Exec(ctx, `INSERT INTO kv (ns, k, value, expires_at) VALUES (?, ?, ?, ?)`, "d", "what?", "it's a '?' test", 0)
		if err != nil {
			return err
		}
		if n != 1 {
			return fmt.Errorf("rows affected = %d", n)
		}
		var v string
		if err := tx.QueryRow(ctx, `SELECT value FROM kv WHERE ns = ? AND k = ? AND value <> 'a ? in a literal'`, "d", "what?").Scan(&v); err != nil {
			return err
		}
		if v != "it's a '?' test" {
			return fmt.Errorf("value = %q", v)
		}
		return nil
	}))
	err := s.InTx(ctx, func(tx store.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO kv (ns, k, value, expires_at) VALUES (?, ?, ?, ?)`, "d", "what?", "dup", 0)
		return err
	})
	wantErr(t, err, store.ErrConflict)
	err = s.InTx(ctx, func(tx store.Tx) error {
		var v string
		return tx.QueryRow(ctx, `SELECT value FROM kv WHERE ns = ?`, "none").Scan(&v)
	})
	wantErr(t, err, store.ErrNotFound)
}

// testView: a View reads what was committed (a missing row is
// ErrNotFound, placeholders rebound), refuses every write (Emit,
// AddVerdict, RecordHistory with ErrReadOnly, an INSERT through Exec) and
// stores nothing; and it does not wait for the writer: it completes while
// a write transaction is held open.
func testView(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	must(t, s.InTx(ctx, func(tx store.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO kv (ns, k, value, expires_at) VALUES (?, ?, ?, ?)`, "view", "k1", "v1", 0)
		return err
	}))
	rawID, err := s.RecordRaw(ctx, store.RawInput{Source: "t", Channel: "c", Body: []byte("x")})
	must(t, err)
	read := func() (string, error) {
		var v string
		err := s.View(ctx, func(tx store.Tx) error {
			return tx.QueryRow(ctx, `SELECT value FROM kv WHERE ns = ? AND k = ?`, "view", "k1").Scan(&v)
		})
		return v, err
	}
	if v, err := read(); err != nil || v != "v1" {
		t.Fatalf("View read %q, %v; want v1", v, err)
	}
	err = s.View(ctx, func(tx store.Tx) error {
		var v string
		return tx.QueryRow(ctx, `SELECT value FROM kv WHERE ns = ?`, "none").Scan(&v)
	})
	wantErr(t, err, store.ErrNotFound)
	err = s.View(ctx, func(tx store.Tx) error {
		rows, err := tx.Query(ctx, `SELECT k FROM kv WHERE ns = ?`, "view")
		if err != nil {
			return err
		}
		defer rows.Close()
		n := 0
		for rows.Next() {
			n++
		}
		if n != 1 {
			return fmt.Errorf("View query: %d rows, want 1", n)
		}
		return rows.Err()
	})
	must(t, err)

	writes := []struct {
		name string
		fn   func(tx store.Tx) error
		want error
	}{
		{"Emit", func(tx store.Tx) error { _, err := tx.Emit(ctx, ev("view.t", "s")); return err }, store.ErrReadOnly},
		{"AddVerdict", func(tx store.Tx) error {
			return tx.AddVerdict(ctx, rawID, store.Verdict{Code: "view", At: time.Now()})
		}, store.ErrReadOnly},
		{"RecordHistory", func(tx store.Tx) error {
			return tx.RecordHistory(ctx, store.History{Entity: "view", ID: "x", To: "y", Cause: "t", At: time.Now()})
		}, store.ErrReadOnly},
		{"Exec INSERT", func(tx store.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO kv (ns, k, value, expires_at) VALUES (?, ?, ?, ?)`, "view", "k2", "v2", 0)
			return err
		}, nil},
	}
	for _, w := range writes {
		err := s.View(ctx, w.fn)
		if err == nil || (w.want != nil && !errors.Is(err, w.want)) {
			t.Errorf("%s inside View: %v, want a refusal (%v)", w.name, err, w.want)
		}
	}
	if n := countRows(t, s, `SELECT COUNT(*) FROM kv WHERE ns = ?`, "view"); n != 1 {
		t.Errorf("%d kv rows after refused writes, want 1", n)
	}
	if n := countRows(t, s, `SELECT COUNT(*) FROM history WHERE entity = ?`, "view"); n != 0 {
		t.Errorf("%d history rows written inside View", n)
	}
	got, err := s.GetRaw(ctx, rawID)
	must(t, err)
	if len(got.Verdicts) != 0 {
		t.Errorf("verdicts %+v written inside View", got.Verdicts)
	}
	if evs, err := s.ListEvents(ctx, store.EventFilter{}); err != nil || len(evs) != 0 {
		t.Errorf("events %v (%v) emitted inside View", evs, err)
	}

	// The writer held by an open transaction: a View still reads.
	inside, release, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- s.InTx(ctx, func(tx store.Tx) error {
			if _, err := tx.Exec(ctx, `UPDATE kv SET value = ? WHERE ns = ? AND k = ?`, "v1b", "view", "k1"); err != nil {
				return err
			}
			close(inside)
			<-release
			return nil
		})
	}()
	<-inside
	viewed := make(chan error, 1)
	go func() {
		v, err := read()
		if err == nil && v != "v1" {
			err = fmt.Errorf("View read %q while the write was open, want the committed v1", v)
		}
		viewed <- err
	}()
	select {
	case err := <-viewed:
		must(t, err)
	case <-time.After(20 * time.Second): // a hang guard, not a speed bound
		close(release)
		t.Fatal("View waited for the open write transaction")
	}
	close(release)
	must(t, <-done)
	if v, err := read(); err != nil || v != "v1b" {
		t.Fatalf("View after the write committed: %q, %v; want v1b", v, err)
	}
}

func testPrune(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	p := s
	evs := emit(t, s, ev("t", "a"), ev("t", "a"), ev("t", "b"))
	got, err := s.ClaimEvents(ctx, "w", 10, time.Minute, time.Now())
	must(t, err)
	must(t, s.CompleteEvent(ctx, got[0].ID, "w")) // a1 delivered, b1 still running
	n, err := p.PruneEvents(ctx, time.Now().Add(-time.Hour))
	must(t, err)
	if n != 0 {
		t.Fatalf("pruned %d recent events", n)
	}
	n, err = p.PruneEvents(ctx, time.Now().Add(time.Second))
	must(t, err)
	if n != 1 {
		t.Fatalf("pruned %d, want 1 (only the delivered one)", n)
	}
	_, err = s.GetEvent(ctx, evs[0].ID)
	wantErr(t, err, store.ErrNotFound)
	att, err := s.EventAttempts(ctx, evs[0].ID)
	must(t, err)
	if len(att) != 0 {
		t.Fatalf("attempts of a pruned event remain: %+v", att)
	}
	// Order still holds for what is left: a2 is now the head of a.
	got, err = s.ClaimEvents(ctx, "w", 10, time.Minute, time.Now())
	must(t, err)
	if len(got) != 1 || got[0].ID != evs[1].ID {
		t.Fatalf("claim after prune = %v, want a2", ids(got))
	}
}

func testKVSweep(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	must(t, s.KVSet(ctx, "sweep", "old", "x", time.Millisecond))
	must(t, s.KVSet(ctx, "sweep", "keep", "y", 0))
	time.Sleep(5 * time.Millisecond)
	for i := 0; i < 300; i++ { // more than one sweep period
		must(t, s.KVSet(ctx, "sweep", "churn", fmt.Sprint(i), time.Hour))
	}
	must(t, s.InTx(ctx, func(tx store.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM kv WHERE ns = ?`, "sweep").Scan(&n); err != nil {
			return err
		}
		if n != 2 {
			return fmt.Errorf("%d kv rows, want 2 (expired one swept)", n)
		}
		return nil
	}))
}

func testCompleteEvents(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	bc := s
	evs := emit(t, s, ev("t", "a"), ev("t", "b"), ev("t", "c"))
	_, err := s.ClaimEvents(ctx, "w", 2, time.Minute, time.Now()) // a, b
	must(t, err)
	errs, err := bc.CompleteEvents(ctx, "w", []string{evs[0].ID, evs[2].ID, "missing", evs[1].ID})
	must(t, err)
	if errs[0] != nil || errs[3] != nil {
		t.Fatalf("errs = %v", errs)
	}
	wantErr(t, errs[1], store.ErrConflict) // c is pending, not leased
	wantErr(t, errs[2], store.ErrNotFound)
	for i, want := range []store.EventState{store.EventDelivered, store.EventDelivered, store.EventPending} {
		g, err := s.GetEvent(ctx, evs[i].ID)
		must(t, err)
		if g.State != want {
			t.Fatalf("event %d is %s, want %s", i, g.State, want)
		}
	}
	att, err := s.EventAttempts(ctx, evs[0].ID)
	must(t, err)
	if len(att) != 1 || !att[0].OK || att[0].Finished.IsZero() {
		t.Fatalf("attempts = %+v", att)
	}
}

// testExpireLeases: a restarted process of an instance ends the leases its
// killed predecessor held, and only those.
func testExpireLeases(t *testing.T, s store.Store) {
	le := s
	ctx := ctxT(t)
	emit(t, s, ev("t", "a"), ev("t", "b"))
	now := time.Now()
	if got, err := s.ClaimEvents(ctx, "inst/111", 1, time.Hour, now); err != nil || len(got) != 1 {
		t.Fatalf("claim: %v %v", got, err)
	}
	if got, err := s.ClaimEvents(ctx, "other/9", 1, time.Hour, now); err != nil || len(got) != 1 {
		t.Fatalf("claim: %v %v", got, err)
	}
	n, err := le.ExpireLeases(ctx, "inst/", "inst/222", now.Add(time.Second))
	must(t, err)
	if n != 1 {
		t.Fatalf("expired %d leases, want 1 (the other instance's must stay)", n)
	}
	got, err := s.ClaimEvents(ctx, "inst/222", 5, time.Hour, now.Add(2*time.Second))
	must(t, err)
	if len(got) != 1 || got[0].Subject != "a" {
		t.Fatalf("after expiry, claimed %+v", got)
	}
}

// testAbandonInstanceRuns: a restarted instance closes the runs its dead
// predecessor left open (they block the schedule), not other instances'.
func testAbandonInstanceRuns(t *testing.T, s store.Store) {
	a := s
	ctx := ctxT(t)
	now := time.Now()
	mine, err := s.StartRun(ctx, "reconcile", now, "node1", now)
	must(t, err)
	_, err = s.StartRun(ctx, "fetch", now, "node2", now)
	must(t, err)
	if _, err := s.StartRun(ctx, "reconcile", now.Add(time.Minute), "node1", now.Add(time.Minute)); err == nil {
		t.Fatal("overlapping run started")
	}
	n, err := a.AbandonInstanceRuns(ctx, "node1")
	must(t, err)
	if n != 1 {
		t.Fatalf("abandoned %d runs, want 1", n)
	}
	if _, err := s.StartRun(ctx, "reconcile", now.Add(time.Minute), "node1", now.Add(time.Minute)); err != nil {
		t.Fatalf("schedule still blocked: %v", err)
	}
	if _, err := s.StartRun(ctx, "fetch", now.Add(time.Minute), "node1", now.Add(time.Minute)); err == nil {
		t.Fatal("another instance's running run was abandoned")
	}
	last, err := s.ListRuns(ctx, "reconcile", 10)
	must(t, err)
	for _, r := range last {
		if r.ID == mine && (r.OK || r.Finished.IsZero()) {
			t.Fatalf("abandoned run %+v", r)
		}
	}
}

// rawBody is n deterministic bytes (all byte values, not text).
func rawBody(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>11)
	}
	return b
}

func sha(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

func countRows(t *testing.T, s store.Store, q string, args ...any) int {
	t.Helper()
	var n int
	must(t, s.InTx(ctxT(t), func(tx store.Tx) error { return tx.QueryRow(ctxT(t), q, args...).Scan(&n) }))
	return n
}

// A body streamed by RecordRawStream is stored in RawChunkSize rows and
// read back whole by OpenRawBody; GetRaw reports it chunked without
// loading it. A body recorded whole is read by OpenRawBody as well.
func testRawStream(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	for _, n := range []int{0, 1, store.RawChunkSize, 2*store.RawChunkSize + store.RawChunkSize/2} {
		body := rawBody(n)
		id, err := s.RecordRawStream(ctx, store.RawInput{Source: "bank:bnp", Channel: "download:psr", Method: "DOWNLOAD", Path: "doc.xml",
			SHA256: strings.ToUpper(sha(body)), Size: int64(n), Verdicts: []store.Verdict{{Verified: true, Code: "stored"}}},
			iotest.HalfReader(bytes.NewReader(body)))
		must(t, err)
		got, err := s.GetRaw(ctx, id)
		must(t, err)
		if !got.Chunked || got.Size != int64(n) || len(got.Body) != 0 || got.SHA256 != sha(body) || got.Path != "doc.xml" ||
			len(got.Verdicts) != 1 || got.Verdicts[0].Code != "stored" {
			t.Fatalf("%d bytes: GetRaw = chunked %v size %d body %d sha %s verdicts %+v", n, got.Chunked, got.Size, len(got.Body), got.SHA256, got.Verdicts)
		}
		if rows, want := countRows(t, s, `SELECT COUNT(*) FROM raw_body_chunks WHERE body_id = (SELECT body_id FROM raw_inputs WHERE id = ?)`, id), (n+store.RawChunkSize-1)/store.RawChunkSize; rows != want {
			t.Fatalf("%d bytes in %d chunk rows, want %d", n, rows, want)
		}
		rc, size, err := s.OpenRawBody(ctx, id)
		must(t, err)
		back, err := io.ReadAll(rc)
		must(t, err)
		must(t, rc.Close())
		if size != int64(n) || !bytes.Equal(back, body) {
			t.Fatalf("%d bytes: OpenRawBody gave %d bytes (size %d), equal %v", n, len(back), size, bytes.Equal(back, body))
		}
	}
	whole := []byte("recorded whole")
	id, err := s.RecordRaw(ctx, store.RawInput{Source: "atos", Body: whole})
	must(t, err)
	got, err := s.GetRaw(ctx, id)
	must(t, err)
	if got.Chunked || got.Size != int64(len(whole)) {
		t.Fatalf("RecordRaw row: chunked %v size %d", got.Chunked, got.Size)
	}
	rc, size, err := s.OpenRawBody(ctx, id)
	must(t, err)
	back, _ := io.ReadAll(rc)
	if size != int64(len(whole)) || string(back) != string(whole) {
		t.Fatalf("OpenRawBody of a whole body: %q (%d)", back, size)
	}
	_, _, err = s.OpenRawBody(ctx, 999999)
	wantErr(t, err, store.ErrNotFound)
}

// errReader fails after n bytes.
type errReader struct {
	r io.Reader
	n int
}

func (e *errReader) Read(p []byte) (int, error) {
	if e.n <= 0 {
		return 0, errors.New("disk read error")
	}
	if len(p) > e.n {
		p = p[:e.n]
	}
	n, err := e.r.Read(p)
	e.n -= n
	return n, err
}

// A streamed body that is not what was announced stores nothing, whatever
// was written before the mismatch showed; chunks are append-only.
func testRawStreamHostile(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	body := rawBody(3*store.RawChunkSize + 5)
	in := func(mod func(*store.RawInput)) store.RawInput {
		r := store.RawInput{Source: "bank:bnp", SHA256: sha(body), Size: int64(len(body))}
		mod(&r)
		return r
	}
	for _, c := range []struct {
		name string
		in   store.RawInput
		body io.Reader
	}{
		{"other digest", in(func(r *store.RawInput) { r.SHA256 = sha([]byte("other")) }), bytes.NewReader(body)},
		{"truncated", in(func(*store.RawInput) {}), bytes.NewReader(body[:len(body)-1])},
		{"truncated at a chunk edge", in(func(*store.RawInput) {}), bytes.NewReader(body[:2*store.RawChunkSize])},
		{"longer than announced", in(func(r *store.RawInput) { r.Size = 2 * store.RawChunkSize }), bytes.NewReader(body)},
		{"read error", in(func(*store.RawInput) {}), &errReader{r: bytes.NewReader(body), n: 2*store.RawChunkSize + 10}},
		{"no digest", in(func(r *store.RawInput) { r.SHA256 = "" }), bytes.NewReader(body)},
		{"digest not hex", in(func(r *store.RawInput) { r.SHA256 = strings.Repeat("zz", 32) }), bytes.NewReader(body)},
		{"negative size", in(func(r *store.RawInput) { r.Size = -1 }), bytes.NewReader(body)},
		{"body given twice", in(func(r *store.RawInput) { r.Body = []byte("x") }), bytes.NewReader(body)},
		{"no source", in(func(r *store.RawInput) { r.Source = "" }), bytes.NewReader(body)},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := countRows(t, s, `SELECT COUNT(*) FROM raw_inputs`)
			id, err := s.RecordRawStream(ctx, c.in, c.body)
			if err == nil {
				t.Fatalf("stored as %d, want a refusal", id)
			}
			if c.name != "read error" && !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("error = %v, want store.ErrInvalid", err)
			}
			if after := countRows(t, s, `SELECT COUNT(*) FROM raw_inputs`); after != before {
				t.Fatalf("raw inputs %d -> %d after a refusal", before, after)
			}
			if n := countRows(t, s, `SELECT COUNT(*) FROM raw_bodies WHERE id NOT IN (SELECT body_id FROM raw_inputs WHERE body_id IS NOT NULL)`); n != 0 {
				t.Fatalf("%d orphan bodies left by a refusal", n)
			}
			if n := countRows(t, s, `SELECT COUNT(*) FROM raw_body_chunks WHERE body_id NOT IN (SELECT body_id FROM raw_inputs WHERE body_id IS NOT NULL)`); n != 0 {
				t.Fatalf("%d orphan chunks left by a refusal", n)
			}
		})
	}
	id, err := s.RecordRawStream(ctx, in(func(*store.RawInput) {}), bytes.NewReader(body))
	must(t, err)
	for _, q := range []string{`UPDATE raw_body_chunks SET data = ? WHERE body_id = (SELECT body_id FROM raw_inputs WHERE id = ?)`,
		`DELETE FROM raw_body_chunks WHERE body_id = (SELECT body_id FROM raw_inputs WHERE id = ?)`} {
		args := []any{id}
		if strings.HasPrefix(q, "UPDATE") {
			args = []any{[]byte("forged"), id}
		}
		err := s.InTx(ctx, func(tx store.Tx) error { _, err := tx.Exec(ctx, q, args...); return err })
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: error = %v, want append-only refusal", q, err)
		}
	}
	rc, _, err := s.OpenRawBody(ctx, id)
	must(t, err)
	back, err := io.ReadAll(rc)
	must(t, err)
	if !bytes.Equal(back, body) {
		t.Fatal("chunks changed")
	}
}

// A chunked raw input nothing keeps is pruned; its body, then named by no
// raw input, is deleted with its chunks by SweepRawBodies. One a history
// row names keeps them, whatever the sweep. A body no raw input names (a
// writer killed between its chunks and its raw input) is swept once idle
// for the time given, never before, and is never a stored document.
func testRawChunksCascade(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	body := rawBody(2*store.RawChunkSize + 1)
	old := time.Now().Add(-48 * time.Hour)
	record := func() int64 {
		id, err := s.RecordRawStream(ctx, store.RawInput{Source: "bank:bnp", SHA256: sha(body), Size: int64(len(body)), ReceivedAt: old}, bytes.NewReader(body))
		must(t, err)
		return id
	}
	chunksOf := `SELECT COUNT(*) FROM raw_body_chunks WHERE body_id = ?`
	bodyOf := func(id int64) int64 {
		var b int64
		must(t, s.InTx(ctx, func(tx store.Tx) error {
			return tx.QueryRow(ctx, `SELECT body_id FROM raw_inputs WHERE id = ?`, id).Scan(&b)
		}))
		return b
	}
	pruned, kept := record(), record()
	prunedBody, keptBody := bodyOf(pruned), bodyOf(kept)
	must(t, s.InTx(ctx, func(tx store.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO history (entity, entity_id, raw_id, at) VALUES ('ack', 'A1', ?, 1)`, kept)
		return err
	}))
	// An orphan as a killed writer leaves it: a body and two chunks,
	// last written an hour ago, that no raw input names.
	var orphan int64
	hourAgo := time.Now().Add(-time.Hour).UnixMilli()
	must(t, s.InTx(ctx, func(tx store.Tx) error {
		if err := tx.QueryRow(ctx, `INSERT INTO raw_bodies (started_at, touched_at) VALUES (?, ?) RETURNING id`, hourAgo, hourAgo).Scan(&orphan); err != nil {
			return err
		}
		for seq := 1; seq <= 2; seq++ {
			if _, err := tx.Exec(ctx, `INSERT INTO raw_body_chunks (body_id, seq, data) VALUES (?, ?, ?)`, orphan, seq, body[:store.RawChunkSize]); err != nil {
				return err
			}
		}
		return nil
	}))
	n, err := s.PruneRaw(ctx, time.Now().Add(-time.Hour), 0)
	must(t, err)
	if n != 1 {
		t.Fatalf("PruneRaw deleted %d inputs, want 1", n)
	}
	// Idle for less than 2 hours: the orphan (1 hour) is left alone, as a
	// body being written would be.
	swept, err := s.SweepRawBodies(ctx, time.Now().Add(-2*time.Hour))
	must(t, err)
	if swept != 0 || countRows(t, s, chunksOf, orphan) != 2 {
		t.Fatalf("sweep of bodies idle 2 hours: swept %d, orphan chunks %d; want 0 and 2", swept, countRows(t, s, chunksOf, orphan))
	}
	swept, err = s.SweepRawBodies(ctx, time.Now().Add(time.Minute))
	must(t, err)
	if swept != 2 {
		t.Fatalf("SweepRawBodies = %d, want 2 (the orphan and the pruned input's body)", swept)
	}
	for _, b := range []int64{orphan, prunedBody} {
		if c := countRows(t, s, chunksOf, b); c != 0 {
			t.Fatalf("body %d: %d chunks left after the sweep", b, c)
		}
		if c := countRows(t, s, `SELECT COUNT(*) FROM raw_bodies WHERE id = ?`, b); c != 0 {
			t.Fatalf("body %d left after the sweep", b)
		}
	}
	if c := countRows(t, s, chunksOf, keptBody); c != 3 {
		t.Fatalf("the kept input has %d chunks, want 3", c)
	}
	// The body of a stored input cannot be deleted by hand either.
	for _, q := range []string{`DELETE FROM raw_bodies WHERE id = ?`, `DELETE FROM raw_body_chunks WHERE body_id = ?`} {
		if err := s.InTx(ctx, func(tx store.Tx) error { _, err := tx.Exec(ctx, q, keptBody); return err }); err == nil {
			t.Errorf("%s of a stored input's body: accepted", q)
		}
	}
	rc, size, err := s.OpenRawBody(ctx, kept)
	must(t, err)
	back, err := io.ReadAll(rc)
	must(t, err)
	if size != int64(len(body)) || !bytes.Equal(back, body) {
		t.Fatal("the kept input's body changed")
	}
}

// testSerialWrites: a store that reports SerialWrites runs InTx's fns one
// at a time, so a read-then-write without a row lock loses no update
// (what the payments service relies on to skip its row lock on SQLite).
// A store that does not report it (PostgreSQL) is seen to overlap them,
// so neither answer is a guess.
func testSerialWrites(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	must(t, s.InTx(ctx, func(tx store.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO kv (ns, k, value, expires_at) VALUES (?, ?, ?, ?)`, "serial", "n", "0", 0)
		return err
	}))
	const g, each = 6, 15
	var active, overlaps atomic.Int32
	concurrently(t, g, func() error {
		for j := 0; j < each; j++ {
			err := s.InTx(ctx, func(tx store.Tx) error {
				if active.Add(1) > 1 {
					overlaps.Add(1)
				}
				defer active.Add(-1)
				var v string
				if err := tx.QueryRow(ctx, `SELECT value FROM kv WHERE ns = ? AND k = ?`, "serial", "n").Scan(&v); err != nil {
					return err
				}
				n, err := strconv.Atoi(v)
				if err != nil {
					return err
				}
				time.Sleep(200 * time.Microsecond) // the window a concurrent writer would use
				_, err = tx.Exec(ctx, `UPDATE kv SET value = ? WHERE ns = ? AND k = ?`, strconv.Itoa(n+1), "serial", "n")
				return err
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	v, _, err := s.KVGet(ctx, "serial", "n")
	must(t, err)
	if !s.SerialWrites() {
		if overlaps.Load() == 0 {
			t.Fatalf("%s: SerialWrites is false, yet none of %d transactions overlapped another", s.Driver(), g*each)
		}
		t.Logf("%s: %d overlaps, counter %s of %d without a row lock", s.Driver(), overlaps.Load(), v, g*each)
		return
	}
	if overlaps.Load() != 0 || v != strconv.Itoa(g*each) {
		t.Fatalf("%s: SerialWrites, yet %d transactions overlapped and the counter is %s, want %d", s.Driver(), overlaps.Load(), v, g*each)
	}
}

// concurrently runs worker in g goroutines at once and fails t with the
// errors they return.
func concurrently(t *testing.T, g int, worker func() error) {
	t.Helper()
	var wg sync.WaitGroup
	errc := make(chan error, g)
	for i := 0; i < g; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := worker(); err != nil {
				errc <- err
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
}
