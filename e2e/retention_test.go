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
// metric did not exist and every row stayed.
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
