package server

import (
	"context"
	"sync/atomic"

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
