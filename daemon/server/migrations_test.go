package server

import (
	"compress/gzip"
	"context"
	"database/sql"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acquit/acquit/daemon/config"
	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/daemon/store/sqlite"
)

type migrationRow struct {
	set, name string
	appliedAt int64
}

func migrationRows(t *testing.T, db interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}) map[int]migrationRow {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), `SELECT version, set_name, name, applied_at FROM schema_migrations`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int]migrationRow{}
	for rows.Next() {
		var v int
		var r migrationRow
		if err := rows.Scan(&v, &r.set, &r.name, &r.appliedAt); err != nil {
			t.Fatal(err)
		}
		out[v] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func sqliteTables(t *testing.T, s *sqlite.Store) map[string]bool {
	t.Helper()
	rows, err := s.W.QueryContext(context.Background(), `SELECT name FROM sqlite_master WHERE type = 'table'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out[n] = true
	}
	return out
}

// TestStoreHasTheTablesOfTheSetsGiven: the store packages apply the core
// set only; the domain tables exist because the daemon passes payments'
// and transmissions' sets (there is no registration on import any more).
func TestStoreHasTheTablesOfTheSetsGiven(t *testing.T) {
	ctx := context.Background()
	core, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "core.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer core.Close()
	tables := sqliteTables(t, core)
	if !tables["events"] || !tables["schema_migrations"] {
		t.Fatalf("core tables missing: %v", tables)
	}
	for _, domain := range []string{"payments", "payment_responses", "transmissions", "transmission_txs"} {
		if tables[domain] {
			t.Errorf("core-only store has table %s", domain)
		}
	}

	cfg := &config.Config{}
	cfg.State.Driver, cfg.State.Path = "sqlite", filepath.Join(t.TempDir(), "acquit.db")
	st, err := (&Daemon{cfg: cfg}).openStore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tables = sqliteTables(t, st.(*sqlite.Store))
	for _, domain := range []string{"events", "payments", "payment_responses", "transmissions", "transmission_txs"} {
		if !tables[domain] {
			t.Errorf("daemon store lacks table %s", domain)
		}
	}
}

// TestOldDatabaseOpensUnchanged: testdata/acquit-897f72e.db.gz was created
// by commit 897f72e, the last one applying migration sets registered from
// init() (with a payment, a transmission and an event in it). The daemon's
// explicit sets recognise every version it records (same set names and
// numbers): none is applied again or refused, the recorded rows and the
// data are as they were, and only versions added since are applied. The
// fixture's times were Unix nanoseconds: migration 7 made them the same
// instants in Unix milliseconds (applied_at, the event's times), and the
// append-only triggers still refuse UPDATE and DELETE afterwards.
func TestOldDatabaseOpensUnchanged(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "acquit.db")
	gunzip(t, "testdata/acquit-897f72e.db.gz", path)

	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	before := migrationRows(t, raw)
	raw.Close()
	if len(before) != 8 || before[100].set != "payments" || before[200].set != "transmissions" {
		t.Fatalf("fixture records %v", before)
	}

	cfg := &config.Config{}
	cfg.State.Driver, cfg.State.Path = "sqlite", path
	st, err := (&Daemon{cfg: cfg}).openStore(ctx)
	if err != nil {
		t.Fatalf("old database refused: %v", err)
	}
	defer st.Close()
	s := st.(*sqlite.Store)
	after := migrationRows(t, s.W)
	for v, r := range before {
		r.appliedAt /= 1e6 // nanoseconds made milliseconds, the same instant
		if after[v] != r {
			t.Errorf("version %d: recorded %+v, now %+v", v, r, after[v])
		}
	}
	known := map[int]string{}
	migs, err := store.CollectMigrations("sqlite", append([]store.MigrationSet{sqlite.CoreMigrations()}, Migrations()...))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range migs {
		known[m.Version] = m.Set
	}
	for v, r := range after {
		if _, old := before[v]; !old && known[v] != r.set {
			t.Errorf("version %d (%+v) applied, not one of this build's", v, r)
		}
	}
	if len(after) != len(known) {
		t.Errorf("%d versions recorded, this build has %d", len(after), len(known))
	}
	var ref, tid, typ string
	if err := s.W.QueryRowContext(ctx, `SELECT reference FROM payments`).Scan(&ref); err != nil || ref != "P-FIXTURE" {
		t.Errorf("payment %q: %v", ref, err)
	}
	if err := s.W.QueryRowContext(ctx, `SELECT id FROM transmissions`).Scan(&tid); err != nil || tid != "T-FIXTURE" {
		t.Errorf("transmission %q: %v", tid, err)
	}
	if err := s.W.QueryRowContext(ctx, `SELECT type FROM events`).Scan(&typ); err != nil || typ != "fixture.created" {
		t.Errorf("event %q: %v", typ, err)
	}
	// The fixture's event was created at 1796374302250056244 ns.
	created := time.Unix(0, 1796374302250056244).UTC().Truncate(time.Millisecond)
	evs, err := s.ListEvents(ctx, store.EventFilter{})
	if err != nil || len(evs) != 1 {
		t.Fatalf("events %v: %v", evs, err)
	}
	if e := evs[0]; !e.CreatedAt.Equal(created) || !e.UpdatedAt.Equal(created) || !e.NextAttempt.Equal(created) || !e.LockedUntil.IsZero() {
		t.Errorf("event times %v %v %v %v, want %v", e.CreatedAt, e.UpdatedAt, e.NextAttempt, e.LockedUntil, created)
	}
	// Due for the store's clock: claimed.
	if got, err := s.ClaimEvents(ctx, "w", 10, time.Minute, time.Now()); err != nil || len(got) != 1 {
		t.Errorf("claim the fixture's due event: %v, %v", got, err)
	}
	id, err := s.RecordRaw(ctx, store.RawInput{Source: "atos", Body: []byte("x"), Verdicts: []store.Verdict{{Code: "received"}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`UPDATE raw_inputs SET received_at = 0 WHERE id = ?`, `DELETE FROM raw_inputs WHERE id = ?`,
		`UPDATE raw_verdicts SET at = 0 WHERE raw_id = ?`, `UPDATE history SET at = 0 WHERE raw_id = ?`, `DELETE FROM history WHERE raw_id = ?`,
	} {
		if strings.Contains(q, "history") {
			if err := s.InTx(ctx, func(tx store.Tx) error {
				return tx.RecordHistory(ctx, store.History{Entity: "payment", ID: "P-FIXTURE", To: "x", RawID: id})
			}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.W.ExecContext(ctx, q, id); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: %v, want append-only refusal", q, err)
		}
	}
}

func gunzip(t *testing.T, src, dst string) {
	t.Helper()
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, zr); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
