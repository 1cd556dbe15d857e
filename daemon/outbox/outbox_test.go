package outbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/acquit/acquit/daemon/outbox"
	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/daemon/store/sqlite"
)

func openStore(t testing.TB) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "outbox.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func emit(t testing.TB, s store.Store, evs ...store.NewEvent) []store.Event {
	t.Helper()
	var out []store.Event
	err := s.InTx(context.Background(), func(tx store.Tx) error {
		for _, ne := range evs {
			e, err := tx.Emit(context.Background(), ne)
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// waitFor polls cond until it holds; the deadline is generous (it guards
// against hangs, it does not measure speed).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func start(t *testing.T, cfg outbox.Config) *outbox.Dispatcher {
	t.Helper()
	d, err := outbox.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = d.Stop(ctx)
	})
	return d
}

func state(t *testing.T, s store.Store, id string) store.EventState {
	t.Helper()
	e, err := s.GetEvent(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return e.State
}

func TestNewRejectsBadConfig(t *testing.T) {
	s := openStore(t)
	h := func(context.Context, store.Event) error { return nil }
	for name, cfg := range map[string]outbox.Config{
		"no store":         {Handler: h},
		"no handler":       {Store: s},
		"negative workers": {Store: s, Handler: h, Workers: -1},
		"negative lease":   {Store: s, Handler: h, Lease: -time.Second},
		"negative max age": {Store: s, Handler: h, MaxAge: -time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := outbox.New(cfg); !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("New = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestBackoffFullJitter(t *testing.T) {
	one := func() float64 { return 1 }
	half := func() float64 { return 0.5 }
	zero := func() float64 { return 0 }
	bad := func() float64 { return 7 }
	base, maxD := 100*time.Millisecond, 5*time.Second
	cases := []struct {
		attempt int
		rnd     func() float64
		want    time.Duration
	}{
		{0, one, 100 * time.Millisecond},
		{1, one, 100 * time.Millisecond},
		{2, one, 200 * time.Millisecond},
		{3, one, 400 * time.Millisecond},
		{6, one, 3200 * time.Millisecond},
		{7, one, 5 * time.Second}, // capped
		{1000, one, 5 * time.Second},
		{1 << 30, one, 5 * time.Second}, // no overflow
		{3, half, 200 * time.Millisecond},
		{3, zero, 0},
		{3, bad, 400 * time.Millisecond}, // out-of-range jitter clamps to the ceiling
	}
	for _, c := range cases {
		if got := outbox.Backoff(c.attempt, base, maxD, c.rnd); got != c.want {
			t.Errorf("Backoff(%d) = %s, want %s", c.attempt, got, c.want)
		}
	}
	// Real jitter stays within [0, ceiling].
	for i := 0; i < 1000; i++ {
		if got := outbox.Backoff(4, base, maxD, nil2rand()); got < 0 || got > 800*time.Millisecond {
			t.Fatalf("jittered backoff %s out of [0, 800ms]", got)
		}
	}
}

func nil2rand() func() float64 {
	var n uint64
	return func() float64 { n = n*6364136223846793005 + 1442695040888963407; return float64(n>>11) / (1 << 53) }
}

func TestDeliversEverythingInOrderPerSubject(t *testing.T) {
	s := openStore(t)
	reg := prometheus.NewRegistry()
	var mu sync.Mutex
	seen := map[string]int{}
	order := map[string][]int64{}
	busy := map[string]bool{}
	var overlap atomic.Int32
	d := start(t, outbox.Config{Store: s, Workers: 4, PollInterval: 10 * time.Millisecond, Registerer: reg,
		Handler: func(ctx context.Context, ev store.Event) error {
			mu.Lock()
			if busy[ev.Subject] {
				overlap.Add(1)
			}
			busy[ev.Subject] = true
			mu.Unlock()
			time.Sleep(time.Millisecond)
			mu.Lock()
			busy[ev.Subject] = false
			seen[ev.ID]++
			order[ev.Subject] = append(order[ev.Subject], ev.Seq)
			mu.Unlock()
			return nil
		}})
	var all []store.Event
	for i := 0; i < 20; i++ {
		var batch []store.NewEvent
		for j := 0; j < 8; j++ {
			batch = append(batch, store.NewEvent{Type: "payment.accepted", Subject: fmt.Sprintf("pay-%d", j), Payload: json.RawMessage(fmt.Sprint(i))})
		}
		all = append(all, emit(t, s, batch...)...)
		d.Wake()
	}
	waitFor(t, "all delivered", func() bool {
		n, _ := s.CountEvents(context.Background(), store.EventDelivered)
		return n == int64(len(all))
	})
	// Drain: the last deliveries' metrics are counted after their commit.
	if err := d.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, e := range all {
		if seen[e.ID] != 1 {
			t.Fatalf("event %s handled %d times", e.ID, seen[e.ID])
		}
	}
	for subj, seqs := range order {
		if !sort.SliceIsSorted(seqs, func(i, j int) bool { return seqs[i] < seqs[j] }) {
			t.Fatalf("subject %s delivered out of order: %v", subj, seqs)
		}
	}
	if overlap.Load() != 0 {
		t.Fatalf("%d times two events of one subject ran at once", overlap.Load())
	}
	if got := testutil.ToFloat64(mustCounter(t, reg, outbox.MetricDelivered, "payment.accepted")); got != float64(len(all)) {
		t.Fatalf("delivered metric = %v, want %d", got, len(all))
	}
}

// mustCounter finds a labelled sample in the registry.
func mustCounter(t *testing.T, reg *prometheus.Registry, name, typ string) prometheus.Collector {
	t.Helper()
	return collectorFunc(func(ch chan<- prometheus.Metric) {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "type" && l.GetValue() == typ {
						ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(name, "", nil, nil), prometheus.CounterValue, m.GetCounter().GetValue())
						return
					}
				}
			}
		}
		ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(name, "", nil, nil), prometheus.CounterValue, 0)
	})
}

