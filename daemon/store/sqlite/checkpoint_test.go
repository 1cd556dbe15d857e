package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/daemon/store/sqlite"
)

// TestBackgroundCheckpoint: commits far below the writer's automatic
// checkpoint threshold still reach the database file, copied there by the
// background checkpointer, not by the writer. Fails if checkpoints are
// left to the writer (the file would not grow until 4,000 WAL pages).
func TestBackgroundCheckpoint(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "c.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	size := func() int64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	// Let the migrations' pages reach the file first.
	time.Sleep(300 * time.Millisecond)
	before := size()
	body := []byte(strings.Repeat("x", 2000))
	for i := 0; i < 200; i++ { // about 100 pages of raw inputs
		if _, err := s.RecordRaw(ctx, store.RawInput{Source: "t", Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for size() < before+200*2000 {
		if time.Now().After(deadline) {
			t.Fatalf("database file %d bytes, was %d: the 200 raw inputs were not checkpointed in the background", size(), before)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStatementCacheBounded: statements built at run time cannot grow the
// writer's prepared-statement cache past its bound, and every statement
// still answers right once its prepared copy was evicted.
func TestStatementCacheBounded(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	run := func(i int) {
		t.Helper()
		var got int
		q := fmt.Sprintf("SELECT %d + ?", i)
		if err := s.InTx(ctx, func(tx store.Tx) error { return tx.QueryRow(ctx, q, 1).Scan(&got) }); err != nil {
			t.Fatal(err)
		}
		if got != i+1 {
			t.Fatalf("%s = %d, want %d", q, got, i+1)
		}
	}
	for round := 0; round < 3; round++ {
		for i := 0; i < 300; i++ {
			run(i)
		}
	}
	if n := s.PreparedStatements(); n == 0 || n > 128 {
		t.Fatalf("%d statements prepared, want 1 to 128", n)
	}
}
