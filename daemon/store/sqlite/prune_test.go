package sqlite_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/daemon/store/sqlite"
)

// floodRefused records n refused raw inputs of size bytes, received two
// days ago, as a flood of forged POSTs leaves them (issue 9 item 13).
func floodRefused(t *testing.T, s store.Store, n, size int) {
	t.Helper()
	ctx := context.Background()
	body := bytes.Repeat([]byte("x"), size)
	at := time.Now().Add(-48 * time.Hour)
	for i := 0; i < n; i++ {
		copy(body, fmt.Sprintf("%08d", i))
		if _, err := s.RecordRaw(ctx, store.RawInput{Source: "atos", Channel: "automatic", RemoteAddr: "203.0.113.9",
			Method: "POST", Path: "/notify/atos/automatic", Body: body, ReceivedAt: at,
			Verdicts: []store.Verdict{{Code: "bad_seal", Message: "seal does not match"}}}); err != nil {
			t.Fatal(err)
		}
	}
}

// dbSize checkpoints the WAL into the database file and returns its size.
func dbSize(t *testing.T, s *sqlite.Store) int64 {
	t.Helper()
	if _, err := s.W.ExecContext(context.Background(), `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestPrunedSpaceIsReused: under a steady flood of refused POSTs, the
// database file stops growing once pruning runs: the pages of pruned
// inputs are reused by the next ones. Before raw retention the file grew
// by the size of every flood (here about 2.5 MB per round), forever.
func TestPrunedSpaceIsReused(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "acquit.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const perRound, size = 600, 4 << 10 // payments.refused_body_keep's default
	floodRefused(t, s, perRound, size)
	first := dbSize(t, s)
	for round := 1; round <= 3; round++ {
		n, err := s.PruneRaw(ctx, time.Now().Add(-24*time.Hour), 100)
		if err != nil {
			t.Fatal(err)
		}
		if n != perRound {
			t.Fatalf("round %d: pruned %d, want %d", round, n, perRound)
		}
		floodRefused(t, s, perRound, size)
		// Slack: a few pages of b-tree rebalancing.
		if got := dbSize(t, s); got > first+first/20 {
			t.Fatalf("round %d: database file %d bytes after pruning and the same flood again, was %d: the space is not reused", round, got, first)
		}
	}
	t.Logf("file stays at %d bytes over 4 floods of %d refused inputs of %d bytes", first, perRound, size)
}

// TestPruneKilledMidway kills -9 a process pruning in small batches: what
// it committed is gone entirely (input and verdicts), the rest is intact,
// no verdict is left without its input, no permit is left, and the next
// run finishes the work.
func TestPruneKilledMidway(t *testing.T) {
	if path := os.Getenv("ACQUIT_PRUNE_CHILD"); path != "" {
		s, err := sqlite.Open(context.Background(), path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Println("pruning")
		_, err = s.PruneRaw(context.Background(), time.Now().Add(-24*time.Hour), 5)
		fmt.Println("done", err)
		os.Exit(0)
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "acquit.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	const total = 3000
	floodRefused(t, s, total, 64)
	var verified []int64
	for i := 0; i < 10; i++ {
		id, err := s.RecordRaw(ctx, store.RawInput{Source: "atos", Body: []byte("bank " + strconv.Itoa(i)),
			ReceivedAt: time.Now().Add(-48 * time.Hour), Verdicts: []store.Verdict{{Verified: true, Code: "decided"}}})
		if err != nil {
			t.Fatal(err)
		}
		verified = append(verified, id)
	}
	// Read through the reader pool: no write lock taken from the child.
	count := func() (raws, verdicts int64) {
		t.Helper()
		if err := s.R.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM raw_inputs), (SELECT COUNT(*) FROM raw_verdicts)`).
			Scan(&raws, &verdicts); err != nil {
			t.Fatal(err)
		}
		return
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestPruneKilledMidway$")
	cmd.Env = append(os.Environ(), "ACQUIT_PRUNE_CHILD="+path)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		raws, _ := count()
		if raws < total-100 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the child pruned nothing in 2 minutes: %s", out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if bytes.Contains(out.Bytes(), []byte("done")) {
		t.Fatalf("the child finished before the kill: %s", out.String())
	}
	s.Close()

	s, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	raws, verdicts := count()
	if raws <= 10 || raws >= total {
		t.Fatalf("%d raw inputs after the kill: want some pruned, some not", raws)
	}
	// Each input still has its one verdict; no verdict without input.
	if verdicts != raws {
		t.Fatalf("%d verdicts for %d raw inputs after the kill, want one each", verdicts, raws)
	}
	if err := s.InTx(ctx, func(tx store.Tx) error {
		var orphans, permits int64
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM raw_verdicts v WHERE NOT EXISTS
			(SELECT 1 FROM raw_inputs r WHERE r.id = v.raw_id)`).Scan(&orphans); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM raw_prune`).Scan(&permits); err != nil {
			return err
		}
		if orphans != 0 || permits != 0 {
			return fmt.Errorf("%d orphan verdicts, %d permits left", orphans, permits)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	n, err := s.PruneRaw(ctx, time.Now().Add(-24*time.Hour), 0)
	if err != nil {
		t.Fatal(err)
	}
	if int64(n) != raws-10 {
		t.Fatalf("the next run pruned %d, want the %d refused inputs left", n, raws-10)
	}
	for _, id := range verified {
		if _, err := s.GetRaw(ctx, id); err != nil {
			t.Fatalf("verified raw %d: %v", id, err)
		}
	}
	t.Logf("killed with %d of %d refused inputs left; the next run pruned them", raws-10, total)
}
