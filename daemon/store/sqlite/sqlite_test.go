package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/daemon/store/internal/sqlstore"
	"github.com/acquit/acquit/daemon/store/sqlite"
	"github.com/acquit/acquit/daemon/store/storetest"
)

func openTemp(t *testing.T) store.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "acquit.db"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) { storetest.Run(t, openTemp) }

func TestMigrationSets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "acquit.db")
	storetest.RunMigrations(t, func(opts ...store.Option) (store.Store, error) {
		return sqlite.Open(context.Background(), path, opts...)
	})
}

func domainSet() store.MigrationSet {
	return store.MigrationSet{Name: "payments", FS: os.DirFS("../testdata/good"), Min: 100, Max: 199}
}

func TestPragmasAndMigrations(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "a.db")
	s, err := sqlite.Open(ctx, path, store.WithMigrations(domainSet()))
	if err != nil {
		t.Fatal(err)
	}
	err = s.InTx(ctx, func(tx store.Tx) error {
		for pragma, want := range map[string]string{"journal_mode": "wal", "synchronous": "2", "foreign_keys": "1", "busy_timeout": "15000",
			"temp_store": "2", "wal_autocheckpoint": "4000"} {
			var got string
			if err := tx.QueryRow(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
				return err
			}
			if got != want {
				t.Errorf("PRAGMA %s = %s, want %s", pragma, got, want)
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO payments_demo (id, amount) VALUES (?, ?)`, "p1", 1000); err != nil {
			return err
		}
		var cur string
		return tx.QueryRow(ctx, `SELECT currency FROM payments_demo WHERE id = ?`, "p1").Scan(&cur)
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Reopening applies nothing twice and keeps the data.
	s, err = sqlite.Open(ctx, path, store.WithMigrations(domainSet()))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.InTx(ctx, func(tx store.Tx) error {
		var n, v int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &v); err != nil {
			return err
		}
		core, err := store.CollectMigrations("sqlite", []store.MigrationSet{sqlite.CoreMigrations()})
		if err != nil {
			return err
		}
		if n != len(core)+3 || v != 102 { // the core's + payments 100, 101, 102
			t.Errorf("schema_migrations: %d rows, max %d; want %d core + 3", n, v, len(core))
		}
		return tx.QueryRow(ctx, `SELECT COUNT(*) FROM payments_demo`).Scan(&n)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestFileIsPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "private.db")
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.RecordRaw(context.Background(), store.RawInput{Source: "atos", Body: []byte("secret")}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s mode %v: readable by others", filepath.Base(p), st.Mode().Perm())
		}
	}
}

func TestFailedMigrationLeavesNothing(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "a.db")
	bad := store.MigrationSet{Name: "bad", Min: 300, Max: 399, FS: fstest.MapFS{
		"300_half.sql": {Data: []byte("CREATE TABLE half_done (x TEXT); INSERT INTO no_such_table VALUES (1);")},
	}}
	if _, err := sqlite.Open(ctx, path, store.WithMigrations(bad)); err == nil {
		t.Fatal("broken migration accepted")
	}
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.InTx(ctx, func(tx store.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE name = 'half_done'`).Scan(&n); err != nil {
			return err
		}
		if n != 0 {
			t.Error("half-applied migration left a table")
		}
		return tx.QueryRow(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = 300`).Scan(&n)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOpenHostileFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, []byte("this is not an SQLite database, just some bytes......................................................................"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{"garbage file": garbage, "directory": dir, "empty path": "", "missing dir": filepath.Join(dir, "no", "such", "dir", "x.db")} {
		t.Run(name, func(t *testing.T) {
			s, err := sqlite.Open(ctx, path)
			if err == nil {
				s.Close()
				t.Fatal("opened")
			}
		})
	}
}

// TestTwoHandlesOneFile writes from two Store values on one file at once,
// as two processes would: busy_timeout and BEGIN IMMEDIATE make every
// write succeed.
func TestTwoHandlesOneFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "shared.db")
	a, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	for i, s := range []store.Store{a, b, a, b} {
		wg.Add(1)
		go func(i int, s store.Store) {
			defer wg.Done()
			for j := 0; j < 40; j++ {
				err := s.InTx(ctx, func(tx store.Tx) error {
					_, err := tx.Emit(ctx, store.NewEvent{Type: "t", Subject: fmt.Sprint(i)})
					return err
				})
				if err == nil {
					_, err = s.NextSequence(ctx, "p", "n")
				}
				if err != nil {
					errc <- err
					return
				}
			}
		}(i, s)
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	n, _ := a.CountEvents(ctx, "")
	v, _ := b.NextSequence(ctx, "p", "n")
	if n != 160 || v != 161 {
		t.Fatalf("events %d, sequence %d; want 160, 161", n, v)
	}
}

func TestNestedWriteFailsInsteadOfHanging(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.WriterWait = 200 * time.Millisecond
	err = s.InTx(ctx, func(tx store.Tx) error {
		_, err := s.RecordRaw(ctx, store.RawInput{Source: "atos"}) // wrong: should use tx
		return err
	})
	if !errors.Is(err, sqlstore.ErrWriterBusy) {
		t.Fatalf("nested write = %v, want ErrWriterBusy", err)
	}
	// The store still works afterwards.
	if _, err := s.RecordRaw(ctx, store.RawInput{Source: "atos"}); err != nil {
		t.Fatal(err)
	}
}

// TestTimeUnitMigration: a database with the core schema and rows of an
// acquit older than migration 7 (Unix nanoseconds) reads back the same
// instants to the millisecond and keeps its append-only triggers.
func TestTimeUnitMigration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "acquit.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	storetest.RunTimeUnitMigration(t, storetest.TimeUnitMigration{
		Driver: "sqlite", Core: sqlite.CoreMigrations(), DB: db,
		Open: func() (store.Store, error) { return sqlite.Open(context.Background(), path) },
	})
}
