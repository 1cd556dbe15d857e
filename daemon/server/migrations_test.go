package server

import (
	"compress/gzip"
	"context"
	"database/sql"
	"io"
	"os"
	"path/filepath"
	"testing"

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
// data are as they were, and only versions added since are applied.
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
