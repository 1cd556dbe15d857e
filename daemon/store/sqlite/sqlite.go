// Package sqlite is acquit's default store: one SQLite file through
// modernc.org/sqlite (no cgo), in WAL mode with synchronous=FULL (a committed
// transaction survives kill -9 and power loss), foreign keys on, and a single
// writer connection whose transactions start with BEGIN IMMEDIATE, so
// writers queue inside the process instead of failing with SQLITE_BUSY;
// other processes on the same file wait up to the busy timeout. Concurrent
// write transactions are committed together by one writer goroutine (group
// commit: one fsync for all of them, each in its own savepoint; see
// sqlstore/group.go). Temporary files (the savepoint journals of a group)
// stay in memory (temp_store=MEMORY), and WAL checkpoints run on their own
// connection in the background instead of on the writer (checkpoint.go).
// Reads go through a separate pool of read-only connections.
//
// Because there is one writer, a function passed to InTx must not call
// Store methods that write (RecordRaw, KVSet, ClaimEvents...): use the Tx.
// Such a call fails with sqlstore.ErrWriterBusy after a minute instead of
// hanging forever.
package sqlite

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"

	"database/sql"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/daemon/store/internal/sqlstore"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// CoreMigrations is the core schema (numbers 1-99) for SQLite.
func CoreMigrations() store.MigrationSet {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err)
	}
	return store.MigrationSet{Name: "core", FS: sub, Min: 1, Max: 99}
}

// BusyTimeoutMS is how long a connection waits for another process's
// write lock before failing.
const BusyTimeoutMS = 15000

// Store is the SQLite store; it implements store.Store.
type Store struct {
	*sqlstore.DB
	path string
}

var (
	_ store.Store = (*Store)(nil)
)

// Path returns the database file.
func (s *Store) Path() string { return s.path }

func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", BusyTimeoutMS))
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "temp_store(MEMORY)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Set("_txlock", "immediate")
		q.Add("_pragma", fmt.Sprintf("wal_autocheckpoint(%d)", writerAutoCheckpoint))
	}
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

// Open opens (creating if needed) the SQLite database at path and applies
// the core migrations and the sets given with store.WithMigrations (the
// caller decides which: the daemon passes payments' and transmissions').
func Open(ctx context.Context, path string, opts ...store.Option) (*Store, error) {
	o := store.BuildOptions(opts...)
	if path == "" {
		return nil, fmt.Errorf("sqlite open: %w: empty path", store.ErrInvalid)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite open %s: %w", path, err)
	}
	// The file holds raw bank messages: readable by its owner only (SQLite
	// gives the -wal and -shm files the same mode).
	if f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("sqlite open %s: %w", abs, err)
	}
	w, err := sql.Open("sqlite", dsn(abs, false))
	if err != nil {
		return nil, fmt.Errorf("sqlite open %s: %w", abs, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	// WAL is a property of the file: set it once on the writer.
	var mode string
	if err := w.QueryRowContext(ctx, "PRAGMA journal_mode=WAL").Scan(&mode); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite open %s: journal_mode: %w", abs, err)
	}
	if mode != "wal" {
		w.Close()
		return nil, fmt.Errorf("sqlite open %s: journal_mode is %q, want wal", abs, mode)
	}
	sets := []store.MigrationSet{CoreMigrations()}
	sets = append(sets, o.Migrations...)
	if _, err := store.ApplyMigrations(ctx, w, store.MigrateOptions{Driver: "sqlite"}, sets); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite open %s: %w", abs, err)
	}
	r, err := sql.Open("sqlite", dsn(abs, true))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite open %s (readers): %w", abs, err)
	}
	r.SetMaxOpenConns(o.Readers)
	r.SetMaxIdleConns(o.Readers)
	c, err := sql.Open("sqlite", dsn(abs, false))
	if err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("sqlite open %s (checkpointer): %w", abs, err)
	}
	c.SetMaxOpenConns(1)
	c.SetMaxIdleConns(1)
	ckpt := newCheckpointer(c)
	return &Store{
		DB: &sqlstore.DB{
			AfterCommit: ckpt.wake,
			BeforeClose: ckpt.close,
			W:           w, R: r, MaxRawBody: o.MaxRawBody,
			WriterSlots: make(chan struct{}, 1),
			D: sqlstore.Dialect{
				Name:         "sqlite",
				Rebind:       func(s string) string { return s },
				IsUnique:     isUnique,
				IsForeignKey: isForeignKey,
			},
		},
		path: abs,
	}, nil
}

func isForeignKey(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}

func isUnique(err error) bool {
	var e *sqlite.Error
	if errors.As(err, &e) {
		return e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}
