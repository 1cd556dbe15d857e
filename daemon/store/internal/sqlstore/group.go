package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Group commit (SQLite). SQLite has one writer and every commit waits for
// the disk (synchronous=FULL), so the commit rate, not the statements,
// bounds the write throughput. Write transactions are therefore queued to
// one writer goroutine, which runs every transaction that arrived while the
// previous commit was waiting for the disk inside one database transaction
// and commits them together: one fsync for the whole group.
//
// Each caller still gets its own result: its work runs inside a SAVEPOINT,
// so a caller whose fn fails (error or panic) is rolled back to the
// savepoint alone and the others commit. A caller returns only once the
// group's commit is durable, so "committed when InTx returns" is unchanged.
// A storage failure that aborts the whole transaction (disk full, I/O
// error) or fails the commit fails every caller of the group, as it would
// have failed each of their own transactions; nothing is committed then.
//
// Statements inside a group run with their caller's context values but
// without its cancellation: SQLite rolls back the whole transaction when a
// statement is interrupted, which would undo the other callers' work. A
// caller cancelled before its turn is not run.

// maxGroup bounds the transactions committed together.
const maxGroup = 128

// errClosed is returned for a write attempted after Close.
var errClosed = errors.New("store closed")

// groupReq is one caller's transaction waiting for the writer.
type groupReq struct {
	ctx context.Context
	fn  func(tx *sql.Tx) error
	// lazy: the caller needs its commit durable against a crash of this
	// process only, not yet against power loss (see store.RawInput.
	// DeferSync); a group made only of lazy callers skips the fsync.
	lazy  bool
	state atomic.Int32 // reqQueued, reqTaken or reqAbandoned
	done  chan struct{}
	err   error
	panic any
}

const (
	reqQueued int32 = iota
	reqTaken
	reqAbandoned
)

// grouper is the queue in front of the writer goroutine.
type grouper struct {
	mu      sync.Mutex
	queue   []*groupReq
	closed  bool
	wake    chan struct{}
	stopped chan struct{}
}

func (s *DB) startGroup() {
	s.grp = &grouper{wake: make(chan struct{}, 1), stopped: make(chan struct{})}
	go s.groupLoop()
}

// enqueue adds r; false once the store is closed.
func (g *grouper) enqueue(r *groupReq) bool {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return false
	}
	g.queue = append(g.queue, r)
	g.mu.Unlock()
	select {
	case g.wake <- struct{}{}:
	default:
	}
	return true
}

// take removes up to maxGroup queued requests, skipping abandoned ones; it
// reports whether the loop should stop (closed and nothing left).
func (g *grouper) take() ([]*groupReq, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var batch []*groupReq
	n := 0
	for n < len(g.queue) && len(batch) < maxGroup {
		r := g.queue[n]
		n++
		if r.state.CompareAndSwap(reqQueued, reqTaken) {
			batch = append(batch, r)
		}
	}
	clear(g.queue[:n])
	g.queue = g.queue[n:]
	if len(g.queue) == 0 {
		g.queue = nil
	}
	return batch, g.closed && len(batch) == 0 && len(g.queue) == 0
}

// requeue puts requests that were taken but not run back at the front of
// the queue, for the next group.
func (g *grouper) requeue(rs []*groupReq) {
	if len(rs) == 0 {
		return
	}
	g.mu.Lock()
	for _, r := range rs {
		r.state.Store(reqQueued)
	}
	g.queue = append(append([]*groupReq(nil), rs...), g.queue...)
	g.mu.Unlock()
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// stop makes the loop exit once the queue is drained and waits for it.
func (g *grouper) stop() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	select {
	case g.wake <- struct{}{}:
	default:
	}
	<-g.stopped
}

func (s *DB) groupLoop() {
	g := s.grp
	defer close(g.stopped)
	for range g.wake {
		for {
			batch, stop := g.take()
			if stop {
				return
			}
			if len(batch) == 0 {
				break
			}
			t0 := time.Now()
			s.commitGroup(batch)
			s.busy.Add(int64(time.Since(t0)))
		}
	}
}

// groupRun runs fn in the next group and waits for the group's commit.
func (s *DB) groupRun(ctx context.Context, lazy bool, fn func(tx *sql.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	s.grpOnce.Do(s.startGroup)
	r := &groupReq{ctx: ctx, fn: fn, lazy: lazy, done: make(chan struct{})}
	if s.grp == nil || !s.grp.enqueue(r) { // nil: closed before any write
		return fmt.Errorf("begin: %w", errClosed)
	}
	wait := s.writerWait()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-r.done:
	case <-ctx.Done():
		if r.state.CompareAndSwap(reqQueued, reqAbandoned) {
			return fmt.Errorf("begin: %w", ctx.Err())
		}
		<-r.done // already running: its outcome is the caller's
	case <-t.C:
		if r.state.CompareAndSwap(reqQueued, reqAbandoned) {
			return fmt.Errorf("begin: %w after %s", ErrWriterBusy, wait)
		}
		<-r.done
	}
	if r.panic != nil {
		panic(r.panic)
	}
	return r.err
}

// runReq runs one caller's fn, turning a panic into a value re-raised in
// the caller's goroutine.
func runReq(r *groupReq, tx *sql.Tx) (err error, panicked any) {
	defer func() {
		if p := recover(); p != nil {
			panicked = p
		}
	}()
	return r.fn(tx), nil
}

