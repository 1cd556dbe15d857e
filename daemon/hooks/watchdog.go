package hooks

import (
	"context"
	"runtime"
	"runtime/metrics"
	"sync"
	"time"
)

// watchdog stops calls when the heap grows by more than the budget while
// they run. gopher-lua has no allocation hook, so the heap of the whole
// process is watched, every interval while at least one call runs:
//
//   - the live heap marked by the last GC is compared with the live heap
//     when each call started; a call over budget is cancelled with
//     ErrMemoryLimit. A script allocating fast triggers GCs itself, so this
//     needs no forced GC;
//   - when the current heap (garbage included) is over budget but the last
//     GC says otherwise, a GC is forced (at most once per forceEvery) to
//     catch slow growth below the GC's own trigger.
//
// With concurrent calls, an innocent call running next to a hog may be
// stopped too (the outbox retries it).
type watchdog struct {
	budget     uint64
	interval   time.Duration
	forceEvery time.Duration
	mu         sync.Mutex
	calls      map[*watch]struct{}
	running    bool
	lastGC     time.Time
	heap       func() uint64 // current heap, garbage included
	live       func() uint64 // live heap at the last GC
	gc         func()
}

type watch struct {
	base   uint64
	cancel context.CancelCauseFunc
}

func newWatchdog(budget uint64, interval time.Duration) *watchdog {
	return &watchdog{budget: budget, interval: interval, forceEvery: time.Second, calls: map[*watch]struct{}{},
		heap: heapBytes, live: liveHeapBytes, gc: runtime.GC}
}

// heapBytes reads the bytes of heap objects (live and not yet swept).
func heapBytes() uint64 { return readHeap("/memory/classes/heap/objects:bytes") }

// liveHeapBytes reads the live heap as marked by the last GC.
func liveHeapBytes() uint64 { return readHeap("/gc/heap/live:bytes") }

func readHeap(name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	return s[0].Value.Uint64()
}

// add registers a running call; its baseline is the live heap now.
func (w *watchdog) add(cancel context.CancelCauseFunc) *watch {
	wt := &watch{base: w.live(), cancel: cancel}
	w.mu.Lock()
	w.calls[wt] = struct{}{}
	if !w.running {
		w.running = true
		go w.loop()
	}
	w.mu.Unlock()
	return wt
}

// remove unregisters a call.
func (w *watchdog) remove(wt *watch) {
	w.mu.Lock()
	delete(w.calls, wt)
	w.mu.Unlock()
}

// over cancels the calls whose baseline is more than the budget below
// heap.
func (w *watchdog) over(heap uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for c := range w.calls {
		if heap > c.base && heap-c.base > w.budget {
			c.cancel(ErrMemoryLimit)
			delete(w.calls, c)
		}
	}
}

func (w *watchdog) loop() {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for range t.C {
		w.mu.Lock()
		if len(w.calls) == 0 {
			w.running = false
			w.mu.Unlock()
			return
		}
		minBase := ^uint64(0)
		for c := range w.calls {
			minBase = min(minBase, c.base)
		}
		w.mu.Unlock()
		if live := w.live(); live > minBase && live-minBase > w.budget {
			w.over(live)
			continue
		}
		h := w.heap()
		if h <= minBase || h-minBase <= w.budget || time.Since(w.lastGC) < w.forceEvery {
			continue
		}
		// Over budget unless it is garbage: let a GC tell.
		w.gc()
		w.lastGC = time.Now()
		w.over(w.live())
	}
}
