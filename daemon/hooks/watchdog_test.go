package hooks

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestWatchdogCancelsOnlyCallsOverBudget(t *testing.T) {
	var heap, base atomic.Uint64
	w := newWatchdog(100, time.Millisecond)
	w.heap = heap.Load
	w.base = base.Load

	ctx1, cancel1 := context.WithCancelCause(context.Background())
	defer cancel1(nil)
	ctx2, cancel2 := context.WithCancelCause(context.Background())
	defer cancel2(nil)
	base.Store(0)
	heap.Store(10)
	w1 := w.add(cancel1)
	base.Store(50)
	w2 := w.add(cancel2)
	defer w.remove(w2)

	heap.Store(120) // 120 over base 0 (> 100), 70 over base 50
	select {
	case <-ctx1.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("call over budget not cancelled")
	}
	if !errors.Is(context.Cause(ctx1), ErrMemoryLimit) {
		t.Errorf("cause = %v", context.Cause(ctx1))
	}
	w.remove(w1)
	if ctx2.Err() != nil {
		t.Error("call under budget cancelled")
	}
	// The loop stops when no call runs, and restarts with the next one.
	w.remove(w2)
	deadline := time.Now().Add(10 * time.Second)
	for {
		w.mu.Lock()
		running := w.running
		w.mu.Unlock()
		if !running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("watchdog loop did not stop")
		}
		time.Sleep(time.Millisecond)
	}
	ctx3, cancel3 := context.WithCancelCause(context.Background())
	defer cancel3(nil)
	base.Store(0)
	w3 := w.add(cancel3)
	defer w.remove(w3)
	heap.Store(500)
	select {
	case <-ctx3.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("restarted watchdog did not cancel")
	}
}