// gauge reads an unlabelled gauge from the registry.
func gauge(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	return collectorFunc(func(ch chan<- prometheus.Metric) {
		v := 0.0
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name && len(mf.GetMetric()) == 1 {
				v = mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(name, "", nil, nil), prometheus.GaugeValue, v)
	})
}

type collectorFunc func(chan<- prometheus.Metric)

func (f collectorFunc) Describe(chan<- *prometheus.Desc)    {}
func (f collectorFunc) Collect(ch chan<- prometheus.Metric) { f(ch) }

func TestRetryWithGrowingBackoffThenSuccess(t *testing.T) {
	s := openStore(t)
	reg := prometheus.NewRegistry()
	const failures = 4
	base := 20 * time.Millisecond
	var calls atomic.Int32
	start(t, outbox.Config{Store: s, PollInterval: 2 * time.Millisecond, BackoffBase: base, BackoffMax: time.Second,
		Rand: func() float64 { return 1 }, Registerer: reg,
		Handler: func(ctx context.Context, ev store.Event) error {
			if calls.Add(1) <= failures {
				return fmt.Errorf("bank said 503 (call %d)", calls.Load())
			}
			return nil
		}})
	e := emit(t, s, store.NewEvent{Type: "ebics.ack", Subject: "tx-1"})[0]
	waitFor(t, "delivery", func() bool { return state(t, s, e.ID) == store.EventDelivered })
	att, err := s.EventAttempts(context.Background(), e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(att) != failures+1 {
		t.Fatalf("%d attempts recorded, want %d", len(att), failures+1)
	}
	for i, a := range att {
		if a.N != i+1 || a.Finished.IsZero() {
			t.Fatalf("attempt %d = %+v", i, a)
		}
		if i < failures && (a.OK || !strings.Contains(a.Error, "bank said 503")) {
			t.Fatalf("attempt %d should have failed: %+v", i, a)
		}
		if i > 0 {
			// The retry cannot start before the backoff of the previous
			// failure has passed: base·2^(n-1) with jitter pinned at 1.
			gap := a.Started.Sub(att[i-1].Finished)
			want := base << (i - 1)
			if gap < want-time.Millisecond {
				t.Fatalf("attempt %d started %s after the previous failure, backoff was %s", i+1, gap, want)
			}
		}
	}
	if !att[failures].OK {
		t.Fatal("last attempt not OK")
	}
	// Counted right after each failure is recorded.
	waitFor(t, "failed metric", func() bool {
		return testutil.ToFloat64(mustCounter(t, reg, outbox.MetricFailed, "ebics.ack")) == failures
	})
}

func TestDeadAfterMaxAttemptsBlocksSubjectThenReplay(t *testing.T) {
	s := openStore(t)
	reg := prometheus.NewRegistry()
	var healthy atomic.Bool
	var mu sync.Mutex
	var delivered []string
	start(t, outbox.Config{Store: s, PollInterval: 2 * time.Millisecond, BackoffBase: time.Millisecond, BackoffMax: 2 * time.Millisecond,
		MaxAttempts: 3, Registerer: reg,
		Handler: func(ctx context.Context, ev store.Event) error {
			if !healthy.Load() && ev.Type == "bad" {
				return errors.New("hook error: attempt to index a nil value")
			}
			mu.Lock()
			delivered = append(delivered, ev.Type)
			mu.Unlock()
			return nil
		}})
	evs := emit(t, s, store.NewEvent{Type: "bad", Subject: "p1"}, store.NewEvent{Type: "after", Subject: "p1"}, store.NewEvent{Type: "other", Subject: "p2"})
	waitFor(t, "dead", func() bool { return state(t, s, evs[0].ID) == store.EventDead })
	waitFor(t, "other subject delivered", func() bool { return state(t, s, evs[2].ID) == store.EventDelivered })
	e, _ := s.GetEvent(context.Background(), evs[0].ID)
	if e.Attempts != 3 || !strings.Contains(e.LastError, "nil value") {
		t.Fatalf("dead event = %+v", e)
	}
	if st := state(t, s, evs[1].ID); st != store.EventPending {
		t.Fatalf("event behind a dead one is %s, want pending (blocked)", st)
	}
	waitFor(t, "dead metric", func() bool { return testutil.ToFloat64(mustCounter(t, reg, outbox.MetricDead, "bad")) == 1 })
	waitFor(t, "dead gauge", func() bool {
		return testutil.ToFloat64(gauge(t, reg, outbox.MetricDeadNow)) == 1 && testutil.ToFloat64(gauge(t, reg, outbox.MetricOldest)) > 0
	})
	healthy.Store(true)
	if err := s.ReplayEvent(context.Background(), evs[0].ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "replayed and next delivered", func() bool { return state(t, s, evs[1].ID) == store.EventDelivered })
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(delivered) != "[other bad after]" {
		t.Fatalf("delivery order = %v", delivered)
	}
}

func TestMaxAgeAndPermanentGoDead(t *testing.T) {
	s := openStore(t)
	start(t, outbox.Config{Store: s, PollInterval: 2 * time.Millisecond, BackoffBase: time.Millisecond, MaxAge: time.Hour,
		// The dispatcher's clock runs two hours ahead: every event is too old.
		Now: func() time.Time { return time.Now().Add(2 * time.Hour) },
		Handler: func(ctx context.Context, ev store.Event) error {
			if ev.Type == "perm" {
				return outbox.Permanent(errors.New("unknown payload version"))
			}
			return errors.New("transient")
		}})
	evs := emit(t, s, store.NewEvent{Type: "old", Subject: "a"}, store.NewEvent{Type: "perm", Subject: "b"})
	waitFor(t, "both dead", func() bool {
		return state(t, s, evs[0].ID) == store.EventDead && state(t, s, evs[1].ID) == store.EventDead
	})
	for _, e := range evs {
		got, _ := s.GetEvent(context.Background(), e.ID)
		if got.Attempts != 1 {
			t.Fatalf("%s: %d attempts, want 1", e.Type, got.Attempts)
		}
	}
}

func TestHandlerTimeoutIsAFailure(t *testing.T) {
	s := openStore(t)
	var calls atomic.Int32
	start(t, outbox.Config{Store: s, PollInterval: 2 * time.Millisecond, BackoffBase: time.Millisecond, HandlerTimeout: 50 * time.Millisecond,
		Handler: func(ctx context.Context, ev store.Event) error {
			if calls.Add(1) == 1 {
				<-ctx.Done() // a hook stuck in a loop, honouring its context
				return ctx.Err()
			}
			return nil
		}})
	e := emit(t, s, store.NewEvent{Type: "x", Subject: "s"})[0]
	waitFor(t, "delivery after a timeout", func() bool { return state(t, s, e.ID) == store.EventDelivered })
	att, _ := s.EventAttempts(context.Background(), e.ID)
	if len(att) != 2 || att[0].OK || !strings.Contains(att[0].Error, "timed out") || !att[1].OK {
		t.Fatalf("attempts = %+v", att)
	}
}

func TestHandlerPanicIsAFailure(t *testing.T) {
	s := openStore(t)
	var calls atomic.Int32
	start(t, outbox.Config{Store: s, PollInterval: 2 * time.Millisecond, BackoffBase: time.Millisecond,
		Handler: func(ctx context.Context, ev store.Event) error {
			if calls.Add(1) == 1 {
				var m map[string]int
				m["boom"]++ // nil map write panics
			}
			return nil
		}})
	e := emit(t, s, store.NewEvent{Type: "x", Subject: "s"})[0]
	waitFor(t, "delivery after panic", func() bool { return state(t, s, e.ID) == store.EventDelivered })
	att, _ := s.EventAttempts(context.Background(), e.ID)
	if len(att) != 2 || att[0].OK || !strings.Contains(att[0].Error, "handler panic") || !att[1].OK {
		t.Fatalf("attempts = %+v", att)
	}
}

func TestLeaseRenewedWhileHandlerRuns(t *testing.T) {
	s := openStore(t)
	var calls atomic.Int32
	release := make(chan struct{})
	// Lease 1s, renewed every 333ms; the handler holds the event for 2.5
	// leases. (Generous margins: the CI machine may be loaded.)
	start(t, outbox.Config{Store: s, Name: "slow", Lease: time.Second, PollInterval: 5 * time.Millisecond,
		Handler: func(ctx context.Context, ev store.Event) error {
			calls.Add(1)
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}})
	e := emit(t, s, store.NewEvent{Type: "x", Subject: "s"})[0]
	waitFor(t, "handler started", func() bool { return calls.Load() == 1 })
	// Then a second dispatcher (another instance) polls the same store.
	var stolen atomic.Int32
	start(t, outbox.Config{Store: s, Name: "thief", Lease: time.Minute, PollInterval: 5 * time.Millisecond,
		Handler: func(ctx context.Context, ev store.Event) error { stolen.Add(1); return nil }})
	// Run well past several lease lengths: without renewal the thief would
	// claim the event.
	time.Sleep(2500 * time.Millisecond)
	close(release)
	waitFor(t, "delivered", func() bool { return state(t, s, e.ID) == store.EventDelivered })
	if stolen.Load() != 0 || calls.Load() != 1 {
		t.Fatalf("lease not renewed: slow handler %d calls, thief %d", calls.Load(), stolen.Load())
	}
	att, _ := s.EventAttempts(context.Background(), e.ID)
	if len(att) != 1 || att[0].Worker != "slow" || !att[0].OK {
		t.Fatalf("attempts = %+v", att)
	}
}

func TestWakeDeliversWithoutWaitingForPoll(t *testing.T) {
	s := openStore(t)
	var got atomic.Int32
	d := start(t, outbox.Config{Store: s, PollInterval: time.Hour,
		Handler: func(ctx context.Context, ev store.Event) error { got.Add(1); return nil }})
	time.Sleep(20 * time.Millisecond) // let the first (empty) poll pass
	emit(t, s, store.NewEvent{Type: "x", Subject: "s"})
	d.Wake()
	waitFor(t, "woken delivery (poll interval is 1h)", func() bool { return got.Load() == 1 })
}

func TestStopDrainsInFlight(t *testing.T) {
	s := openStore(t)
	entered := make(chan struct{})
	release := make(chan struct{})
	var finished atomic.Bool
	d, err := outbox.New(outbox.Config{Store: s, PollInterval: 5 * time.Millisecond,
		Handler: func(ctx context.Context, ev store.Event) error {
			close(entered)
			<-release
			finished.Store(true)
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	e := emit(t, s, store.NewEvent{Type: "x", Subject: "s"})[0]
	<-entered
	stopped := make(chan error, 1)
	go func() { stopped <- d.Stop(context.Background()) }()
	select {
	case <-stopped:
		t.Fatal("Stop returned while a handler was running")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if !finished.Load() || state(t, s, e.ID) != store.EventDelivered {
		t.Fatalf("drain did not record the delivery: state %s", state(t, s, e.ID))
	}
	if err := d.Start(context.Background()); !errors.Is(err, outbox.ErrStopped) {
		t.Fatalf("restart = %v, want ErrStopped", err)
	}
}

func TestStopDeadlineCancelsHandlers(t *testing.T) {
	s := openStore(t)
	entered := make(chan struct{})
	d, err := outbox.New(outbox.Config{Store: s, PollInterval: 5 * time.Millisecond, MaxAttempts: 1,
		Handler: func(ctx context.Context, ev store.Event) error {
			close(entered)
			<-ctx.Done()
			return ctx.Err()
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	e := emit(t, s, store.NewEvent{Type: "x", Subject: "s"})[0]
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := d.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop = %v, want deadline exceeded", err)
	}
	// Interrupted by the stop, not by the handler: back to pending, not dead
	// even with MaxAttempts 1.
	if st := state(t, s, e.ID); st != store.EventPending {
		t.Fatalf("state after forced stop = %s, want pending", st)
	}
}

func TestMetricsShareRegistry(t *testing.T) {
	s := openStore(t)
	reg := prometheus.NewRegistry()
	h := func(context.Context, store.Event) error { return nil }
	if _, err := outbox.New(outbox.Config{Store: s, Handler: h, Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := outbox.New(outbox.Config{Store: s, Handler: h, Registerer: reg}); err != nil {
		t.Fatalf("second dispatcher on one registry: %v", err)
	}
	n, err := testutil.GatherAndCount(reg, outbox.MetricBacklog, outbox.MetricInFlight)
	if err != nil || n != 2 {
		t.Fatalf("gauges registered = %d, %v", n, err)
	}
}
