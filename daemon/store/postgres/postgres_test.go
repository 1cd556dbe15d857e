package postgres_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/daemon/store/postgres"
	"github.com/acquit/acquit/daemon/store/storetest"
	"github.com/acquit/acquit/internal/pgtest"
)

func openTemp(t *testing.T) store.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) { storetest.Run(t, openTemp) }

func TestMigrationSets(t *testing.T) {
	dsn := pgtest.DSN(t)
	storetest.RunMigrations(t, func(opts ...store.Option) (store.Store, error) {
		return postgres.Open(context.Background(), dsn, opts...)
	})
}

// TestInstancesShareOneDatabase opens several stores on one schema at once
// (several daemon instances starting together: migrations run once), then
// claims from all of them in parallel: no event is leased twice at once,
// each is delivered once, in order per subject.
func TestInstancesShareOneDatabase(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	const instances = 3
	stores := make([]store.Store, instances)
	var wg sync.WaitGroup
	errs := make([]error, instances)
	for i := range stores {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			s, err := postgres.Open(ctx, dsn, store.WithMigrations(domainSet()))
			stores[i], errs[i] = s, err
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	var total int
	core, err := store.CollectMigrations("postgres", []store.MigrationSet{postgres.CoreMigrations()})
	if err != nil {
		t.Fatal(err)
	}
	if err := stores[0].InTx(ctx, func(tx store.Tx) error {
		return tx.QueryRow(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&total)
	}); err != nil || total != len(core)+3 {
		t.Fatalf("schema_migrations rows = %d (%v), want %d core + 3 payments", total, err, len(core))
	}

	// Emit from all instances concurrently, interleaving subjects.
	var emitted sync.Map
	for i, s := range stores {
		wg.Add(1)
		go func(i int, s store.Store) {
			defer wg.Done()
			for j := 0; j < 30; j++ {
				_ = s.InTx(ctx, func(tx store.Tx) error {
					e, err := tx.Emit(ctx, store.NewEvent{Type: "t", Subject: fmt.Sprintf("s%d", j%5)})
					if err == nil {
						emitted.Store(e.ID, e.Seq)
					}
					return err
				})
			}
		}(i, s)
	}
	wg.Wait()

	var mu sync.Mutex
	holding := map[string]bool{}
	count := map[string]int{}
	order := map[string][]int64{}
	var problems []string
	for i, s := range stores {
		wg.Add(1)
		go func(worker string, s store.Store) {
			defer wg.Done()
			for idle := 0; idle < 40; {
				evs, err := s.ClaimEvents(ctx, worker, 2, time.Hour, time.Now())
				if err != nil {
					mu.Lock()
					problems = append(problems, err.Error())
					mu.Unlock()
					return
				}
				if len(evs) == 0 {
					idle++
					time.Sleep(3 * time.Millisecond)
					continue
				}
				idle = 0
				for _, e := range evs {
					mu.Lock()
					if holding[e.Subject] {
						problems = append(problems, "subject "+e.Subject+" leased twice at once")
					}
					holding[e.Subject] = true
					count[e.ID]++
					order[e.Subject] = append(order[e.Subject], e.Seq)
					holding[e.Subject] = false
					mu.Unlock()
					if err := s.CompleteEvent(ctx, e.ID, worker); err != nil {
						mu.Lock()
						problems = append(problems, err.Error())
						mu.Unlock()
					}
				}
			}
		}(fmt.Sprintf("instance-%d", i), s)
	}
	wg.Wait()
	if len(problems) > 0 {
		t.Fatal(problems[0])
	}
	n := 0
	emitted.Range(func(k, v any) bool {
		n++
		if count[k.(string)] != 1 {
			t.Errorf("event %s delivered %d times", k, count[k.(string)])
		}
		return true
	})
	if n != instances*30 {
		t.Fatalf("emitted %d", n)
	}
	for subj, seqs := range order {
		for i := 1; i < len(seqs); i++ {
			if seqs[i] < seqs[i-1] {
				t.Fatalf("subject %s out of order: %v", subj, seqs)
			}
		}
	}
}

func domainSet() store.MigrationSet {
	return store.MigrationSet{Name: "payments", FS: os.DirFS("../testdata/good"), Min: 100, Max: 199}
}

func TestFailedMigrationLeavesNothing(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	bad := store.MigrationSet{Name: "bad", Min: 300, Max: 399, FS: fstest.MapFS{
		"300_half.sql": {Data: []byte("CREATE TABLE half_done (x TEXT); INSERT INTO no_such_table VALUES (1);")},
	}}
	if _, err := postgres.Open(ctx, dsn, store.WithMigrations(bad)); err == nil {
		t.Fatal("broken migration accepted")
	}
	s, err := postgres.Open(ctx, dsn, store.WithMigrations(domainSet()))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.InTx(ctx, func(tx store.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'half_done' AND table_schema = current_schema()`).Scan(&n); err != nil {
			return err
		}
		if n != 0 {
			t.Error("half-applied migration left a table")
		}
		if _, err := tx.Exec(ctx, `INSERT INTO payments_demo (id, amount, note) VALUES (?, ?, 'is it ? or not')`, "p1", 1000); err != nil {
			return err
		}
		var cur string
		return tx.QueryRow(ctx, `SELECT currency FROM payments_demo WHERE id = ? AND note LIKE '%?%'`, "p1").Scan(&cur)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOpenBadDSN(t *testing.T) {
	for _, dsn := range []string{"postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=2", "not a dsn ::: ?"} {
		s, err := postgres.Open(context.Background(), dsn)
		if err == nil {
			s.Close()
			t.Fatalf("Open(%q) succeeded", dsn)
		}
	}
}

// TestEmitOrderIsCommitOrderPerSubject holds a transaction that emitted for
// subject s open while another emits for s: the second waits, so its seq
// comes after the first and a claimer can never see it first.
func TestEmitOrderIsCommitOrderPerSubject(t *testing.T) {
	ctx := context.Background()
	s, err := postgres.Open(ctx, pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	emitted, release := make(chan store.Event, 1), make(chan struct{})
	firstDone := make(chan error, 1)
	go func() {
		firstDone <- s.InTx(ctx, func(tx store.Tx) error {
			e, err := tx.Emit(ctx, store.NewEvent{Type: "first", Subject: "s"})
			if err != nil {
				return err
			}
			emitted <- e
			<-release
			return nil
		})
	}()
	first := <-emitted
	secondDone := make(chan store.Event, 1)
	go func() {
		_ = s.InTx(ctx, func(tx store.Tx) error {
			e, err := tx.Emit(ctx, store.NewEvent{Type: "second", Subject: "s"})
			if err == nil {
				secondDone <- e
			}
			return err
		})
	}()
	// Another subject is not held up.
	if err := s.InTx(ctx, func(tx store.Tx) error {
		_, err := tx.Emit(ctx, store.NewEvent{Type: "other", Subject: "other"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-secondDone:
		t.Fatalf("second emit for subject s went through (seq %d) while the first transaction was open", e.Seq)
	case <-time.After(300 * time.Millisecond):
	}
	// Meanwhile a claimer sees nothing of subject s.
	got, err := s.ClaimEvents(ctx, "w", 10, time.Minute, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range got {
		if e.Subject == "s" {
			t.Fatalf("claimed %s of subject s before the first commit", e.Type)
		}
	}
	close(release)
	if err := <-firstDone; err != nil {
		t.Fatal(err)
	}
	second := <-secondDone
	if second.Seq <= first.Seq {
		t.Fatalf("seq second %d <= first %d", second.Seq, first.Seq)
	}
}

// TestTimeUnitMigration: a schema with the core tables and rows of an
// acquit older than migration 7 (Unix nanoseconds) reads back the same
// instants to the millisecond and keeps its append-only triggers.
func TestTimeUnitMigration(t *testing.T) {
	dsn := pgtest.DSN(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	storetest.RunTimeUnitMigration(t, storetest.TimeUnitMigration{
		Driver: "postgres", Core: postgres.CoreMigrations(), DB: db, Rebind: postgres.Rebind,
		Open: func() (store.Store, error) { return postgres.Open(context.Background(), dsn) },
	})
}

// TestLargeBodyKilledMidway: storetest.KilledMidBody on PostgreSQL (a
// kill -9 after 5 of 9 chunks; no document visible, orphans swept once
// idle, the retry stores it once).
func TestLargeBodyKilledMidway(t *testing.T) {
	target := os.Getenv("ACQUIT_BIGBODY_CHILD")
	if target == "" {
		target = pgtest.DSN(t)
	}
	storetest.KilledMidBody(t, "TestLargeBodyKilledMidway", "ACQUIT_BIGBODY_CHILD", target, t.TempDir(),
		func(dsn string) (store.Store, error) { return postgres.Open(context.Background(), dsn) })
}
