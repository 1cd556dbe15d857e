package outbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acquit/acquit/daemon/outbox"
	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/daemon/store/postgres"
	"github.com/acquit/acquit/internal/pgtest"
)

// BenchmarkEmitAndDeliver measures events per second through SQLite: emitted
// in transactions of 50 (as a busy daemon would), delivered by 4 workers to a
// no-op handler, each delivery marked done in the store. "group" is the
// default (deliveries finishing together share one commit); "single" sets
// Config.SingleCommit and commits each delivery alone, for comparison.
func BenchmarkEmitAndDeliver(b *testing.B) {
	b.Run("group", func(b *testing.B) { benchEmitAndDeliver(b, openStore(b), false) })
	b.Run("single", func(b *testing.B) { benchEmitAndDeliver(b, openStore(b), true) })
	b.Run("postgres", func(b *testing.B) {
		s, err := postgres.Open(context.Background(), pgtest.DSN(b))
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		benchEmitAndDeliver(b, s, false)
	})
}

func benchEmitAndDeliver(b *testing.B, s store.Store, single bool) {
	var handled atomic.Int64
	d, err := outbox.New(outbox.Config{Store: s, SingleCommit: single, Workers: 4, PollInterval: 10 * time.Millisecond,
		Handler: func(context.Context, store.Event) error { handled.Add(1); return nil }})
	if err != nil {
		b.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer d.Stop(context.Background())
	payload := json.RawMessage(`{"reference":"ABC123","amount":1000,"currency":"EUR"}`)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i += 50 {
		n := min(50, b.N-i)
		evs := make([]store.NewEvent, n)
		for j := range evs {
			evs[j] = store.NewEvent{Type: "payment.accepted", Subject: fmt.Sprintf("pay-%d", (i+j)%64), Payload: payload}
		}
		emit(b, s, evs...)
		d.Wake()
	}
	for handled.Load() < int64(b.N) {
		time.Sleep(time.Millisecond)
	}
	for {
		n, err := s.CountEvents(context.Background(), store.EventDelivered)
		if err != nil {
			b.Fatal(err)
		}
		if n == int64(b.N) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}
