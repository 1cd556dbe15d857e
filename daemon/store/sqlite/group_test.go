package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/daemon/store/sqlite"
)

// groupEnv opens a store with a table t(k PRIMARY KEY) and returns a
// function that holds the writer inside a transaction until the returned
// release is called, so that the writes started meanwhile queue up and
// are committed as one group.
func groupEnv(t *testing.T) (*sqlite.Store, func() (release func())) {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "g.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.InTx(ctx, func(tx store.Tx) error {
		_, err := tx.Exec(ctx, "CREATE TABLE t (k TEXT PRIMARY KEY)")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	hold := func() func() {
		inside, release := make(chan struct{}), make(chan struct{})
		go func() {
			_ = s.InTx(ctx, func(tx store.Tx) error {
				close(inside)
				<-release
				return nil
			})
		}()
		<-inside
		return func() { close(release) }
	}
	return s, hold
}

func keys(t *testing.T, s *sqlite.Store) map[string]bool {
	t.Helper()
	rows, err := s.R.Query("SELECT k FROM t")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]bool{}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		got[k] = true
	}
	return got
}

// TestGroupCommitIsolatesCallers: 32 writers queued behind a busy writer
// are committed in one group; the callers that fail (their fn returns an
// error after writing, violates a unique constraint, or panics) are rolled
// back alone and get their own error, and every other caller's row is
// committed.
func TestGroupCommitIsolatesCallers(t *testing.T) {
	ctx := context.Background()
	s, hold := groupEnv(t)
	if err := s.InTx(ctx, func(tx store.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO t VALUES ('taken')")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	c0, n0 := s.GroupStats()
	release := hold()
	const n = 32
	errs := make([]error, n)
	panics := make([]any, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { panics[i] = recover() }()
			errs[i] = s.InTx(ctx, func(tx store.Tx) error {
				if _, err := tx.Exec(ctx, "INSERT INTO t VALUES (?)", fmt.Sprint("k", i)); err != nil {
					return err
				}
				switch i % 8 {
				case 3:
					return errors.New("caller 3 changed its mind")
				case 5:
					_, err := tx.Exec(ctx, "INSERT INTO t VALUES ('taken')")
					return err
				case 7:
					panic(fmt.Sprint("caller ", i, " panics"))
				}
				return nil
			})
		}()
	}
	// All 32 are queued behind the held writer before it is released.
	time.Sleep(300 * time.Millisecond)
	release()
	wg.Wait()
	got := keys(t, s)
	for i := 0; i < n; i++ {
		k := fmt.Sprint("k", i)
		switch i % 8 {
		case 3:
			if errs[i] == nil || !strings.Contains(errs[i].Error(), "changed its mind") || got[k] {
				t.Errorf("caller %d: err %v, row kept %v", i, errs[i], got[k])
			}
		case 5:
			if !errors.Is(errs[i], store.ErrConflict) || got[k] {
				t.Errorf("caller %d: err %v (want ErrConflict), row kept %v", i, errs[i], got[k])
			}
		case 7:
			if panics[i] != fmt.Sprint("caller ", i, " panics") || got[k] {
				t.Errorf("caller %d: panic %v, row kept %v", i, panics[i], got[k])
			}
		default:
			if errs[i] != nil || panics[i] != nil || !got[k] {
				t.Errorf("caller %d: err %v panic %v, row committed %v", i, errs[i], panics[i], got[k])
			}
		}
	}
	c1, n1 := s.GroupStats()
	if commits, txs := c1-c0, n1-n0; commits > 3 || txs != n-3*n/8+1 {
		t.Errorf("%d commits for %d committed transactions; want the queued ones grouped", commits, txs)
	}
}

// TestGroupCommitCancelledWhileQueued: a caller cancelled while waiting
// for the writer gets its context's error and its fn never runs; the
// others are unaffected.
func TestGroupCommitCancelledWhileQueued(t *testing.T) {
	ctx := context.Background()
	s, hold := groupEnv(t)
	release := hold()
	cctx, cancel := context.WithCancel(ctx)
	ran := make(chan struct{}, 1)
	done := make(chan error, 2)
	go func() {
		done <- s.InTx(cctx, func(tx store.Tx) error {
			ran <- struct{}{}
			_, err := tx.Exec(ctx, "INSERT INTO t VALUES ('cancelled')")
			return err
		})
	}()
	go func() {
		done <- s.InTx(ctx, func(tx store.Tx) error {
			_, err := tx.Exec(ctx, "INSERT INTO t VALUES ('other')")
			return err
		})
	}()
	time.Sleep(100 * time.Millisecond)
	cancel()
	time.Sleep(50 * time.Millisecond)
	release()
	var errs []error
	for i := 0; i < 2; i++ {
		errs = append(errs, <-done)
	}
	if !(errors.Is(errs[0], context.Canceled) && errs[1] == nil || errors.Is(errs[1], context.Canceled) && errs[0] == nil) {
		t.Fatalf("errors %v", errs)
	}
	select {
	case <-ran:
		t.Fatal("the cancelled caller's fn ran")
	default:
	}
	if got := keys(t, s); got["cancelled"] || !got["other"] {
		t.Fatalf("rows %v", got)
	}
}

// TestDeferSyncGroups: a group made only of RecordRaw calls with DeferSync
// commits without fsync (synchronous=NORMAL, counted by LazyGroups); a
// group holding any ordinary transaction runs with synchronous=FULL, and so
// does every ordinary transaction after a lazy one.
func TestDeferSyncGroups(t *testing.T) {
	ctx := context.Background()
	s, hold := groupEnv(t)
	raw := func(deferSync bool) store.RawInput {
		return store.RawInput{Source: "atos", Channel: "automatic", Body: []byte("Data=x"), DeferSync: deferSync}
	}
	syncMode := func() (mode int) {
		t.Helper()
		if err := s.InTx(ctx, func(tx store.Tx) error {
			return tx.QueryRow(ctx, "PRAGMA synchronous").Scan(&mode)
		}); err != nil {
			t.Fatal(err)
		}
		return mode
	}
	const full = 2 // PRAGMA synchronous: 1 is NORMAL

	// Alone: lazy, and the next ordinary transaction is FULL again.
	l0 := s.LazyGroups()
	id, err := s.RecordRaw(ctx, raw(true))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetRaw(ctx, id); err != nil || string(got.Body) != "Data=x" {
		t.Fatalf("lazy raw %d read back: %v, %v", id, got, err)
	}
	if d := s.LazyGroups() - l0; d != 1 {
		t.Fatalf("a lone DeferSync RecordRaw made %d lazy groups, want 1", d)
	}
	if m := syncMode(); m != full {
		t.Fatalf("ordinary transaction after a lazy one runs with synchronous=%d, want FULL (%d)", m, full)
	}
	if _, err := s.RecordRaw(ctx, raw(false)); err != nil {
		t.Fatal(err)
	}
	if d := s.LazyGroups() - l0; d != 1 {
		t.Fatalf("an ordinary RecordRaw was committed lazily (%d lazy groups)", d)
	}

	// Mixed group: FULL, not lazy.
	l1 := s.LazyGroups()
	release := hold()
	var wg sync.WaitGroup
	var mode int
	var errs [3]error
	wg.Add(3)
	go func() { defer wg.Done(); _, errs[0] = s.RecordRaw(ctx, raw(true)) }()
	go func() { defer wg.Done(); _, errs[1] = s.RecordRaw(ctx, raw(true)) }()
	go func() {
		defer wg.Done()
		errs[2] = s.InTx(ctx, func(tx store.Tx) error { return tx.QueryRow(ctx, "PRAGMA synchronous").Scan(&mode) })
	}()
	time.Sleep(200 * time.Millisecond)
	release()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("mixed group caller %d: %v", i, err)
		}
	}
	if mode != full || s.LazyGroups() != l1 {
		t.Fatalf("mixed group ran with synchronous=%d, %d lazy groups; want FULL and none", mode, s.LazyGroups()-l1)
	}

	// Lazy callers only (queued together, usually one group): every group
	// they make is lazy.
	release = hold()
	c0, _ := s.GroupStats()
	for i := range errs[:2] {
		wg.Add(1)
		go func() { defer wg.Done(); _, errs[i] = s.RecordRaw(ctx, raw(true)) }()
	}
	time.Sleep(200 * time.Millisecond)
	release()
	wg.Wait()
	c1, _ := s.GroupStats()
	if errs[0] != nil || errs[1] != nil {
		t.Fatal(errs[0], errs[1])
	}
	if d := s.LazyGroups() - l1; d != c1-c0-1 || d < 1 {
		t.Fatalf("two lazy callers: %d lazy groups of %d groups (one was the holder's); want every other group lazy", d, c1-c0)
	}
	if m := syncMode(); m != full {
		t.Fatalf("after lazy groups an ordinary transaction runs with synchronous=%d", m)
	}
}

// TestViewSnapshot: on SQLite all of a View's statements read one
// snapshot (a write committed between two of them is not seen by the
// second), and a View does not hold up a write made meanwhile.
func TestViewSnapshot(t *testing.T) {
	ctx := context.Background()
	s, _ := groupEnv(t)
	insert := func(k string) error {
		return s.InTx(ctx, func(tx store.Tx) error {
			_, err := tx.Exec(ctx, "INSERT INTO t (k) VALUES (?)", k)
			return err
		})
	}
	if err := insert("a"); err != nil {
		t.Fatal(err)
	}
	count := func(tx store.Tx) (n int) {
		t.Helper()
		if err := tx.QueryRow(ctx, "SELECT COUNT(*) FROM t").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	var first, second int
	if err := s.View(ctx, func(tx store.Tx) error {
		first = count(tx)
		if err := insert("b"); err != nil {
			return fmt.Errorf("write during a View: %w", err)
		}
		second = count(tx)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if first != 1 || second != 1 {
		t.Fatalf("inside one View: %d rows, then %d after a commit; want 1 and 1 (one snapshot)", first, second)
	}
	if got := keys(t, s); !got["a"] || !got["b"] {
		t.Fatalf("rows after the View: %v", got)
	}
}
