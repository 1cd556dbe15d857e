package schedule

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/acquit/acquit/daemon/store/postgres"
	"github.com/acquit/acquit/internal/pgtest"
)

// TestInstancesOnPostgres runs three instances on one PostgreSQL schema
// (skipped without ACQUIT_TEST_PG_DSN, failed under CI=true): each due
// time runs once, and a run still going on one instance blocks the next
// due time on all of them.
func TestInstancesOnPostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	start := time.Date(2027, 6, 1, 10, 0, 30, 0, time.UTC)
	clock := clockwork.NewFakeClockAt(start)
	var calls atomic.Int32
	release := make(chan struct{})
	started := make(chan struct{}, 8)
	reg := NewRegistry()
	reg.Register("ebics.fetch_acks", func(ctx context.Context, p map[string]string) (string, error) {
		if calls.Add(1) == 2 {
			started <- struct{}{}
			<-release
		}
		return "fetched", nil
	})
	entries := []Entry{{Name: "acks", Spec: "* * * * *", Job: "ebics.fetch_acks", Timezone: "UTC"}}
	var hs []*harness
	for _, name := range []string{"a", "b", "c"} {
		st, err := postgres.Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		h := newHarness(t, start, st, name, entries, reg, clock)
		h.start()
		hs = append(hs, h)
	}
	taken := func() float64 {
		var n float64
		for _, h := range hs {
			n += testutil.ToFloat64(h.s.metrics.skipped.WithLabelValues("acks", "taken"))
		}
		return n
	}
	// 10:01: one instance runs it, two skip.
	hs[0].advanceTo(3, start.Add(30*time.Second))
	hs[0].waitRuns("acks", 1)
	waitFor(t, "two skips", func() bool { return taken() == 2 })
	// 10:02: the run blocks on one instance.
	hs[0].advanceTo(3, start.Add(90*time.Second))
	<-started
	waitFor(t, "two more skips", func() bool { return taken() == 4 })
	// 10:03: the 10:02 run is still going: nobody starts one (3 loops + its timeout timer).
	hs[0].advanceTo(4, start.Add(150*time.Second))
	waitFor(t, "three more skips", func() bool {
		var overlap float64
		for _, h := range hs {
			overlap += testutil.ToFloat64(h.s.metrics.skipped.WithLabelValues("acks", "overlap"))
		}
		return taken()+overlap == 7
	})
	close(release)
	rs := hs[0].waitRuns("acks", 2)
	if !rs[1].Scheduled.Equal(start.Add(90*time.Second)) || !rs[1].OK {
		t.Errorf("runs = %+v", rs)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("job ran %d times, want 2", n)
	}
}
