package storetest

import (
	"context"
	"errors"
	"testing"
	"testing/fstest"

	"github.com/acquit/acquit/daemon/store"
)

// Reopener opens (again) one and the same database with opts; each call is
// a fresh handle on it (another daemon start). The suite closes what it
// opens.
type Reopener func(opts ...store.Option) (store.Store, error)

// widgets is a domain set made of the given files among two portable
// migrations, 500 and 501.
func widgets(files ...string) store.MigrationSet {
	all := map[string]string{
		"500_widgets.sql":     "CREATE TABLE widgets (id TEXT PRIMARY KEY, n BIGINT NOT NULL);",
		"501_widget_name.sql": "ALTER TABLE widgets ADD COLUMN name TEXT NOT NULL DEFAULT '';",
	}
	fs := fstest.MapFS{}
	for _, f := range files {
		fs[f] = &fstest.MapFile{Data: []byte(all[f])}
	}
	return store.MigrationSet{Name: "widgets", FS: fs, Min: 500, Max: 599}
}

// RunMigrations checks how Open applies migration sets given explicitly:
// a set not given creates nothing; a version already recorded is not run
// again; a database recording a version the given set does not have (a
// newer build's, or another set's) is refused without touching it; two
// sets claiming one version are refused before anything is applied.
func RunMigrations(t *testing.T, open Reopener) {
	ctx := context.Background()
	hasWidgets := func(s store.Store) bool {
		return s.InTx(ctx, func(tx store.Tx) error {
			var n int
			return tx.QueryRow(ctx, `SELECT COUNT(*) FROM widgets`).Scan(&n)
		}) == nil
	}
	versions := func(s store.Store) map[int]string {
		out := map[int]string{}
		must(t, s.InTx(ctx, func(tx store.Tx) error {
			rows, err := tx.Query(ctx, `SELECT version, set_name FROM schema_migrations`)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var v int
				var set string
				if err := rows.Scan(&v, &set); err != nil {
					return err
				}
				out[v] = set
			}
			return rows.Err()
		}))
		return out
	}
	reopen := func(opts ...store.Option) store.Store {
		t.Helper()
		s, err := open(opts...)
		must(t, err)
		return s
	}
	refused := func(why string, target error, opts ...store.Option) {
		t.Helper()
		s, err := open(opts...)
		if err == nil {
			s.Close()
			t.Fatalf("%s: Open succeeded", why)
		}
		if !errors.Is(err, target) {
			t.Fatalf("%s: error = %v, want %v", why, err, target)
		}
	}

	// Core only: no domain table, no domain version.
	s := reopen()
	if hasWidgets(s) {
		t.Fatal("a store opened with the core set only has the widgets table")
	}
	core := versions(s)
	for v := range core {
		if v >= 100 {
			t.Fatalf("core-only store records version %d", v)
		}
	}
	s.Close()

	// Two sets claiming version 500: refused, nothing applied.
	other := store.MigrationSet{Name: "gadgets", Min: 500, Max: 500, FS: fstest.MapFS{
		"500_gadgets.sql": {Data: []byte("CREATE TABLE gadgets (id TEXT);")}}}
	refused("two sets with version 500", store.ErrConflict, store.WithMigrations(widgets("500_widgets.sql"), other))

	// The set given: applied once; reopening applies nothing again.
	s = reopen(store.WithMigrations(widgets("500_widgets.sql", "501_widget_name.sql")))
	if !hasWidgets(s) {
		t.Fatal("widgets set given, no widgets table")
	}
	must(t, s.InTx(ctx, func(tx store.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO widgets (id, n, name) VALUES ('w1', 1, 'one')`)
		return err
	}))
	before := versions(s)
	s.Close()
	s = reopen(store.WithMigrations(widgets("500_widgets.sql", "501_widget_name.sql")))
	if got := versions(s); len(got) != len(before) || got[500] != "widgets" || got[501] != "widgets" {
		t.Fatalf("versions after reopen %v, before %v", got, before)
	}
	s.Close()

	// Opening without the set (a tool needing the core only) leaves the
	// widgets alone.
	s = reopen()
	if !hasWidgets(s) {
		t.Fatal("opening core-only dropped the widgets table")
	}
	s.Close()

	// A build that lacks 501 (older), or gives the range to another set:
	// refused, the database untouched.
	refused("database records 501, set lacks it", store.ErrConflict, store.WithMigrations(widgets("500_widgets.sql")))
	renamed := widgets("500_widgets.sql", "501_widget_name.sql")
	renamed.Name = "gizmos"
	refused("range recorded for another set", store.ErrConflict, store.WithMigrations(renamed))

	s = reopen(store.WithMigrations(widgets("500_widgets.sql", "501_widget_name.sql")))
	defer s.Close()
	var name string
	must(t, s.InTx(ctx, func(tx store.Tx) error {
		return tx.QueryRow(ctx, `SELECT name FROM widgets WHERE id = 'w1'`).Scan(&name)
	}))
	if name != "one" {
		t.Fatalf("widget w1 name %q after refused opens", name)
	}
}
