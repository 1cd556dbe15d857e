package sqlite

import (
	"context"
	"database/sql"
	"sync"
	"time"
)

// Checkpoints. In WAL mode every commit appends pages to the -wal file and
// a checkpoint copies them back into the database file. SQLite's automatic
// checkpoint runs on the connection that committed, after its commit, once
// the WAL holds wal_autocheckpoint pages (1,000 by default): on acquit's
// single writer goroutine, where it cost 11% of the process in
// BenchmarkAutomaticResponse32 (copying pages, then an fsync of the
// database file), while every other write waited.
//
// The store therefore checkpoints from its own connection in the
// background: the writer wakes the checkpointer after each group commit,
// and it runs a PASSIVE checkpoint (it never blocks the writer or the
// readers) at most every checkpointEvery. A PASSIVE checkpoint cannot
// rewind the WAL while the writer keeps appending, so the writer keeps an
// automatic checkpoint with a higher threshold (writerAutoCheckpoint
// pages): when reached, it copies only the few pages the background has
// not yet copied, and the WAL starts over from its beginning. Durability
// is unchanged: a commit is durable once the WAL is synced (synchronous=
// FULL), whoever checkpoints it later, and a checkpoint syncs the WAL
// before copying and the database file after.

// checkpointEvery is the least time between two background checkpoints.
const checkpointEvery = 100 * time.Millisecond

// writerAutoCheckpoint is the writer connection's wal_autocheckpoint, in
// pages (4 KiB): the WAL's size bound when the background checkpoints
// cannot rewind it.
const writerAutoCheckpoint = 4000

type checkpointer struct {
	db   *sql.DB
	kick chan struct{}
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

func newCheckpointer(db *sql.DB) *checkpointer {
	c := &checkpointer{db: db, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go c.loop()
	return c
}

// wake asks for a checkpoint; it never blocks.
func (c *checkpointer) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *checkpointer) loop() {
	defer close(c.done)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-c.kick:
		}
		// Errors (SQLITE_BUSY from another process's checkpoint, a
		// closing file) are left to the next wake or to the writer's own
		// automatic checkpoint.
		_, _ = c.db.ExecContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)")
		t.Reset(checkpointEvery)
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
	}
}

// close stops the loop and closes its connection.
func (c *checkpointer) close() {
	c.once.Do(func() {
		close(c.stop)
		<-c.done
		c.db.Close()
	})
}
