package server

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/daemon/store/postgres"
	"github.com/acquit/acquit/daemon/store/sqlite"
	"github.com/acquit/acquit/internal/pgtest"
)

// wantRawRefs are the columns of the daemon's schema that keep a raw input
// from the pruning (state.raw_retention): a payment's deciding input, its
// timeline and operations, an acknowledgement's document, history.
var wantRawRefs = []string{"acks.raw_id", "history.raw_id", "payment_operations.raw_id",
	"payment_responses.raw_id", "payments.decided_raw_id"}

// rawRefser is what both drivers' stores offer beyond store.Store.
type rawRefser interface {
	RawReferences(ctx context.Context) (refs, parts []string, err error)
}

// TestRawReferencesOfTheDaemonSchema: store.PruneRaw finds every column of
// the daemon's schema naming raw inputs (by its name: raw_id, *_raw_id),
// so a verified or referenced input is never pruned, and each is indexed,
// so the pruning does not scan a table per input. A new domain column
// naming raw inputs must be named so (and indexed): this test lists them.
func TestRawReferencesOfTheDaemonSchema(t *testing.T) {
	ctx := context.Background()
	check := func(t *testing.T, s store.Store, indexed func(table, column string) bool) {
		refs, parts, err := s.(rawRefser).RawReferences(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(refs, wantRawRefs) || !reflect.DeepEqual(parts, []string{"raw_chunks", "raw_verdicts"}) {
			t.Fatalf("references = %v, parts = %v; want %v and [raw_chunks raw_verdicts]", refs, parts, wantRawRefs)
		}
		for _, r := range refs {
			table, column, _ := strings.Cut(r, ".")
			if !indexed(table, column) {
				t.Errorf("%s is not the first column of an index: the pruning would scan %s for each input", r, table)
			}
		}
	}
	t.Run("sqlite", func(t *testing.T) {
		s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "acquit.db"), store.WithMigrations(Migrations()...))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		check(t, s, func(table, column string) bool {
			var n int
			err := s.R.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_index_list(?) l, pragma_index_info(l.name) i
				WHERE i.seqno = 0 AND i.name = ?`, table, column).Scan(&n)
			return err == nil && n > 0
		})
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := pgtest.DSN(t)
		s, err := postgres.Open(ctx, dsn, store.WithMigrations(Migrations()...))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		check(t, s, func(table, column string) bool {
			var n int
			err := s.R.QueryRowContext(ctx, `SELECT COUNT(*) FROM pg_index x
				JOIN pg_class c ON c.oid = x.indrelid JOIN pg_namespace ns ON ns.oid = c.relnamespace
				JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = x.indkey[0]
				WHERE ns.nspname = current_schema() AND c.relname = $1 AND a.attname = $2`, table, column).Scan(&n)
			return err == nil && n > 0
		})
	})
}

// TestPruneRawProbesUseIndexes: on SQLite (the default store), the query
// selecting prunable inputs probes raw_verdicts and every referencing
// table through an index, never by scanning it once per input. The
// referencing columns have partial indexes (WHERE raw_id <> 0): the query
// must say so for them to be usable.
func TestPruneRawProbesUseIndexes(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "acquit.db"), store.WithMigrations(Migrations()...))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	plan, err := s.ExplainPruneRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, table := range append([]string{"raw_inputs", "raw_verdicts"}, wantRawRefs...) {
		table, _, _ = strings.Cut(table, ".")
		searched := false
		for _, step := range plan {
			if strings.HasPrefix(step, "SCAN "+table) || strings.HasPrefix(step, "SCAN r") || strings.HasPrefix(step, "SCAN v") {
				t.Errorf("plan scans a whole table: %q\n%s", step, strings.Join(plan, "\n"))
			}
			if strings.Contains(step, "INDEX") && (strings.HasPrefix(step, "SEARCH "+table) ||
				table == "raw_inputs" && strings.HasPrefix(step, "SEARCH r") || table == "raw_verdicts" && strings.HasPrefix(step, "SEARCH v")) {
				searched = true
			}
		}
		if !searched {
			t.Errorf("no index search of %s in the plan:\n%s", table, strings.Join(plan, "\n"))
		}
	}
}
