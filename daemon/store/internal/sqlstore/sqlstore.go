// Package sqlstore is the database/sql implementation of store.Store shared
// by the SQLite and PostgreSQL drivers; a Dialect holds what differs.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/acquit/acquit/daemon/store"
)

// Dialect is what differs between databases.
type Dialect struct {
	// Name is "sqlite" or "postgres".
	Name string
	// Rebind turns ? placeholders into the database's own.
	Rebind func(string) string
	// IsUnique reports a unique-constraint violation.
	IsUnique func(error) bool
	// ClaimLock is appended to the claim SELECT (" FOR UPDATE OF e SKIP LOCKED").
	ClaimLock string
	// RowLock is appended to SELECTs of a row about to be updated (" FOR UPDATE").
	RowLock string
	// SubjectLock, when set, is run (with the subject as argument) in Emit
	// before the event row is inserted, so that the insertion order of a
	// subject's events is also their commit order.
	SubjectLock string
}

// Limits on stored values.
const (
	maxName      = 256
	maxKVValue   = 1 << 20
	maxPayload   = 1 << 20
	maxErrorText = 4096
	maxStateVal  = 4 << 20
)

// DB implements store.Store on a writer pool W and a reader pool R (the
// same pool for PostgreSQL).
type DB struct {
	W, R       *sql.DB
	D          Dialect
	MaxRawBody int
	// WriterSlots, when set (SQLite: capacity 1), is taken before every
	// write transaction so that a caller waiting for the writer gets an
	// error after WriterWait instead of hanging (e.g. a Store method called
	// inside InTx's fn, which would wait for itself).
	WriterSlots chan struct{}
	// WriterWait bounds the wait for WriterSlots (default 60s).
	WriterWait time.Duration
	closeOnce  sync.Once
	closeErr   error
	kvSets     atomic.Int64
	stmts      stmtCache

	grpOnce sync.Once
	grp     *grouper
	groups  atomic.Int64 // group commits made
	grouped atomic.Int64 // transactions they carried
}

// kvSweepEvery is how many KVSet calls pass between two sweeps of expired
// entries.
const kvSweepEvery = 256

// ErrWriterBusy is returned when the single SQLite writer stayed taken for
// DB.WriterWait; the usual cause is a Store method called from inside
// InTx's fn (use the Tx instead).
var ErrWriterBusy = errors.New("store writer busy (a Store method called inside InTx?)")

// maxCachedStmts bounds the prepared-statement cache.
const maxCachedStmts = 128

// stmtCache keeps the store's own statements prepared on the single SQLite
// writer connection: a statement first runs unprepared and is recorded as
// wanted; the next begin, with the writer idle, prepares it.
type stmtCache struct {
	mu       sync.Mutex
	prepared map[string]*sql.Stmt
	wanted   map[string]bool
}

// txStmt returns the cached statement for query inside tx, or nil.
func (s *DB) txStmt(ctx context.Context, tx *sql.Tx, query string) *sql.Stmt {
	if s.WriterSlots == nil {
		return nil // PostgreSQL: pgx caches statements per connection itself
	}
	s.stmts.mu.Lock()
	st := s.stmts.prepared[query]
	if st == nil && len(s.stmts.prepared)+len(s.stmts.wanted) < maxCachedStmts {
		if s.stmts.wanted == nil {
			s.stmts.wanted = map[string]bool{}
		}
		s.stmts.wanted[query] = true
	}
	s.stmts.mu.Unlock()
	if st == nil {
		return nil
	}
	return tx.StmtContext(s.stmtCtx(ctx), st)
}

// prepareWanted prepares the statements recorded as wanted; called with the
// writer slot held and no transaction open.
func (s *DB) prepareWanted(ctx context.Context) {
	s.stmts.mu.Lock()
	defer s.stmts.mu.Unlock()
	if len(s.stmts.wanted) == 0 {
		return
	}
	if s.stmts.prepared == nil {
		s.stmts.prepared = map[string]*sql.Stmt{}
	}
	for q := range s.stmts.wanted {
		st, err := s.W.PrepareContext(ctx, q)
		if err != nil {
			continue // it will keep running unprepared
		}
		s.stmts.prepared[q] = st
	}
	s.stmts.wanted = nil
}

