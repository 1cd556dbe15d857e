package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/acquit/acquit/daemon/httpapi"
	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/internal/demo"
)

// TestKill9DuringDispatch kills the daemon with SIGKILL three times while it
// delivers 400 events of 10 subjects to a Lua hook, restarts it each time,
// and checks that every event reached the hook at least once and that each
// subject's events were first delivered in the order they were emitted.
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
	ids := map[string]int{} // id -> seq within subject
	for i := 0; i < perSubject; i++ {
		for s := 0; s < subjects; s++ {
			var ev store.Event
			body := httpapi.EmitRequest{Type: "custom.test", Subject: fmt.Sprintf("subject-%d", s), Data: []byte(fmt.Sprintf(`{"seq":%d}`, i))}
			if _, err := h.Client().Do(c, "POST", "/v1/events", body, &ev); err != nil {
				t.Fatal(err)
			}
			ids[ev.ID] = i
		}
	}
	for round, at := range []int{60, 150, 260} {
		waitFor(t, 2*time.Minute, fmt.Sprintf("%d deliveries before kill %d", at, round+1), func() bool { return rec.distinct() >= at })
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
	waitFor(t, 2*time.Minute, "all events delivered", func() bool { return rec.distinct() >= total })
	if err := h.Stop(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}

	got := rec.all()
	first := map[string]bool{}
	last := map[string]int{}
	dups := 0
	for _, d := range got {
		seq, ok := ids[d.ID]
		if !ok {
			t.Fatalf("delivery of an unknown event %s", d.ID)
		}
		if first[d.ID] {
			dups++
			continue
		}
		first[d.ID] = true
		if prev, ok := last[d.Subject]; ok && seq != prev+1 {
			t.Fatalf("subject %s: event seq %d first delivered after seq %d", d.Subject, seq, prev)
		} else if !ok && seq != 0 {
			t.Fatalf("subject %s: first delivery is seq %d", d.Subject, seq)
		}
		last[d.Subject] = seq
	}
	if len(first) != total {
		t.Fatalf("%d of %d events delivered", len(first), total)
	}
	t.Logf("%d events, %d deliveries (%d repeated after kills), 3 kill -9", total, len(got), dups)
}
