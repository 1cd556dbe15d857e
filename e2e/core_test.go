package e2e

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/acquit/acquit/daemon/httpapi"
	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/internal/demo"
)

// TestKill9DuringDispatch kills the daemon with SIGKILL three times while it
// delivers 400 events of 10 subjects to a Lua hook, the first two kills
// while the events are still being emitted (an emitter keeps posting to the
// admin API across the kills, retrying what failed), restarts it each time,
// and checks that every acknowledged event reached the hook at least once
// and that each subject's events were first delivered in the order they
// were emitted. An emission whose response a kill cut off may have been
// committed and is posted again: the events are therefore identified by
// (subject, seq) from their data, a repeated seq counting as a duplicate.
func TestKill9DuringDispatch(t *testing.T) {
	rec := newRecorder(t, 25*time.Millisecond) // 4 workers: at most ~160 deliveries/s, so the kills land mid-dispatch
	h := newHarness(t)
	tp := h.Template()
	tp.RecorderURL = rec.srv.URL
	tp.Hooks = []demo.HookData{{Events: `["custom.*"]`, Script: "record.lua", Function: "on_event"}}
	c := ctx(t)
	if err := h.Start(c); err != nil {
		t.Fatal(err)
	}
	const subjects, perSubject = 10, 40
	total := subjects * perSubject
	var mu sync.Mutex
	acked := map[string]string{} // id -> subject/seq, for the events the API acknowledged
	emitted := 0                 // events acknowledged so far
	emitDone := make(chan struct{})
	go func() {
		defer close(emitDone)
		for i := 0; i < perSubject; i++ {
			for s := 0; s < subjects; s++ {
				body := httpapi.EmitRequest{Type: "custom.test", Subject: fmt.Sprintf("subject-%d", s), Data: []byte(fmt.Sprintf(`{"seq":%d}`, i))}
				for {
					var ev store.Event
					if _, err := h.Client().Do(c, "POST", "/v1/events", body, &ev); err == nil {
						mu.Lock()
						acked[ev.ID] = fmt.Sprintf("%s/%d", body.Subject, i)
						emitted++
						mu.Unlock()
						break
					}
					if c.Err() != nil {
						return
					}
					time.Sleep(20 * time.Millisecond) // daemon down: retry once it is back
				}
				time.Sleep(4 * time.Millisecond)
			}
		}
	}()
	emittedNow := func() int { mu.Lock(); defer mu.Unlock(); return emitted }
	killsWhileEmitting := 0
	for round, at := range []int{60, 150, 260} {
		waitFor(t, 2*time.Minute, fmt.Sprintf("%d emitted and %d deliveries before kill %d", at, at/3, round+1), func() bool {
			return emittedNow() >= at && rec.distinct() >= at/3
		})
		if emittedNow() < total {
			killsWhileEmitting++
		}
		if err := h.Kill9(true); err != nil {
			t.Fatal(err)
		}
		if rec.distinct() >= total {
			t.Fatalf("everything was delivered before kill %d: the test did not kill mid-dispatch", round+1)
		}
		if err := h.Start(c); err != nil {
			t.Fatal(err)
		}
	}
	if killsWhileEmitting < 2 {
		t.Fatalf("only %d kills landed while events were being emitted", killsWhileEmitting)
	}
	<-emitDone
	waitFor(t, 2*time.Minute, "all events delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		seen := map[string]bool{}
		for _, d := range rec.all() {
			seen[d.ID] = true
		}
		for id := range acked {
			if !seen[id] {
				return false
			}
		}
		return true
	})
	if err := h.Stop(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}

	got := rec.all()
	firstID := map[string]bool{}
	firstSeq := map[string]bool{}
	last := map[string]int{}
	dups := 0
	for _, d := range got {
		if firstID[d.ID] {
			dups++
			continue
		}
		firstID[d.ID] = true
		f, ok := d.Data["seq"].(float64)
		if !ok {
			t.Fatalf("delivery without seq: %+v", d)
		}
		seq := int(f)
		key := fmt.Sprintf("%s/%d", d.Subject, seq)
		if firstSeq[key] {
			dups++ // emitted twice: committed, response lost to a kill, posted again
			continue
		}
		firstSeq[key] = true
		if prev, ok := last[d.Subject]; ok && seq != prev+1 {
			t.Fatalf("subject %s: event seq %d first delivered after seq %d", d.Subject, seq, prev)
		} else if !ok && seq != 0 {
			t.Fatalf("subject %s: first delivery is seq %d", d.Subject, seq)
		}
		last[d.Subject] = seq
	}
	for id, key := range acked {
		if !firstID[id] {
			t.Fatalf("acknowledged event %s (%s) lost", id, key)
		}
	}
	if len(firstSeq) != total {
		t.Fatalf("%d of %d (subject, seq) delivered", len(firstSeq), total)
	}
	t.Logf("%d events (%d acknowledged ids), %d deliveries (%d repeated), 3 kill -9, %d of them while emitting",
		total, len(acked), len(got), dups, killsWhileEmitting)
}