func (s *DB) txExec(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	query = s.q(query)
	if st := s.txStmt(ctx, tx, query); st != nil {
		return st.ExecContext(s.stmtCtx(ctx), args...)
	}
	return tx.ExecContext(s.stmtCtx(ctx), query, args...)
}

func (s *DB) txQueryRow(ctx context.Context, tx *sql.Tx, query string, args ...any) *sql.Row {
	query = s.q(query)
	if st := s.txStmt(ctx, tx, query); st != nil {
		return st.QueryRowContext(s.stmtCtx(ctx), args...)
	}
	return tx.QueryRowContext(s.stmtCtx(ctx), query, args...)
}

func (s *DB) txQuery(ctx context.Context, tx *sql.Tx, query string, args ...any) (*sql.Rows, error) {
	query = s.q(query)
	if st := s.txStmt(ctx, tx, query); st != nil {
		return st.QueryContext(s.stmtCtx(ctx), args...)
	}
	return tx.QueryContext(s.stmtCtx(ctx), query, args...)
}

// writerWait is WriterWait or its default.
func (s *DB) writerWait() time.Duration {
	if s.WriterWait > 0 {
		return s.WriterWait
	}
	return 60 * time.Second
}

// begin starts a write transaction.
func (s *DB) begin(ctx context.Context) (*sql.Tx, func(), error) {
	release := func() {}
	if s.WriterSlots != nil {
		wait := s.writerWait()
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case s.WriterSlots <- struct{}{}:
			release = func() { <-s.WriterSlots }
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("begin: %w", ctx.Err())
		case <-t.C:
			return nil, nil, fmt.Errorf("begin: %w after %s", ErrWriterBusy, wait)
		}
		s.prepareWanted(ctx)
	}
	tx, err := s.W.BeginTx(ctx, nil)
	if err != nil {
		release()
		return nil, nil, fmt.Errorf("begin: %w", err)
	}
	return tx, release, nil
}

func (s *DB) q(query string) string { return s.D.Rebind(query) }

func toNS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNS(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) && len(s) > 0 {
		s = s[:len(s)-1]
	}
	return s
}

func checkName(what, v string) error {
	if v == "" {
		return fmt.Errorf("%s: %w: empty", what, store.ErrInvalid)
	}
	if len(v) > maxName {
		return fmt.Errorf("%s: %w: longer than %d bytes", what, store.ErrTooLarge, maxName)
	}
	if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
		return fmt.Errorf("%s: %w: not valid UTF-8 text", what, store.ErrInvalid)
	}
	return nil
}

// conflict wraps a unique violation as store.ErrConflict.
func (s *DB) conflict(err error) error {
	if err != nil && s.D.IsUnique(err) {
		return fmt.Errorf("%w: %v", store.ErrConflict, err)
	}
	return err
}

// Close closes both pools.
func (s *DB) Close() error {
	s.closeOnce.Do(func() {
		s.grpOnce.Do(func() {}) // no writer started after Close
		if s.grp != nil {
			s.grp.stop() // drains the queue first
		}
		s.stmts.mu.Lock()
		for _, st := range s.stmts.prepared {
			st.Close()
		}
		s.stmts.prepared = nil
		s.stmts.mu.Unlock()
		err := s.W.Close()
		if s.R != s.W {
			if e := s.R.Close(); err == nil {
				err = e
			}
		}
		s.closeErr = err
	})
	return s.closeErr
}

// Driver names the dialect.
func (s *DB) Driver() string { return s.D.Name }

// InTx runs fn in one transaction on the writer pool. fn must not call
// other Store methods that write (SQLite has one writer connection: that
// would wait for itself and fail with ErrWriterBusy after WriterWait).
//
// On SQLite, concurrent callers' transactions are committed together
// (group commit, see group.go): fn then runs on the writer goroutine,
// inside a savepoint, and its statements ignore ctx's cancellation.
func (s *DB) InTx(ctx context.Context, fn func(tx store.Tx) error) error {
	return s.inTx(ctx, func(tx *sql.Tx) error { return fn(&Tx{tx: tx, s: s}) })
}

// inTx is InTx for the store's own use.
func (s *DB) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if s.WriterSlots != nil {
		return s.groupRun(ctx, fn)
	}
	sqlTx, release, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer release()
	defer sqlTx.Rollback() //nolint:errcheck // no-op after commit
	if err := fn(sqlTx); err != nil {
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