func (r *groupReq) finish(err error) {
	if err != nil && r.err == nil && r.panic == nil {
		r.err = err
	}
	close(r.done)
}

// commitGroup runs the batch in one transaction, each caller in its own
// savepoint, and commits once.
func (s *DB) commitGroup(batch []*groupReq) {
	bg := context.Background()
	s.prepareWanted(bg)
	lazy, err := s.setSync(bg, batch)
	if err != nil {
		for _, r := range batch {
			r.finish(err)
		}
		return
	}
	tx, err := s.W.BeginTx(bg, nil)
	if err != nil {
		for _, r := range batch {
			r.finish(fmt.Errorf("begin: %w", err))
		}
		return
	}
	single := len(batch) == 1
	var ok []*groupReq
	var abort error
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.finish(fmt.Errorf("begin: %w", err))
			continue
		}
		if !single {
			if _, err := s.txExec(bg, tx, "SAVEPOINT g"); err != nil {
				abort = fmt.Errorf("savepoint: %w", err)
				s.grp.requeue(batch[i:]) // not run: they get a fresh transaction
				break
			}
		}
		err, p := runReq(r, tx)
		if err == nil && p == nil {
			if !single {
				if _, err := s.txExec(bg, tx, "RELEASE g"); err != nil {
					abort = fmt.Errorf("release savepoint: %w", err)
					r.finish(abort)
					s.grp.requeue(batch[i+1:])
					break
				}
			}
			ok = append(ok, r)
			continue
		}
		r.err, r.panic = err, p
		if single {
			_ = tx.Rollback()
			r.finish(nil)
			return
		}
		if _, e := s.txExec(bg, tx, "ROLLBACK TO g"); e != nil {
			// The transaction itself is gone (SQLite rolled it back).
			abort = fmt.Errorf("transaction aborted by the database: %w", e)
		} else if _, e := s.txExec(bg, tx, "RELEASE g"); e != nil {
			abort = fmt.Errorf("release savepoint: %w", e)
		}
		r.finish(nil)
		if abort != nil {
			s.grp.requeue(batch[i+1:])
			break
		}
	}
	if abort != nil {
		_ = tx.Rollback()
		for _, r := range ok {
			r.finish(abort)
		}
		return
	}
	if len(ok) == 0 {
		_ = tx.Rollback()
		return
	}
	if err := tx.Commit(); err != nil {
		err = fmt.Errorf("commit: %w", err)
		for _, r := range ok {
			r.finish(err)
		}
		return
	}
	s.groups.Add(1)
	s.grouped.Add(int64(len(ok)))
	if lazy {
		s.lazyGroups.Add(1)
	}
	if s.AfterCommit != nil {
		s.AfterCommit()
	}
	for _, r := range ok {
		r.finish(nil)
	}
}

// SQLite synchronous settings of the writer connection, as setSync last
// set them (syncUnknown: not set since open, or a PRAGMA failed; the
// connection then has the DSN's FULL or the last setting).
const (
	syncUnknown int32 = iota
	syncFull
	syncNormal
)

// setSync sets the writer connection's synchronous mode for the group:
// NORMAL when every caller in it is lazy (in WAL mode the commit is then
// written to the WAL but not fsynced: it survives a crash of this process,
// the kernel keeps the write, and the next FULL commit's fsync of the WAL
// covers it too), FULL otherwise. It reports whether the group runs
// without fsync. Called on the writer, no transaction open. A failure to
// set FULL fails the group: its callers must not be told their commit is
// durable when it may not be.
func (s *DB) setSync(ctx context.Context, batch []*groupReq) (lazy bool, err error) {
	want := syncNormal
	for _, r := range batch {
		if !r.lazy {
			want = syncFull
			break
		}
	}
	if want == s.syncMode {
		return want == syncNormal, nil
	}
	pragma := "PRAGMA synchronous=FULL"
	if want == syncNormal {
		pragma = "PRAGMA synchronous=NORMAL"
	}
	if _, err := s.W.ExecContext(ctx, pragma); err != nil {
		s.syncMode = syncUnknown
		if want == syncNormal {
			return false, nil // FULL, or unknown: syncing more is safe
		}
		return false, fmt.Errorf("begin: %s: %w", pragma, err)
	}
	s.syncMode = want
	return want == syncNormal, nil
}

// GroupStats reports the group commits made and the transactions they
// carried (SQLite; zero for PostgreSQL).
func (s *DB) GroupStats() (commits, txs int64) { return s.groups.Load(), s.grouped.Load() }

// LazyGroups reports the group commits made without an fsync because
// every transaction in them was lazy (RawInput.DeferSync; SQLite only).
func (s *DB) LazyGroups() int64 { return s.lazyGroups.Load() }

// WriterBusy reports the wall-clock time the SQLite writer goroutine spent
// running and committing groups (zero for PostgreSQL): with the number of
// transactions, what each costs the single writer.
func (s *DB) WriterBusy() time.Duration { return time.Duration(s.busy.Load()) }

// stmtCtx is the context for a statement inside a write transaction: on
// SQLite the caller's cancellation is dropped (an interrupted statement
// would roll back the whole group).
func (s *DB) stmtCtx(ctx context.Context) context.Context {
	if s.WriterSlots == nil {
		return ctx
	}
	return context.WithoutCancel(ctx)
}
