package storetest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/internal/unixms"
)

// testTimesInMilliseconds writes through the store and reads the raw
// column values with SQL: every core time column holds Unix milliseconds
// (internal/unixms), the unit of the domain tables, not nanoseconds.
// Instants are cut to the millisecond; deadlines (a lease's end, a kv
// expiry) are rounded up so that none comes early.
func testTimesInMilliseconds(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	// Given instants with a sub-millisecond part, to tell ms from ns and
	// cutting from rounding.
	at := time.Date(2026, 12, 4, 8, 0, 0, 123456789, time.UTC)
	atMS := int64(1796371200123) // 2026-12-04T08:00:00.123Z
	if at.UnixMilli() != atMS {
		t.Fatalf("test clock: %d", at.UnixMilli())
	}
	before := time.Now().UnixMilli()

	rawID, err := s.RecordRaw(ctx, store.RawInput{Source: "atos", Body: []byte("x"), ReceivedAt: at,
		Verdicts: []store.Verdict{{Code: "received", At: at}}})
	must(t, err)
	var evID string
	must(t, s.InTx(ctx, func(tx store.Tx) error {
		if err := tx.RecordHistory(ctx, store.History{Entity: "payment", ID: "ms", To: "pending", Cause: "init", RawID: rawID, At: at}); err != nil {
			return err
		}
		e, err := tx.Emit(ctx, store.NewEvent{Type: "unit.test", Subject: "ms", Payload: json.RawMessage(`{}`)})
		evID = e.ID
		return err
	}))
	claimAt := time.Now().Add(time.Second).Truncate(time.Millisecond).Add(456789 * time.Nanosecond)
	claimed, err := s.ClaimEvents(ctx, "w-ms", 10, 10*time.Second, claimAt)
	must(t, err)
	if len(claimed) != 1 || claimed[0].ID != evID {
		t.Fatalf("claimed %+v", claimed)
	}
	must(t, s.ExtendLease(ctx, evID, "w-ms", at.Add(time.Hour)))
	must(t, s.KVSet(ctx, "ms", "k", "v", time.Hour))
	_, err = s.StatePut(ctx, "ms", "k", []byte("v"), 0)
	must(t, err)
	runID, err := s.StartRun(ctx, "ms", at, "i-ms", at.Add(time.Second))
	must(t, err)
	must(t, s.FinishRun(ctx, runID, true, "", "", at.Add(2*time.Second)))
	after := time.Now().UnixMilli() + 1

	var received, verdictAt, historyAt, lockedUntil, attemptStarted, kvExpires, scheduled, started, finished int64
	must(t, s.InTx(ctx, func(tx store.Tx) error {
		for _, q := range []struct {
			sql  string
			args []any
			dest *int64
		}{
			{`SELECT received_at FROM raw_inputs WHERE id = ?`, []any{rawID}, &received},
			{`SELECT at FROM raw_verdicts WHERE raw_id = ?`, []any{rawID}, &verdictAt},
			{`SELECT at FROM history WHERE entity_id = ?`, []any{"ms"}, &historyAt},
			{`SELECT locked_until FROM events WHERE id = ?`, []any{evID}, &lockedUntil},
			{`SELECT started FROM event_attempts WHERE event_id = ?`, []any{evID}, &attemptStarted},
			{`SELECT expires_at FROM kv WHERE ns = ? AND k = ?`, []any{"ms", "k"}, &kvExpires},
			{`SELECT scheduled FROM schedule_runs WHERE id = ?`, []any{runID}, &scheduled},
			{`SELECT started FROM schedule_runs WHERE id = ?`, []any{runID}, &started},
			{`SELECT finished FROM schedule_runs WHERE id = ?`, []any{runID}, &finished},
		} {
			if err := tx.QueryRow(ctx, q.sql, q.args...).Scan(q.dest); err != nil {
				return err
			}
		}
		return nil
	}))
	for _, c := range []struct {
		name      string
		got, want int64
	}{
		{"raw_inputs.received_at", received, atMS},
		{"raw_verdicts.at", verdictAt, atMS},
		{"history.at", historyAt, atMS},
		{"events.locked_until (ExtendLease, rounded up)", lockedUntil, atMS + 3600_000 + 1},
		{"event_attempts.started", attemptStarted, unixms.From(claimAt)},
		{"schedule_runs.scheduled", scheduled, atMS},
		{"schedule_runs.started", started, atMS + 1000},
		{"schedule_runs.finished", finished, atMS + 2000},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d (Unix ms)", c.name, c.got, c.want)
		}
	}
	if min, max := before+3600_000, after+3600_000; kvExpires < min || kvExpires > max {
		t.Errorf("kv.expires_at = %d, want Unix ms in [%d, %d]", kvExpires, min, max)
	}

	// Times the store takes from its clock: between before and after.
	must(t, s.InTx(ctx, func(tx store.Tx) error {
		for _, q := range []struct{ name, sql string }{
			{"events.created_at", `SELECT created_at FROM events WHERE id = '` + evID + `'`},
			{"events.next_attempt", `SELECT next_attempt FROM events WHERE id = '` + evID + `'`},
			{"plugin_state.updated_at", `SELECT updated_at FROM plugin_state WHERE plugin = 'ms'`},
			{"schema_migrations.applied_at (latest)", `SELECT MAX(applied_at) FROM schema_migrations`},
			{"schema_migrations.applied_at (earliest)", `SELECT MIN(applied_at) FROM schema_migrations`},
		} {
			var v int64
			if err := tx.QueryRow(ctx, q.sql).Scan(&v); err != nil {
				return err
			}
			// applied_at predates this test by the store's open; a day back
			// is still milliseconds, nanoseconds are a million times more.
			if v < before-86400_000 || v > after {
				t.Errorf("%s = %d, want Unix ms in [%d, %d]", q.name, v, before-86400_000, after)
			}
		}
		return nil
	}))
	// The events.updated_at of the claim is the claim's now.
	ev, err := s.GetEvent(ctx, evID)
	must(t, err)
	if !ev.UpdatedAt.Equal(unixms.Time(unixms.From(claimAt))) || !ev.LockedUntil.Equal(unixms.Time(atMS+3600_000+1)) {
		t.Errorf("event read back: updated %v locked until %v", ev.UpdatedAt, ev.LockedUntil)
	}
	// And read back through the store: the same instants, to the ms.
	got, err := s.GetRaw(ctx, rawID)
	must(t, err)
	if !got.ReceivedAt.Equal(at.Truncate(time.Millisecond)) || !got.Verdicts[0].At.Equal(at.Truncate(time.Millisecond)) {
		t.Errorf("raw read back: received %v, verdict %v; want %v", got.ReceivedAt, got.Verdicts[0].At, at.Truncate(time.Millisecond))
	}
}
