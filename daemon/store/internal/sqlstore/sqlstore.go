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
	// IsForeignKey, when set, reports a foreign-key violation that failed
	// only its statement (SQLite): AddVerdict then lets the foreign key
	// find an unknown raw input instead of looking it up first. Unset on
	// PostgreSQL, where a failed statement aborts the whole transaction.
	IsForeignKey func(error) bool
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
	// AfterCommit, when set, is called on the writer goroutine after each
	// group commit (SQLite: wakes the background checkpointer); it must not
	// block.
	AfterCommit func()
	// BeforeClose, when set, is called by Close once the writer has
	// drained, before the pools are closed.
	BeforeClose func()
	closeOnce   sync.Once
	closeErr    error
	kvSets      atomic.Int64
	stmts       stmtCache

	prune pruneCursor // where PruneRaw resumes

	grpOnce sync.Once
	grp     *grouper
	groups  atomic.Int64 // group commits made
	grouped atomic.Int64 // transactions they carried
	busy    atomic.Int64 // nanoseconds the writer spent on groups

	syncMode   int32        // SQLite writer's synchronous mode (writer goroutine only)
	lazyGroups atomic.Int64 // groups committed without fsync (all callers lazy)
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

// stmtCache keeps the statements run inside write transactions prepared on
// the single SQLite writer connection (parsing a statement costs about as
// much as running it). A statement seen a second time is recorded as
// wanted; the next group, before its transaction begins (the writer idle),
// prepares it. Past maxCachedStmts the least recently used statement is
// closed, so statements built at run time (IN lists) cannot push the hot
// ones out for good.
type stmtCache struct {
	mu       sync.Mutex
	prepared map[string]*cachedStmt
	seen     map[string]bool // run once, unprepared
	wanted   map[string]bool // run twice: prepare at the next begin
	tick     uint64
}

type cachedStmt struct {
	st   *sql.Stmt
	used uint64
}

// txStmt returns the cached statement for query inside tx, or nil.
func (s *DB) txStmt(ctx context.Context, tx *sql.Tx, query string) *sql.Stmt {
	if s.WriterSlots == nil {
		return nil // PostgreSQL: pgx caches statements per connection itself
	}
	c := &s.stmts
	c.mu.Lock()
	cs := c.prepared[query]
	if cs != nil {
		c.tick++
		cs.used = c.tick
	} else if c.seen[query] {
		if len(c.wanted) < maxCachedStmts {
			if c.wanted == nil {
				c.wanted = map[string]bool{}
			}
			c.wanted[query] = true
		}
	} else if len(c.seen) < 4*maxCachedStmts {
		if c.seen == nil {
			c.seen = map[string]bool{}
		}
		c.seen[query] = true
	}
	c.mu.Unlock()
	if cs == nil {
		return nil
	}
	return tx.StmtContext(s.stmtCtx(ctx), cs.st)
}

// prepareWanted prepares the statements recorded as wanted; called on the
// writer with no transaction open.
func (s *DB) prepareWanted(ctx context.Context) {
	c := &s.stmts
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.wanted) == 0 {
		return
	}
	if c.prepared == nil {
		c.prepared = map[string]*cachedStmt{}
	}
	for q := range c.wanted {
		delete(c.seen, q)
		if c.prepared[q] != nil {
			continue
		}
		if len(c.prepared) >= maxCachedStmts {
			c.evictLRU()
		}
		st, err := s.W.PrepareContext(ctx, q)
		if err != nil {
			continue // it will keep running unprepared
		}
		c.tick++
		c.prepared[q] = &cachedStmt{st: st, used: c.tick}
	}
	c.wanted = nil
	if len(c.seen) >= 4*maxCachedStmts {
		c.seen = nil // one-off statements: forget them
	}
}

// PreparedStatements reports how many statements are kept prepared on
// the SQLite writer (at most 128).
func (s *DB) PreparedStatements() int {
	s.stmts.mu.Lock()
	defer s.stmts.mu.Unlock()
	return len(s.stmts.prepared)
}

// evictLRU closes the least recently used prepared statement; c.mu held.
func (c *stmtCache) evictLRU() {
	var oldest string
	var min uint64
	for q, cs := range c.prepared {
		if oldest == "" || cs.used < min {
			oldest, min = q, cs.used
		}
	}
	if cs := c.prepared[oldest]; cs != nil {
		cs.st.Close()
		delete(c.prepared, oldest)
	}
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

// insertID runs an INSERT into a table whose key is an integer primary key
// named col and returns the new row's key. PostgreSQL: INSERT ...
// RETURNING col. SQLite: the same key is the rowid, read from the
// statement's result (sqlite3_last_insert_rowid of the writer, which a
// trigger cannot change once it ended) without a result set to step and
// scan on the single writer.
func (s *DB) insertID(ctx context.Context, tx *sql.Tx, insert, col string, args ...any) (int64, error) {
	if s.WriterSlots == nil {
		var id int64
		err := s.txQueryRow(ctx, tx, insert+" RETURNING "+col, args...).Scan(&id)
		return id, err
	}
	res, err := s.txExec(ctx, tx, insert, args...)
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
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
		if s.BeforeClose != nil {
			s.BeforeClose()
		}
		s.stmts.mu.Lock()
		for _, cs := range s.stmts.prepared {
			cs.st.Close()
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

// SerialWrites implements store.Store: with WriterSlots set (SQLite)
// every write transaction goes to the group commit (inTxSync), whose one
// writer goroutine runs the callers' fns one after the other.
func (s *DB) SerialWrites() bool { return s.WriterSlots != nil }

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

// View implements store.Store: fn runs in a read-only transaction on the
// reader pool (SQLite: query_only connections, one snapshot from the
// first read to the end; PostgreSQL: READ ONLY), never on the writer.
func (s *DB) View(ctx context.Context, fn func(tx store.Tx) error) error {
	sqlTx, err := s.R.BeginTx(ctx, &sql.TxOptions{ReadOnly: s.WriterSlots == nil})
	if err != nil {
		return fmt.Errorf("begin read: %w", err)
	}
	defer sqlTx.Rollback() //nolint:errcheck // the transaction only read
	return fn(&Tx{tx: sqlTx, s: s, view: true})
}

// inTx is InTx for the store's own use.
func (s *DB) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.inTxSync(ctx, false, fn)
}

// inTxSync is inTx; lazy asks for a commit durable against a crash of this
// process (kill -9) but whose flush to disk may wait for the next ordinary
// commit (store.RawInput.DeferSync): SQLite then skips the fsync when the
// whole group is lazy, PostgreSQL commits with synchronous_commit off (the
// server has the commit; the next synchronous commit flushes the WAL past
// it).
func (s *DB) inTxSync(ctx context.Context, lazy bool, fn func(tx *sql.Tx) error) error {
	if s.WriterSlots != nil {
		return s.groupRun(ctx, lazy, fn)
	}
	sqlTx, release, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer release()
	defer sqlTx.Rollback() //nolint:errcheck // no-op after commit
	if lazy && s.D.Name == "postgres" {
		if _, err := sqlTx.ExecContext(ctx, "SET LOCAL synchronous_commit TO OFF"); err != nil {
			return fmt.Errorf("set synchronous_commit: %w", err)
		}
	}
	if err := fn(sqlTx); err != nil {
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
