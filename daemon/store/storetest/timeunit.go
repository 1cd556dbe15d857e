package storetest

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"maps"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/internal/unixms"
)

// TimeUnitMigration is what RunTimeUnitMigration needs of a driver.
type TimeUnitMigration struct {
	// Driver is "sqlite" or "postgres".
	Driver string
	// Core is the driver's core migration set.
	Core store.MigrationSet
	// Lock and Rebind are the driver's store.MigrateOptions.
	Lock   string
	Rebind func(string) string
	// DB is an empty database, Open opens a store on it (applying the
	// whole core set).
	DB   *sql.DB
	Open func() (store.Store, error)
}

// timeUnitVersion is the core migration converting nanoseconds to
// milliseconds (007_times_in_ms).
const timeUnitVersion = 7

// coreBefore is set with the files numbered below v only: the schema an
// older acquit made.
func coreBefore(t *testing.T, set store.MigrationSet, v int) store.MigrationSet {
	t.Helper()
	entries, err := fs.ReadDir(set.FS, ".")
	if err != nil {
		t.Fatal(err)
	}
	old := fstest.MapFS{}
	for _, e := range entries {
		n, err := strconv.Atoi(strings.SplitN(e.Name(), "_", 2)[0])
		if err != nil || n >= v {
			continue
		}
		b, err := fs.ReadFile(set.FS, e.Name())
		if err != nil {
			t.Fatal(err)
		}
		old[e.Name()] = &fstest.MapFile{Data: b}
	}
	set.FS = old
	return set
}

