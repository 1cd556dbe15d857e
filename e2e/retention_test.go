package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/daemon/store/sqlite"
)

// TestRawRetention (issue 9 item 13): the real daemon, started over a
// database holding a month-old flood of refused POST bodies, prunes them
// (default state.raw_retention 720h) and keeps the verified input and the
// recent refused ones. Before raw retention nothing pruned raw inputs: the
// metric did not exist and every row stayed. At the same start it deletes
// the body of a large download whose writer died an hour ago before its
// raw input was committed, and leaves one touched just now (core
// migration 008, store.SweepRawBodies).
func TestRawRetention(t *testing.T) {
	c := ctx(t)
	h := newHarness(t)
	path := filepath.Join(h.Dir, "acquit.db")
	s, err := sqlite.Open(c, path)
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-40 * 24 * time.Hour)
	rec := func(at time.Time, body string, v ...store.Verdict) int64 {
		t.Helper()
		id, err := s.RecordRaw(c, store.RawInput{Source: "atos", Channel: "automatic", RemoteAddr: "203.0.113.7",
			Method: "POST", Path: "/notify/atos/automatic", Body: []byte(body), ReceivedAt: at, Verdicts: v})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	const flood = 300
	for i := 0; i < flood; i++ {
		rec(old, fmt.Sprintf("Data=forged-%d&Seal=00", i), store.Verdict{Code: "bad_seal", Message: "seal does not match"})
	}
	rec(old, "Data=cut-short") // its verification never finished
	verified := rec(old, "Data=from-the-bank&Seal=ok", store.Verdict{Verified: true, Code: "decided", Subject: "payment:p"})
	var recent []int64
	for i := 0; i < 3; i++ {
		recent = append(recent, rec(time.Now(), "Data=forged-today", store.Verdict{Code: "bad_seal"}))
	}
	// Bodies of large downloads no raw input names: one its writer left an
	// hour ago (killed between its chunks and its raw input), swept at
	// start whatever the retention; one touched just now (a writer could
	// be at work), left alone.
	orphan := func(touched time.Time) int64 {
		t.Helper()
		var id int64
		if err := s.W.QueryRowContext(c, `INSERT INTO raw_bodies (started_at, touched_at) VALUES (?, ?) RETURNING id`,
			touched.UnixMilli(), touched.UnixMilli()).Scan(&id); err != nil {
			t.Fatal(err)
		}
		for seq := 1; seq <= 2; seq++ {
			if _, err := s.W.ExecContext(c, `INSERT INTO raw_body_chunks (body_id, seq, data) VALUES (?, ?, ?)`, id, seq, make([]byte, 1<<20)); err != nil {
				t.Fatal(err)
			}
		}
		return id
	}
	deadBody, liveBody := orphan(time.Now().Add(-time.Hour)), orphan(time.Now())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	if err := h.Start(c); err != nil {
		t.Fatal(err)
	}
	metrics := func() string { return scrape(t, h) }
	waitFor(t, time.Minute, "the first pruning run", func() bool {
		return metricValue(metrics(), "acquit_raw_prune_last_success_timestamp_seconds") > 0
	})
	m := metrics()
	if got := metricValue(m, "acquit_raw_inputs_pruned_total"); got != flood+1 {
		t.Fatalf("acquit_raw_inputs_pruned_total = %v, want %d", got, flood+1)
	}
	if got := metricValue(m, "acquit_raw_prune_errors_total"); got != 0 {
		t.Fatalf("acquit_raw_prune_errors_total = %v", got)
	}
	if got := metricValue(m, "acquit_raw_bodies_swept_total"); got != 1 {
		t.Fatalf("acquit_raw_bodies_swept_total = %v, want 1 (the body left an hour ago)", got)
	}
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	s, err = sqlite.Open(c, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var left int
	if err := s.R.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM raw_inputs`).Scan(&left); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[int64]int{deadBody: 0, liveBody: 2} {
		var n int
		if err := s.R.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM raw_body_chunks WHERE body_id = ?`, id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Fatalf("body %d: %d chunks after the start, want %d", id, n, want)
		}
	}
	if left != 1+len(recent) {
		t.Fatalf("%d raw inputs left, want %d (the verified one and the recent refused ones)", left, 1+len(recent))
	}
	for _, id := range append([]int64{verified}, recent...) {
		if _, err := s.GetRaw(c, id); err != nil {
			t.Fatalf("raw %d should be kept: %v", id, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(h.Dir, "acquit.log")); err != nil || !strings.Contains(string(b), "past their retention, pruned") {
		t.Fatal("no log line for the pruning run")
	}
}
