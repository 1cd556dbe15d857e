package outbox_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/acquit/acquit/daemon/outbox"
	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/daemon/store/postgres"
	"github.com/acquit/acquit/internal/pgtest"
)

// TestTwoInstancesOnPostgres runs two dispatchers, each with its own
// connection pool (two daemon instances), on one PostgreSQL schema: every
// event is handled once, subjects stay in order and never run on both
// instances at once.
func TestTwoInstancesOnPostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	var mu sync.Mutex
	handled := map[string]int{}
	order := map[string][]int64{}
	busy := map[string]string{}
	var problems []string
	handler := func(instance string) outbox.Handler {
		return func(ctx context.Context, ev store.Event) error {
			mu.Lock()
			if other := busy[ev.Subject]; other != "" {
				problems = append(problems, fmt.Sprintf("subject %s on %s and %s at once", ev.Subject, other, instance))
			}
			busy[ev.Subject] = instance
			mu.Unlock()
			time.Sleep(500 * time.Microsecond)
			mu.Lock()
			busy[ev.Subject] = ""
			handled[ev.ID]++
			order[ev.Subject] = append(order[ev.Subject], ev.Seq)
			mu.Unlock()
			return nil
		}
	}
	var stores []store.Store
	for i := 0; i < 2; i++ {
		s, err := postgres.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores = append(stores, s)
		name := fmt.Sprintf("instance-%d", i)
		start(t, outbox.Config{Store: s, Name: name, Workers: 3, PollInterval: 5 * time.Millisecond, Handler: handler(name)})
	}
	var all []store.Event
	for b := 0; b < 10; b++ {
		var evs []store.NewEvent
		for i := 0; i < 20; i++ {
			evs = append(evs, store.NewEvent{Type: "t", Subject: fmt.Sprintf("s%d", i%7)})
		}
		all = append(all, emit(t, stores[b%2], evs...)...)
	}
	waitFor(t, "all delivered", func() bool {
		n, _ := stores[0].CountEvents(ctx, store.EventDelivered)
		return n == int64(len(all))
	})
	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 {
		t.Fatal(problems[0])
	}
	for _, e := range all {
		if handled[e.ID] != 1 {
			t.Fatalf("event %s handled %d times", e.ID, handled[e.ID])
		}
	}
	for subj, seqs := range order {
		if !sort.SliceIsSorted(seqs, func(i, j int) bool { return seqs[i] < seqs[j] }) {
			t.Fatalf("subject %s out of order: %v", subj, seqs)
		}
	}
}
