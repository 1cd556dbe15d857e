package schedule

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/daemon/store/sqlite"
)

// openStore opens a real SQLite store in a temp dir; path "" makes a new
// file, otherwise the same file is opened again (a second instance).
func openStore(t *testing.T, path string) (*sqlite.Store, string) {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "acquit.db")
	}
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

// waitFor polls cond until it holds; it fails the test after 10s (a hang,
// not a speed check).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

type harness struct {
	t     *testing.T
	clock *clockwork.FakeClock
	st    store.Store
	reg   *Registry
	prom  *prometheus.Registry
	s     *Scheduler
}

func newHarness(t *testing.T, start time.Time, st store.Store, instance string, entries []Entry, reg *Registry, clock *clockwork.FakeClock) *harness {
	t.Helper()
	if clock == nil {
		clock = clockwork.NewFakeClockAt(start)
	}
	if reg == nil {
		reg = NewRegistry()
	}
	h := &harness{t: t, clock: clock, st: st, reg: reg, prom: prometheus.NewRegistry()}
	s, err := New(Options{Store: st, Registry: reg, Instance: instance, Clock: clock, Registerer: h.prom,
		Logger: zerolog.New(zerolog.NewTestWriter(t))}, entries)
	if err != nil {
		t.Fatal(err)
	}
	h.s = s
	return h
}

func (h *harness) start() {
	h.t.Helper()
	if err := h.s.Start(h.t.Context()); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { h.s.Stop(context.Background()) })
}

// runs lists finished runs of a schedule, oldest first.
func (h *harness) runs(name string) []store.Run {
	h.t.Helper()
	rs, err := h.st.ListRuns(context.Background(), name, 100)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []store.Run
	for i := len(rs) - 1; i >= 0; i-- {
		out = append(out, rs[i])
	}
	return out
}

func (h *harness) waitRuns(name string, n int) []store.Run {
	h.t.Helper()
	var rs []store.Run
	waitFor(h.t, "runs of "+name, func() bool {
		rs = h.runs(name)
		if len(rs) < n {
			return false
		}
		for _, r := range rs {
			if r.Finished.IsZero() {
				return false
			}
		}
		// and the in-memory overlap flag is cleared
		h.s.mu.Lock()
		f := h.s.running[name]
		h.s.mu.Unlock()
		return f == nil || !f.Load()
	})
	if len(rs) != n {
		h.t.Fatalf("%d runs of %s, want %d: %+v", len(rs), name, len(rs), rs)
	}
	return rs
}

// idle reports whether the schedule name has no run going in this
// instance (its in-memory overlap flag is clear).
func (h *harness) idle(name string) bool {
	h.s.mu.Lock()
	f := h.s.running[name]
	h.s.mu.Unlock()
	return f == nil || !f.Load()
}

// advanceTo waits until the scheduler waits on n timers, then moves the
// clock to t.
func (h *harness) advanceTo(n int, t time.Time) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.clock.BlockUntilContext(ctx, n); err != nil {
		h.t.Fatalf("scheduler never waited on %d timers: %v", n, err)
	}
	h.clock.Advance(t.Sub(h.clock.Now()))
}

