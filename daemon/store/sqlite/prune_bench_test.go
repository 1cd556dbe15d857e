package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/daemon/store/sqlite"
)

// BenchmarkPruneRawNothingToDo is the hourly pruning run over a database
// whose 100k old raw inputs are all verified (nothing to delete). The
// process's first run walks them all (its time is logged); the runs
// measured resume where it stopped, as every later hourly run does.
func BenchmarkPruneRawNothingToDo(b *testing.B) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "acquit.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const n = 100_000
	old := time.Now().Add(-60 * 24 * time.Hour)
	for i := 0; i < n; i += 1000 {
		if err := s.InTx(ctx, func(tx store.Tx) error {
			for j := i; j < i+1000; j++ {
				if _, err := tx.Exec(ctx, `INSERT INTO raw_inputs (source, body, received_at, sha256) VALUES (?, ?, ?, ?)`,
					"atos", []byte(fmt.Sprint("Data=", j)), old.Add(time.Duration(j)*time.Millisecond).UnixNano(), "x"); err != nil {
					return err
				}
			}
			_, err := tx.Exec(ctx, `INSERT INTO raw_verdicts (raw_id, verified, code, at) SELECT id, 1, 'decided', 0 FROM raw_inputs WHERE id > ?`, i)
			return err
		}); err != nil {
			b.Fatal(err)
		}
	}
	start := time.Now()
	if got, err := s.PruneRaw(ctx, time.Now().Add(-30*24*time.Hour), 500); err != nil || got != 0 {
		b.Fatal(got, err)
	}
	b.Logf("first run over %d old verified inputs: %s", n, time.Since(start))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got, err := s.PruneRaw(ctx, time.Now().Add(-30*24*time.Hour), 500)
		if err != nil || got != 0 {
			b.Fatal(got, err)
		}
	}
}
