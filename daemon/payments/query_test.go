package payments

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/acquit/acquit/daemon/store"
)

// TestReadsDoNotWaitForTheWriter: the admin reads (Get, List,
// CountByState, History) run on the store's readers (store.View): they
// answer while a write transaction holds the single SQLite writer, and
// see what was committed before it.
func TestReadsDoNotWaitForTheWriter(t *testing.T) {
	e := newEnv(t, nil)
	st := e.start(t, 100)
	ctx := context.Background()
	inside, release, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- e.st.InTx(ctx, func(tx store.Tx) error {
			close(inside)
			<-release
			return nil
		})
	}()
	<-inside
	defer func() { close(release); <-done }()
	read := make(chan error, 1)
	go func() {
		d, err := e.svc.Get(ctx, st.Reference)
		if err == nil && d.Payment.State != StatePending {
			err = fmt.Errorf("Get: state %s", d.Payment.State)
		}
		if err == nil {
			var ps []Payment
			if ps, err = e.svc.List(ctx, ListFilter{}); err == nil && len(ps) != 1 {
				err = fmt.Errorf("List: %d payments", len(ps))
			}
		}
		if err == nil {
			var n map[State]int64
			if n, err = e.svc.CountByState(ctx); err == nil && n[StatePending] != 1 {
				err = fmt.Errorf("CountByState: %v", n)
			}
		}
		if err == nil {
			var h []store.History
			if h, err = e.svc.History(ctx, st.Reference); err == nil && len(h) != 1 {
				err = fmt.Errorf("History: %d rows", len(h))
			}
		}
		read <- err
	}()
	select {
	case err := <-read:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second): // a hang guard, not a speed bound
		t.Fatal("the reads waited for the write transaction holding the writer")
	}
}