func paris(t *testing.T, s string) time.Time {
	t.Helper()
	x, err := time.ParseInLocation("2006-01-02 15:04:05", s, mustLoc(t, "Europe/Paris"))
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func TestRunsAreRecorded(t *testing.T) {
	st, _ := openStore(t, "")
	reg := NewRegistry()
	var calls atomic.Int32
	reg.Register("atos.reconcile", func(ctx context.Context, p map[string]string) (string, error) {
		n := calls.Add(1)
		p["window"] = "mutated" // must not leak into the next run
		if n == 2 {
			return "", errors.New("provider unreachable")
		}
		return "checked 3 payments", nil
	})
	entries := []Entry{{Name: "reconcile", Spec: "*/5 * * * *", Timezone: "Europe/Paris", Job: "atos.reconcile",
		Params: map[string]string{"window": "24h"}}}
	reg.Register("probe", func(ctx context.Context, p map[string]string) (string, error) { return "", nil })
	h := newHarness(t, paris(t, "2027-06-01 10:01:00"), st, "node-a", entries, reg, nil)
	h.start()
	h.advanceTo(1, paris(t, "2027-06-01 10:05:00"))
	h.waitRuns("reconcile", 1)
	h.advanceTo(1, paris(t, "2027-06-01 10:10:00"))
	rs := h.waitRuns("reconcile", 2)
	if !rs[0].OK || rs[0].Summary != "checked 3 payments" || rs[0].Instance != "node-a" ||
		!rs[0].Scheduled.Equal(paris(t, "2027-06-01 10:05:00")) || !rs[0].Started.Equal(paris(t, "2027-06-01 10:05:00")) {
		t.Errorf("run 1 = %+v", rs[0])
	}
	if rs[1].OK || rs[1].Error != "provider unreachable" || !rs[1].Scheduled.Equal(paris(t, "2027-06-01 10:10:00")) {
		t.Errorf("run 2 = %+v", rs[1])
	}
	if v := testutil.ToFloat64(h.s.metrics.runs.WithLabelValues("reconcile", "ok")); v != 1 {
		t.Errorf("ok runs metric = %v", v)
	}
	if v := testutil.ToFloat64(h.s.metrics.runs.WithLabelValues("reconcile", "error")); v != 1 {
		t.Errorf("error runs metric = %v", v)
	}
	if n := testutil.CollectAndCount(h.s.metrics.duration); n != 1 {
		t.Errorf("duration series = %d", n)
	}
}

func TestJobParamsAreCopies(t *testing.T) {
	st, _ := openStore(t, "")
	reg := NewRegistry()
	seen := make(chan string, 4)
	reg.Register("x.job", func(ctx context.Context, p map[string]string) (string, error) {
		seen <- p["k"]
		p["k"] = "changed"
		return "", nil
	})
	h := newHarness(t, paris(t, "2027-06-01 10:00:30"), st, "a", []Entry{{Name: "j", Spec: "* * * * *", Job: "x.job",
		Params: map[string]string{"k": "v"}}}, reg, nil)
	h.start()
	h.advanceTo(1, paris(t, "2027-06-01 10:01:00"))
	h.waitRuns("j", 1)
	h.advanceTo(1, paris(t, "2027-06-01 10:02:00"))
	h.waitRuns("j", 2)
	if a, b := <-seen, <-seen; a != "v" || b != "v" {
		t.Errorf("params seen %q, %q; want v twice", a, b)
	}
}

func TestFailuresAreRecorded(t *testing.T) {
	st, _ := openStore(t, "")
	reg := NewRegistry()
	reg.Register("x.panics", func(ctx context.Context, p map[string]string) (string, error) { panic("boom") })
	reg.Register("x.slow", func(ctx context.Context, p map[string]string) (string, error) {
		<-ctx.Done()
		return "partial", ctx.Err()
	})
	entries := []Entry{
		{Name: "panics", Spec: "0 3 * * *", Job: "x.panics", Timezone: "UTC"},
		{Name: "missing", Spec: "0 3 * * *", Job: "x.unregistered", Timezone: "UTC"},
		{Name: "slow", Spec: "0 3 * * *", Job: "x.slow", Timezone: "UTC", Timeout: 30 * time.Second},
	}
	start := time.Date(2027, 6, 1, 2, 59, 0, 0, time.UTC)
	h := newHarness(t, start, st, "a", entries, reg, nil)
	h.start()
	h.advanceTo(3, start.Add(time.Minute))
	h.waitRuns("panics", 1)
	h.waitRuns("missing", 1)
	// The slow job waits on its timeout timer (and 3 loops on theirs).
	h.advanceTo(4, start.Add(time.Minute+30*time.Second))
	checks := map[string]string{
		"panics":  "job panicked: boom",
		"missing": `job "x.unregistered" is not registered`,
		"slow":    "context deadline exceeded",
	}
	for name, want := range checks {
		r := h.waitRuns(name, 1)[0]
		if r.OK || r.Error != want {
			t.Errorf("%s: run %+v, want error %q", name, r, want)
		}
	}
	if r := h.runs("slow")[0]; r.Summary != "partial" || !r.Finished.Equal(start.Add(90*time.Second)) {
		t.Errorf("slow run = %+v", r)
	}
}

func TestNoOverlap(t *testing.T) {
	st, _ := openStore(t, "")
	reg := NewRegistry()
	release := make(chan struct{})
	started := make(chan struct{}, 4)
	reg.Register("x.long", func(ctx context.Context, p map[string]string) (string, error) {
		started <- struct{}{}
		<-release
		return "done", nil
	})
	start := time.Date(2027, 6, 1, 10, 0, 30, 0, time.UTC)
	h := newHarness(t, start, st, "a", []Entry{{Name: "long", Spec: "* * * * *", Job: "x.long", Timezone: "UTC"}}, reg, nil)
	h.start()
	h.advanceTo(1, start.Add(30*time.Second))
	<-started
	// loop timer + the job's timeout timer
	h.advanceTo(2, start.Add(90*time.Second))
	waitFor(t, "overlap skip", func() bool {
		return testutil.ToFloat64(h.s.metrics.skipped.WithLabelValues("long", "overlap")) == 1
	})
	infos, err := h.s.List(context.Background())
	if err != nil || len(infos) != 1 || !infos[0].Running {
		t.Fatalf("List while running = %+v, %v", infos, err)
	}
	if _, err := h.s.RunNow(context.Background(), "long"); !errors.Is(err, store.ErrConflict) {
		t.Errorf("RunNow while running: %v, want ErrConflict", err)
	}
	close(release)
	rs := h.waitRuns("long", 1)
	if !rs[0].Scheduled.Equal(start.Add(30 * time.Second)) {
		t.Errorf("run = %+v", rs[0])
	}
	h.advanceTo(1, start.Add(150*time.Second))
	<-started
	rs = h.waitRuns("long", 2)
	if !rs[1].Scheduled.Equal(start.Add(150 * time.Second)) {
		t.Errorf("run after overlap = %+v", rs[1])
	}
}

func TestTwoInstancesRunOnce(t *testing.T) {
	stA, path := openStore(t, "")
	stB, _ := openStore(t, path)
	var calls atomic.Int32
	reg := NewRegistry()
	reg.Register("ebics.fetch_acks", func(ctx context.Context, p map[string]string) (string, error) {
		calls.Add(1)
		return "", nil
	})
	start := time.Date(2027, 6, 1, 10, 0, 30, 0, time.UTC)
	clock := clockwork.NewFakeClockAt(start)
	entries := []Entry{{Name: "acks", Spec: "@every 1m", Job: "ebics.fetch_acks"}}
	a := newHarness(t, start, stA, "node-a", entries, reg, clock)
	b := newHarness(t, start, stB, "node-b", entries, reg, clock)
	a.start()
	b.start()
	for i := 1; i <= 3; i++ {
		a.advanceTo(2, start.Add(time.Duration(i)*time.Minute-30*time.Second))
		a.waitRuns("acks", i)
		waitFor(t, "the other instance to skip", func() bool {
			return testutil.ToFloat64(a.s.metrics.skipped.WithLabelValues("acks", "taken"))+
				testutil.ToFloat64(b.s.metrics.skipped.WithLabelValues("acks", "taken")) == float64(i)
		})
		// The skip is counted before the skipping instance clears its
		// overlap flag: advancing the clock in between made it skip the
		// next run as "overlap" instead of "taken" (seen once in CI).
		waitFor(t, "both instances idle", func() bool { return a.idle("acks") && b.idle("acks") })
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("job ran %d times, want 3", n)
	}
}

func TestCatchUpMissedRunOnce(t *testing.T) {
	st, path := openStore(t, "")
	ctx := context.Background()
	// Last run on 25 March; the daemon was down on the 26th and 27th.
	id, err := st.StartRun(ctx, "nightly", paris(t, "2027-03-25 02:30:00"), "old", paris(t, "2027-03-25 02:30:00"))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.FinishRun(ctx, id, true, "", "", paris(t, "2027-03-25 02:31:00")); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	reg := NewRegistry()
	reg.Register("lua", func(ctx context.Context, p map[string]string) (string, error) {
		calls.Add(1)
		return p["function"], nil
	})
	entries := []Entry{
		{Name: "nightly", Spec: "30 2 * * *", Timezone: "Europe/Paris", Job: "lua", Params: map[string]string{"function": "f"}},
		{Name: "never-ran", Spec: "30 2 * * *", Timezone: "Europe/Paris", Job: "lua"},
	}
	now := paris(t, "2027-03-27 12:00:00")
	h := newHarness(t, now, st, "a", entries, reg, nil)
	h.start()
	rs := h.waitRuns("nightly", 2)
	if !rs[1].Scheduled.Equal(paris(t, "2027-03-27 02:30:00")) || !rs[1].Started.Equal(now) || rs[1].Summary != "f" {
		t.Errorf("catch-up run = %+v", rs[1])
	}
	if len(h.runs("never-ran")) != 0 {
		t.Error("a schedule that never ran must not be caught up")
	}
	h.s.Stop(ctx)

	// A restart the same day does not run it again.
	st2, _ := openStore(t, path)
	h2 := newHarness(t, now.Add(time.Hour), st2, "a", entries, reg, nil)
	h2.start()
	h2.clock.BlockUntilContext(ctx, 2) // both loops waiting: catch-up decided
	if got := len(h2.runs("nightly")); got != 2 {
		t.Errorf("%d runs after restart, want 2", got)
	}
	// The next run falls in the spring-forward gap: it runs at 03:00.
	h2.advanceTo(2, paris(t, "2027-03-28 03:00:00"))
	rs = h2.waitRuns("nightly", 3)
	h2.waitRuns("never-ran", 1)
	if !rs[2].Scheduled.Equal(paris(t, "2027-03-28 03:00:00")) {
		t.Errorf("gap-day run = %+v", rs[2])
	}
	if n := calls.Load(); n != 3 { // catch-up, gap day run, never-ran's first run
		t.Errorf("%d calls, want 3", n)
	}
}

func TestAbandonedRunUnblocks(t *testing.T) {
	st, _ := openStore(t, "")
	ctx := context.Background()
	now := time.Date(2027, 6, 1, 12, 0, 30, 0, time.UTC)
	// A run started two hours ago by a process that died.
	if _, err := st.StartRun(ctx, "job", now.Add(-2*time.Hour), "dead", now.Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	reg := NewRegistry()
	reg.Register("x.job", func(ctx context.Context, p map[string]string) (string, error) { return "ok", nil })
	h := newHarness(t, now, st, "a", []Entry{{Name: "job", Spec: "@hourly", Job: "x.job", Timezone: "UTC",
		Timeout: 10 * time.Minute}}, reg, nil)
	h.start()
	rs := h.waitRuns("job", 2) // the abandoned one, then the catch-up
	if rs[0].OK || !strings.Contains(rs[0].Error, "abandoned") {
		t.Errorf("dead run = %+v", rs[0])
	}
	if !rs[1].OK || !rs[1].Scheduled.Equal(time.Date(2027, 6, 1, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("catch-up run = %+v", rs[1])
	}
}

func TestListRunNowReloadStop(t *testing.T) {
	st, _ := openStore(t, "")
	reg := NewRegistry()
	block := make(chan struct{})
	reg.Register("x.a", func(ctx context.Context, p map[string]string) (string, error) { return "a ran", nil })
	reg.Register("x.b", func(ctx context.Context, p map[string]string) (string, error) {
		close(block)
		<-ctx.Done()
		return "", ctx.Err()
	})
	now := paris(t, "2027-10-31 01:30:00")
	h := newHarness(t, now, st, "a", []Entry{
		{Name: "b", Spec: "0 * * * *", Timezone: "Europe/Paris", Job: "x.b"},
		{Name: "a", Spec: "30 2 * * *", Timezone: "Europe/Berlin", Job: "x.a"},
	}, reg, nil)
	h.start()
	run, err := h.s.RunNow(context.Background(), "a")
	if err != nil || !run.OK || run.Summary != "a ran" {
		t.Fatalf("RunNow = %+v, %v", run, err)
	}
	// Another manual run within the same millisecond (the fake clock has
	// not moved): recorded too, due 1 ms later (due times are unique per
	// schedule, in Unix ms).
	again, err := h.s.RunNow(context.Background(), "a")
	if err != nil || !again.OK || !again.Scheduled.Equal(run.Scheduled.Truncate(time.Millisecond).Add(time.Millisecond)) {
		t.Fatalf("second RunNow in the same ms = %+v, %v; want due %v", again, err, run.Scheduled.Add(time.Millisecond))
	}
	if _, err := h.s.RunNow(context.Background(), "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RunNow unknown: %v", err)
	}
	infos, err := h.s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 2 || infos[0].Name != "a" || infos[1].Name != "b" {
		t.Fatalf("List = %+v", infos)
	}
	if infos[0].Last == nil || infos[0].Last.Summary != "a ran" || infos[0].Timezone != "Europe/Berlin" ||
		!infos[0].Next.Equal(at(t, "2027-10-31T02:30:00+02:00")) {
		t.Errorf("List a = %+v", infos[0])
	}
	if infos[1].Last != nil || !infos[1].Next.Equal(at(t, "2027-10-31T02:00:00+02:00")) {
		t.Errorf("List b = %+v", infos[1])
	}

	if err := h.s.Reload(context.Background(), []Entry{{Name: "bad", Spec: "61 * * * *", Job: "x.a"}}); err == nil {
		t.Error("Reload with a bad spec must fail")
	}
	if err := h.s.Reload(context.Background(), []Entry{{Name: "b", Spec: "45 * * * *", Timezone: "Europe/Paris", Job: "x.b"}}); err != nil {
		t.Fatal(err)
	}
	infos, _ = h.s.List(context.Background())
	if len(infos) != 1 || infos[0].Spec != "45 * * * *" || !infos[0].Next.Equal(paris(t, "2027-10-31 01:45:00")) {
		t.Fatalf("List after reload = %+v", infos)
	}
	// b runs and blocks; Stop with an expired context cancels it, and the
	// cancelled run is still recorded.
	h.advanceTo(1, paris(t, "2027-10-31 01:45:00"))
	<-block
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.s.Stop(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Stop = %v", err)
	}
	r := h.runs("b")
	if len(r) != 1 || r[0].OK || r[0].Error != "context canceled" || r[0].Finished.IsZero() {
		t.Errorf("stopped run = %+v", r)
	}
}

func TestNewRejectsBadEntries(t *testing.T) {
	st, _ := openStore(t, "")
	tests := []struct {
		entries []Entry
		want    string
	}{
		{[]Entry{{Name: "", Spec: "@hourly", Job: "x"}}, "schedule without a name"},
		{[]Entry{{Name: "a", Spec: "@hourly"}, {Name: "a", Spec: "@daily"}}, "schedule a: duplicate name"},
		{[]Entry{{Name: "a", Spec: "@hourly", Timezone: "Nowhere/Land"}}, `schedule a: unknown time zone "Nowhere/Land"`},
		{[]Entry{{Name: "a", Spec: "CRON_TZ="}}, "schedule a: invalid cron spec"},
	}
	for _, tc := range tests {
		_, err := New(Options{Store: st, Registry: NewRegistry(), Instance: "a"}, tc.entries)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want %q", tc.entries, err, tc.want)
		}
	}
	if _, err := New(Options{Registry: NewRegistry(), Instance: "a"}, nil); err == nil {
		t.Error("New without a store must fail")
	}
}

func TestMetricsReusedAcrossSchedulers(t *testing.T) {
	st, _ := openStore(t, "")
	reg := prometheus.NewRegistry()
	for i := 0; i < 2; i++ {
		if _, err := New(Options{Store: st, Registry: NewRegistry(), Instance: "a", Registerer: reg}, nil); err != nil {
			t.Fatalf("scheduler %d: %v", i, err)
		}
	}
}

// TestRealClock runs a schedule on the real clock (the default) once: the
// timer and the context.WithTimeout path work without the fake clock.
func TestRealClock(t *testing.T) {
	st, _ := openStore(t, "")
	reg := NewRegistry()
	reg.Register("x.tick", func(ctx context.Context, p map[string]string) (string, error) {
		if _, ok := ctx.Deadline(); !ok {
			return "", errors.New("no deadline")
		}
		return "tick", nil
	})
	s, err := New(Options{Store: st, Registry: reg, Instance: "real", Logger: zerolog.Nop()},
		[]Entry{{Name: "tick", Spec: "@every 1s", Job: "x.tick", Timeout: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	var last *store.Run
	waitFor(t, "a run on the real clock", func() bool {
		r, err := st.LastRun(context.Background(), "tick")
		last = r
		return err == nil && !r.Finished.IsZero()
	})
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !last.OK || last.Summary != "tick" || last.Scheduled.Nanosecond() != 0 {
		t.Errorf("run = %+v", last)
	}
}
