package hooks

import (
	"context"
	"testing"

	"github.com/rs/zerolog"

	"github.com/acquit/acquit/daemon/store"
)

// BenchmarkDeliver measures hook calls per second for a trivial hook, from
// parallel goroutines (the outbox's workers).
func BenchmarkDeliver(b *testing.B) {
	e, _ := newTestEngine(b, map[string]string{"t.lua": `function on(event) if event.data.n == nil then error("no n") end end`},
		[]Binding{{Events: []string{"bench.*"}, Script: "t", Function: "on"}}, func(o *Options) { o.Logger = zerolog.Nop() })
	ev := store.Event{ID: "01JD", Type: "bench.tick", Subject: "s", Payload: []byte(`{"n": 1, "ref": "A000000042"}`)}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := e.Deliver(context.Background(), ev, 1); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}

// BenchmarkCallSerial measures one Call at a time (schedule jobs).
func BenchmarkCallSerial(b *testing.B) {
	e, _ := newTestEngine(b, map[string]string{"t.lua": `function f(x) return x end`}, nil, func(o *Options) { o.Logger = zerolog.Nop() })
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Call(context.Background(), "t", "f", "x"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDeliverShopHook delivers payment.accepted to scripts/shop.lua,
// which posts to a loopback shop server (HTTP keep-alive).
func BenchmarkDeliverShopHook(b *testing.B) {
	srv := newShopServer(b)
	e, err := New(Options{Dir: "../../scripts", Bindings: exampleBindings[:1], KV: newMemKV(), Logger: zerolog.Nop(), HTTPAllow: loopbackAllowed,
		Config: map[string]any{"shop": map[string]any{"url": srv.URL + "/shop"}}})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	ev := loadEvent(b, "payment.accepted")
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := e.Deliver(context.Background(), ev, 1); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}