// RunTimeUnitMigration makes the core schema as an acquit older than
// migration 7 did (its migrations, then rows holding Unix nanoseconds in
// every core time column, as that code wrote them), opens the store of
// this build on it and checks: every time reads back as the same instant
// to the millisecond (deadlines rounded up), comparisons with the store's
// clock work (a due event is claimed, a leased one is not, a kv entry is
// alive), three manual runs of a schedule within two milliseconds (two
// in the first) all survive in order, and raw_inputs, raw_verdicts and history still refuse UPDATE
// and DELETE.
func RunTimeUnitMigration(t *testing.T, m TimeUnitMigration) {
	ctx := context.Background()
	q := m.Rebind
	if q == nil {
		q = func(s string) string { return s }
	}
	if _, err := store.ApplyMigrations(ctx, m.DB, store.MigrateOptions{Driver: m.Driver, Lock: m.Lock, Placeholder: m.Rebind},
		[]store.MigrationSet{coreBefore(t, m.Core, timeUnitVersion)}); err != nil {
		t.Fatalf("old core schema: %v", err)
	}
	ms := func(tm time.Time) time.Time { return tm.Truncate(time.Millisecond) }
	at := time.Date(2026, 12, 4, 8, 0, 0, 123456789, time.UTC)
	now := time.Now()
	leaseEnd := now.Add(time.Hour).Truncate(time.Millisecond).Add(1) // 1 ns past a millisecond
	kvEnd := now.Add(2 * time.Hour).Truncate(time.Millisecond).Add(999_999)
	manual := time.Date(2026, 12, 4, 9, 0, 0, 500_100_000, time.UTC) // two runs 300 µs apart

	insert := func(query string, args ...any) int64 {
		t.Helper()
		var id int64
		if err := m.DB.QueryRowContext(ctx, q(query), args...).Scan(&id); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		return id
	}
	exec := func(query string, args ...any) {
		t.Helper()
		if _, err := m.DB.ExecContext(ctx, q(query), args...); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
	}
	rawID := insert(`INSERT INTO raw_inputs (source, channel, remote_addr, method, path, headers, body, received_at, sha256)
		VALUES ('atos', 'automatic', '', 'POST', '/atos', '{}', ?, ?, ?) RETURNING id`,
		[]byte("x"), at.UnixNano(), "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881")
	insert(`INSERT INTO raw_verdicts (raw_id, verified, code, message, subject, at) VALUES (?, 1, 'ok', '', 'old', ?) RETURNING id`,
		rawID, at.Add(time.Millisecond).UnixNano())
	insert(`INSERT INTO history (entity, entity_id, from_state, to_state, cause, raw_id, details, at)
		VALUES ('payment', 'old', '', 'pending', 'init', ?, '{}', ?) RETURNING id`, rawID, at.Add(2*time.Millisecond).UnixNano())
	evCols := `(id, type, subject, payload, state, attempts, next_attempt, last_error, created_at, updated_at, locked_by, locked_until)`
	insert(`INSERT INTO events `+evCols+` VALUES ('ev-due', 'old.due', 'due', '{}', 'pending', 0, ?, '', ?, ?, '', 0) RETURNING seq`,
		at.UnixNano(), at.UnixNano(), at.UnixNano())
	insert(`INSERT INTO events `+evCols+` VALUES ('ev-leased', 'old.leased', 'leased', '{}', 'running', 1, ?, '', ?, ?, 'old-worker', ?) RETURNING seq`,
		at.UnixNano(), at.UnixNano(), at.UnixNano(), leaseEnd.UnixNano())
	insert(`INSERT INTO event_attempts (event_id, n, worker, started, finished, ok, error) VALUES ('ev-leased', 1, 'old-worker', ?, 0, 0, '') RETURNING id`,
		at.UnixNano())
	exec(`INSERT INTO kv (ns, k, value, expires_at) VALUES ('old', 'k', 'v', ?)`, kvEnd.UnixNano())
	exec(`INSERT INTO kv (ns, k, value, expires_at) VALUES ('old', 'forever', 'v', 0)`)
	exec(`INSERT INTO plugin_state (plugin, k, value, version, updated_at) VALUES ('old', 'k', ?, 3, ?)`, []byte("s"), at.UnixNano())
	// run0 and run1 share a millisecond; run2 falls in the next one, where
	// run1 has to move: all three must stay apart.
	for i, d := range []time.Duration{0, 300 * time.Microsecond, 900 * time.Microsecond} {
		insert(`INSERT INTO schedule_runs (schedule, scheduled, started, finished, ok, summary, error, instance)
			VALUES ('manual', ?, ?, ?, 1, ?, '', 'old') RETURNING id`,
			manual.Add(d).UnixNano(), manual.Add(d).UnixNano(), manual.Add(d+100*time.Microsecond).UnixNano(), "run"+strconv.Itoa(i))
	}
	recorded := map[int]int64{} // applied_at in ms, as this build's migrate.go wrote it
	rows, err := m.DB.QueryContext(ctx, `SELECT version, applied_at FROM schema_migrations`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var v int
		var a int64
		if err := rows.Scan(&v, &a); err != nil {
			t.Fatal(err)
		}
		recorded[v] = a
	}
	if err := rows.Close(); err != nil || len(recorded) == 0 {
		t.Fatalf("old schema_migrations: %v, %v", recorded, err)
	}
	// The old code wrote nanoseconds into schema_migrations too.
	exec(`UPDATE schema_migrations SET applied_at = applied_at * 1000000`)

	triggersBefore := triggerDefs(t, m)
	s, err := m.Open()
	if err != nil {
		t.Fatalf("open the old database: %v", err)
	}
	defer s.Close()
	// Later migrations may add triggers (008: raw_body_chunks); those the
	// old database had must come through the conversion unchanged.
	after := triggerDefs(t, m)
	kept := maps.Clone(after)
	maps.DeleteFunc(kept, func(name, _ string) bool { _, ok := triggersBefore[name]; return !ok })
	if !maps.Equal(kept, triggersBefore) {
		t.Errorf("triggers changed by the conversion:\nbefore %q\nafter  %q", triggersBefore, after)
	}

	got, err := s.GetRaw(ctx, rawID)
	must(t, err)
	if !got.ReceivedAt.Equal(ms(at)) || len(got.Verdicts) != 1 || !got.Verdicts[0].At.Equal(ms(at.Add(time.Millisecond))) {
		t.Errorf("raw input: received %v, verdicts %+v; want %v, %v", got.ReceivedAt, got.Verdicts, ms(at), ms(at.Add(time.Millisecond)))
	}
	must(t, s.InTx(ctx, func(tx store.Tx) error {
		h, err := store.ReadHistory(ctx, tx, "payment", "old")
		if err != nil {
			return err
		}
		if len(h) != 1 || !h[0].At.Equal(ms(at.Add(2*time.Millisecond))) {
			t.Errorf("history %+v, want at %v", h, ms(at.Add(2*time.Millisecond)))
		}
		return nil
	}))
	due, err := s.GetEvent(ctx, "ev-due")
	must(t, err)
	if !due.CreatedAt.Equal(ms(at)) || !due.UpdatedAt.Equal(ms(at)) || !due.NextAttempt.Equal(ms(at)) || !due.LockedUntil.IsZero() {
		t.Errorf("due event times %v %v %v %v", due.CreatedAt, due.UpdatedAt, due.NextAttempt, due.LockedUntil)
	}
	leased, err := s.GetEvent(ctx, "ev-leased")
	must(t, err)
	if want := ms(leaseEnd).Add(time.Millisecond); !leased.LockedUntil.Equal(want) {
		t.Errorf("lease ends %v, want %v (rounded up)", leased.LockedUntil, want)
	}
	atts, err := s.EventAttempts(ctx, "ev-leased")
	must(t, err)
	if len(atts) != 1 || !atts[0].Started.Equal(ms(at)) || !atts[0].Finished.IsZero() {
		t.Errorf("attempts %+v", atts)
	}
	// Compared with the store's clock: the due event is claimed, the
	// leased one is not (its lease runs for an hour still).
	claimed, err := s.ClaimEvents(ctx, "new-worker", 10, time.Minute, time.Now())
	must(t, err)
	if len(claimed) != 1 || claimed[0].ID != "ev-due" {
		t.Errorf("claimed %v, want [ev-due]", ids(claimed))
	}
	must(t, s.CompleteEvent(ctx, "ev-due", "new-worker"))
	claimed, err = s.ClaimEvents(ctx, "new-worker", 10, time.Minute, leaseEnd.Add(time.Millisecond))
	must(t, err)
	if len(claimed) != 1 || claimed[0].ID != "ev-leased" {
		t.Errorf("claimed after the lease %v, want [ev-leased]", ids(claimed))
	}
	for _, k := range []string{"k", "forever"} {
		if v, ok, err := s.KVGet(ctx, "old", k); err != nil || !ok || v != "v" {
			t.Errorf("kv old/%s = %q %v %v, want alive", k, v, ok, err)
		}
	}
	if v, ver, err := s.StateGet(ctx, "old", "k"); err != nil || string(v) != "s" || ver != 3 {
		t.Errorf("plugin state %q %d %v", v, ver, err)
	}
	runs, err := s.ListRuns(ctx, "manual", 10)
	must(t, err)
	if len(runs) != 3 || runs[2].Summary != "run0" || !runs[2].Scheduled.Equal(ms(manual)) ||
		runs[1].Summary != "run1" || !runs[1].Scheduled.Equal(ms(manual).Add(time.Millisecond)) ||
		runs[0].Summary != "run2" || !runs[0].Scheduled.Equal(ms(manual).Add(2*time.Millisecond)) ||
		!runs[2].Finished.Equal(ms(manual.Add(100*time.Microsecond))) || !runs[1].Started.Equal(ms(manual.Add(300*time.Microsecond))) {
		t.Errorf("manual runs %+v: want all three, 1 ms apart, in order", runs)
	}

	must(t, s.InTx(ctx, func(tx store.Tx) error {
		// The raw values: milliseconds, and applied_at too (recorded
		// before the conversion in ns, after it in ms).
		var kvExp int64
		if err := tx.QueryRow(ctx, `SELECT expires_at FROM kv WHERE ns = 'old' AND k = 'k'`).Scan(&kvExp); err != nil {
			return err
		}
		if want := unixms.Ceil(kvEnd); kvExp != want {
			t.Errorf("kv.expires_at = %d, want %d (rounded up)", kvExp, want)
		}
		rows, err := tx.Query(ctx, `SELECT version, applied_at FROM schema_migrations ORDER BY version`)
		if err != nil {
			return err
		}
		defer rows.Close()
		seen := map[int]bool{}
		for rows.Next() {
			var v int
			var a int64
			if err := rows.Scan(&v, &a); err != nil {
				return err
			}
			if v > timeUnitVersion {
				continue // a later migration, applied by the same Open
			}
			seen[v] = true
			if a < unixms.From(now.Add(-time.Hour)) || a > unixms.From(time.Now())+1 {
				t.Errorf("schema_migrations version %d applied_at %d: not Unix ms of this test", v, a)
			}
			if old, ok := recorded[v]; ok && a != old {
				t.Errorf("version %d applied_at %d, want %d (the instant recorded, in ms)", v, a, old)
			}
		}
		if !seen[timeUnitVersion] || len(seen) != len(recorded)+1 {
			t.Errorf("versions recorded %v; want the old ones %v and %d", seen, recorded, timeUnitVersion)
		}
		return rows.Err()
	}))

	// The append-only triggers still refuse.
	for _, c := range []struct {
		q    string
		args []any
	}{
		{`UPDATE raw_inputs SET received_at = received_at + 1 WHERE id = ?`, []any{rawID}},
		{`DELETE FROM raw_inputs WHERE id = ?`, []any{rawID}},
		{`UPDATE raw_verdicts SET at = 0 WHERE raw_id = ?`, []any{rawID}},
		{`DELETE FROM raw_verdicts WHERE raw_id = ?`, []any{rawID}},
		{`UPDATE history SET at = 0 WHERE entity_id = ?`, []any{"old"}},
		{`DELETE FROM history WHERE entity_id = ?`, []any{"old"}},
	} {
		err := s.InTx(ctx, func(tx store.Tx) error {
			_, err := tx.Exec(ctx, c.q, c.args...)
			return err
		})
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s after the conversion: error = %v, want append-only refusal", c.q, err)
		}
	}
	got, err = s.GetRaw(ctx, rawID)
	must(t, err)
	if !got.ReceivedAt.Equal(ms(at)) || len(got.Verdicts) != 1 {
		t.Errorf("raw input changed: %+v", got)
	}

	// An acquit older than the conversion refuses the converted database
	// (it would read milliseconds as nanoseconds): version 7 is in its
	// core range and unknown to it.
	_, err = store.ApplyMigrations(ctx, m.DB, store.MigrateOptions{Driver: m.Driver, Lock: m.Lock, Placeholder: m.Rebind},
		[]store.MigrationSet{coreBefore(t, m.Core, timeUnitVersion)})
	if !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "newer acquit") {
		t.Errorf("older core set on the converted database: %v, want ErrConflict (migrated by a newer acquit)", err)
	}
}

// triggerDefs returns the definition of every trigger of the schema, by
// name, as the database prints it.
func triggerDefs(t *testing.T, m TimeUnitMigration) map[string]string {
	t.Helper()
	query := `SELECT name, sql FROM sqlite_master WHERE type = 'trigger'`
	if m.Driver == "postgres" {
		query = `SELECT t.tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
			WHERE NOT t.tgisinternal AND c.relnamespace = current_schema()::regnamespace`
	}
	rows, err := m.DB.QueryContext(context.Background(), query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var name, def string
		if err := rows.Scan(&name, &def); err != nil {
			t.Fatal(err)
		}
		out[name] = def
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) < 3 {
		t.Fatalf("triggers %v: want at least the append-only ones", out)
	}
	return out
}
