package hooks

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// fakeHeap drives a watchdog without allocating.
type fakeHeap struct {
	heap, live atomic.Uint64
	gcs        atomic.Int32
	afterGC    atomic.Uint64 // live heap a forced GC reveals
}

func newFakeWatchdog(budget uint64) (*watchdog, *fakeHeap) {
	f := &fakeHeap{}
	w := newWatchdog(budget, time.Millisecond)
	w.forceEvery = 0
	w.heap, w.live = f.heap.Load, f.live.Load
	w.gc = func() { f.gcs.Add(1); f.live.Store(f.afterGC.Load()) }
	return w, f
}

func waitCancelled(t *testing.T, ctx context.Context) {
	t.Helper()
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("call over budget not cancelled")
	}
	if !errors.Is(context.Cause(ctx), ErrMemoryLimit) {
		t.Errorf("cause = %v", context.Cause(ctx))
	}
}

func TestWatchdogCancelsOnlyCallsOverBudget(t *testing.T) {
	w, f := newFakeWatchdog(100)
	ctx1, cancel1 := context.WithCancelCause(context.Background())
	defer cancel1(nil)
	ctx2, cancel2 := context.WithCancelCause(context.Background())
	defer cancel2(nil)
	f.live.Store(0)
	w1 := w.add(cancel1)
	f.live.Store(50)
	w2 := w.add(cancel2)
	// The last GC saw 120 live: 120 over base 0, 70 over base 50.
	f.live.Store(120)
	f.heap.Store(130)
	waitCancelled(t, ctx1)
	w.remove(w1)
	if ctx2.Err() != nil {
		t.Error("call under budget cancelled")
	}
	if f.gcs.Load() != 0 {
		t.Errorf("%d forced GCs, want none (the live heap was enough)", f.gcs.Load())
	}
	w.remove(w2)
}

func TestWatchdogForcesGCOnlyWhenGarbageMayExplain(t *testing.T) {
	w, f := newFakeWatchdog(100)
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	wt := w.add(cancel)
	defer w.remove(wt)
	// Heap 150 over base but a GC finds only 60 live: garbage, no stop.
	f.afterGC.Store(60)
	f.heap.Store(150)
	for f.gcs.Load() < 3 {
		time.Sleep(time.Millisecond)
	}
	if ctx.Err() != nil {
		t.Fatal("garbage counted as the call's memory")
	}
	// Now the GC finds 180 live: stop.
	f.afterGC.Store(180)
	waitCancelled(t, ctx)
}

func TestWatchdogLoopStopsAndRestarts(t *testing.T) {
	w, f := newFakeWatchdog(100)
	_, cancel1 := context.WithCancelCause(context.Background())
	w1 := w.add(cancel1)
	w.remove(w1)
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
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	wt := w.add(cancel)
	defer w.remove(wt)
	f.live.Store(500)
	waitCancelled(t, ctx)
}
