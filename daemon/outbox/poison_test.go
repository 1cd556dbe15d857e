package outbox_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/acquit/acquit/daemon/outbox"
	"github.com/acquit/acquit/daemon/store"
)

// crash leases every deliverable event for a worker that then "dies": its
// lease is left to expire with no outcome, as after a kill -9 mid-handler.
func crash(t *testing.T, s store.Store, times int) {
	t.Helper()
	for i := 0; i < times; i++ {
		if _, err := s.ClaimEvents(context.Background(), fmt.Sprintf("killed-%d", i), 10, time.Millisecond, time.Now()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Millisecond)
	}
}

// counting returns a handler that counts its calls per event id.
func counting() (outbox.Handler, func(id string) int) {
	var mu sync.Mutex
	n := map[string]int{}
	return func(ctx context.Context, ev store.Event) error {
			mu.Lock()
			n[ev.ID]++
			mu.Unlock()
			return nil
		}, func(id string) int {
			mu.Lock()
			defer mu.Unlock()
			return n[id]
		}
}

// TestPoisonEventDeadLettered: an event whose last PoisonAfter (3)
// deliveries all died with their process is dead-lettered without calling
// the handler again, counted in acquit_outbox_poison_total and
// acquit_outbox_dead_total; the next event of its subject waits (order per
// subject), other subjects flow.
func TestPoisonEventDeadLettered(t *testing.T) {
	s := openStore(t)
	evs := emit(t, s, store.NewEvent{Type: "payment.accepted", Subject: "p"}, store.NewEvent{Type: "payment.accepted", Subject: "p"})
	crash(t, s, 3)
	other := emit(t, s, store.NewEvent{Type: "payment.accepted", Subject: "q"})[0]
	h, calls := counting()
	reg := prometheus.NewRegistry()
	start(t, outbox.Config{Store: s, Registerer: reg, Handler: h, PollInterval: 5 * time.Millisecond})
	waitFor(t, "poison dead and the other subject delivered", func() bool {
		return state(t, s, evs[0].ID) == store.EventDead && state(t, s, other.ID) == store.EventDelivered
	})
	if n := calls(evs[0].ID); n != 0 {
		t.Fatalf("the handler ran %d times for the poison event", n)
	}
	ev, err := s.GetEvent(context.Background(), evs[0].ID)
	if err != nil || !strings.Contains(ev.LastError, "poison event: its last 3 deliveries were in flight when the process died") {
		t.Fatalf("poison event %+v, %v", ev, err)
	}
	atts, err := s.EventAttempts(context.Background(), evs[0].ID)
	if err != nil || len(atts) != 4 || atts[2].Error != store.AttemptLeaseExpired || !strings.Contains(atts[3].Error, "poison") {
		t.Fatalf("attempts %+v, %v", atts, err)
	}
	time.Sleep(50 * time.Millisecond)
	if st := state(t, s, evs[1].ID); st != store.EventPending {
		t.Fatalf("next event of the poison's subject is %s, want pending behind the dead one", st)
	}
	if got := testutil.ToFloat64(mustCounter(t, reg, outbox.MetricPoison, "payment.accepted")); got != 1 {
		t.Fatalf("%s = %v", outbox.MetricPoison, got)
	}
	if got := testutil.ToFloat64(mustCounter(t, reg, outbox.MetricDead, "payment.accepted")); got != 1 {
		t.Fatalf("%s = %v", outbox.MetricDead, got)
	}
	// Replayed (hook fixed), it is delivered: the count starts again.
	if err := s.ReplayEvent(context.Background(), evs[0].ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "replayed poison delivered", func() bool {
		return state(t, s, evs[0].ID) == store.EventDelivered && state(t, s, evs[1].ID) == store.EventDelivered
	})
}

// TestPoisonBelowThreshold: fewer crashes than PoisonAfter, or PoisonAfter
// negative: the handler runs as usual.
func TestPoisonBelowThreshold(t *testing.T) {
	for name, tc := range map[string]struct {
		crashes, poisonAfter int
	}{
		"two crashes":      {2, 0},
		"disabled":         {5, -1},
		"raised threshold": {3, 4},
	} {
		t.Run(name, func(t *testing.T) {
			s := openStore(t)
			ev := emit(t, s, store.NewEvent{Type: "payment.accepted", Subject: "p"})[0]
			crash(t, s, tc.crashes)
			h, calls := counting()
			start(t, outbox.Config{Store: s, Handler: h, PollInterval: 5 * time.Millisecond, PoisonAfter: tc.poisonAfter})
			waitFor(t, "delivered", func() bool { return state(t, s, ev.ID) == store.EventDelivered })
			if calls(ev.ID) != 1 {
				t.Fatalf("handler calls = %d", calls(ev.ID))
			}
		})
	}
}
