package server

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/acquit/acquit/daemon/store"
)

// wakingStore wakes the outbox dispatcher after every committed transaction
// that emitted an event, so hooks run at once instead of at the next poll,
// whichever package committed it.
type wakingStore struct {
	store.Store
	wake atomic.Pointer[func()]
}

type emitWatch struct {
	store.Tx
	emitted bool
}

func (t *emitWatch) Emit(ctx context.Context, ev store.NewEvent) (store.Event, error) {
	e, err := t.Tx.Emit(ctx, ev)
	if err == nil {
		t.emitted = true
	}
	return e, err
}

// InTx runs fn and wakes the dispatcher if fn emitted and the commit
// succeeded.
func (s *wakingStore) InTx(ctx context.Context, fn func(tx store.Tx) error) error {
	var w *emitWatch
	err := s.Store.InTx(ctx, func(tx store.Tx) error {
		w = &emitWatch{Tx: tx}
		return fn(w)
	})
	if err == nil && w != nil && w.emitted {
		if f := s.wake.Load(); f != nil {
			(*f)()
		}
	}
	return err
}

// The optional store interfaces pass through the wrapper.
var (
	_ store.BatchCompleter = (*wakingStore)(nil)
	_ store.EventPruner    = (*wakingStore)(nil)
	_ store.LeaseExpirer   = (*wakingStore)(nil)
)

// CompleteEvents forwards to the store's group commit, or completes one by
// one.
func (s *wakingStore) CompleteEvents(ctx context.Context, worker string, ids []string) ([]error, error) {
	if bc, ok := s.Store.(store.BatchCompleter); ok {
		return bc.CompleteEvents(ctx, worker, ids)
	}
	errs := make([]error, len(ids))
	for i, id := range ids {
		errs[i] = s.Store.CompleteEvent(ctx, id, worker)
	}
	return errs, nil
}

// PruneEvents forwards to the store when it can prune.
func (s *wakingStore) PruneEvents(ctx context.Context, deliveredBefore time.Time) (int, error) {
	if p, ok := s.Store.(store.EventPruner); ok {
		return p.PruneEvents(ctx, deliveredBefore)
	}
	return 0, nil
}

// ExpireLeases forwards to the store when it can.
func (s *wakingStore) ExpireLeases(ctx context.Context, prefix, keep string, now time.Time) (int, error) {
	if p, ok := s.Store.(store.LeaseExpirer); ok {
		return p.ExpireLeases(ctx, prefix, keep, now)
	}
	return 0, nil
}

var _ store.InstanceRunAbandoner = (*wakingStore)(nil)

// AbandonInstanceRuns forwards to the store when it can.
func (s *wakingStore) AbandonInstanceRuns(ctx context.Context, instance string) (int, error) {
	if a, ok := s.Store.(store.InstanceRunAbandoner); ok {
		return a.AbandonInstanceRuns(ctx, instance)
	}
	return 0, nil
}
