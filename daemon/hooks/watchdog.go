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
// process is sampled: every interval while at least one call runs. When the
// growth over a call's starting point exceeds the budget, a GC is forced to
// discount garbage, and calls still over budget are cancelled with
// ErrMemoryLimit. With concurrent calls, an innocent call running next to a
// hog may be stopped too (it is retried by the outbox).
type watchdog struct {
	budget   uint64
	interval time.Duration
	mu       sync.Mutex
	calls    map[*watch]struct{}
	running  bool
	lastGC   time.Time
	heap     func() uint64 // current heap, garbage included
	base     func() uint64 // live heap at the last GC
}

type watch struct {
	base   uint64
	cancel context.CancelCauseFunc
}

func newWatchdog(budget uint64, interval time.Duration) *watchdog {
	return &watchdog{budget: budget, interval: interval, calls: map[*watch]struct{}{}, heap: heapBytes, base: liveHeapBytes}
}

// heapBytes reads the bytes of heap objects (live and not yet swept).
func heapBytes() uint64 { return readHeap("/memory/classes/heap/objects:bytes") }

// liveHeapBytes reads the live heap as marked by the last GC: the baseline
// of a call, so garbage left by earlier calls (a stopped hog's strings)
// does not raise the next call's allowance.
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

// add registers a running call.
func (w *watchdog) add(cancel context.CancelCauseFunc) *watch {
	wt := &watch{base: w.base(), cancel: cancel}
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
		var minBase uint64 = ^uint64(0)
		for c := range w.calls {
			if c.base < minBase {
				minBase = c.base
			}
		}
		w.mu.Unlock()
		h := w.heap()
		if h <= minBase || h-minBase <= w.budget {
			continue
		}
		// Over budget for at least one call: discount garbage first.
		if time.Since(w.lastGC) > 50*time.Millisecond {
			runtime.GC()
			w.lastGC = time.Now()
			h = w.heap()
		}
		w.mu.Lock()
		for c := range w.calls {
			if h > c.base && h-c.base > w.budget {
				c.cancel(ErrMemoryLimit)
				delete(w.calls, c)
			}
		}
		w.mu.Unlock()
	}
}
