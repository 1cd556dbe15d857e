package e2e

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/acquit/acquit/daemon/httpapi"
	"github.com/acquit/acquit/internal/demo"
	"github.com/acquit/acquit/internal/pgtest"
)

// TestTwoInstancesOnPostgres runs two acquit daemons on one PostgreSQL
// database, as several instances share the work: events emitted through
// either are each delivered (at least once, in order per subject), one
// instance is killed with SIGKILL midway and the other carries on alone.
func TestTwoInstancesOnPostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	rec := newRecorder(t, 10*time.Millisecond)
	var hs []*demo.Harness
	for i := 0; i < 2; i++ {
		h := newHarness(t)
		if err := os.WriteFile(h.SecretPath("pg-dsn"), []byte(dsn), 0o600); err != nil {
			t.Fatal(err)
		}
		tp := h.Template()
		tp.Instance = fmt.Sprintf("node%d", i+1)
		tp.PostgresDSNFile = h.SecretPath("pg-dsn")
		tp.RecorderURL = rec.srv.URL
		tp.Hooks = []demo.HookData{{Events: `["custom.*"]`, Script: "record.lua", Function: "on_event"}}
		if err := h.Start(ctx(t)); err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	c := ctx(t)
	const subjects, per = 8, 25
	ids := map[string]int{}
	for i := 0; i < per; i++ {
		for s := 0; s < subjects; s++ {
			h := hs[(i+s)%2]
			var ev struct {
				ID string `json:"id"`
			}
			body := httpapi.EmitRequest{Type: "custom.multi", Subject: fmt.Sprintf("s%d", s), Data: []byte(fmt.Sprintf(`{"seq":%d}`, i))}
			if _, err := h.Client().Do(c, "POST", "/v1/events", body, &ev); err != nil {
				t.Fatal(err)
			}
			ids[ev.ID] = i
		}
	}
	total := subjects * per
	waitFor(t, time.Minute, "a third delivered", func() bool { return rec.distinct() >= total/3 })
	if err := hs[0].Kill9(true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, "all delivered by the surviving instance", func() bool { return rec.distinct() >= total })
	if err := hs[1].Stop(); err != nil {
		t.Fatal(err)
	}
	first := map[string]bool{}
	last := map[string]int{}
	for _, d := range rec.all() {
		seq, ok := ids[d.ID]
		if !ok {
			t.Fatalf("unknown event %s", d.ID)
		}
		if first[d.ID] {
			continue
		}
		first[d.ID] = true
		if prev, ok := last[d.Subject]; (ok && seq != prev+1) || (!ok && seq != 0) {
			t.Fatalf("subject %s: seq %d first delivered after %d", d.Subject, seq, prev)
		}
		last[d.Subject] = seq
	}
	if len(first) != total {
		t.Fatalf("%d of %d delivered", len(first), total)
	}
	t.Logf("%d events over 2 instances on PostgreSQL, %d deliveries, one instance killed", total, len(rec.all()))
}
