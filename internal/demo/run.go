package demo

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/acquit/acquit/daemon/httpapi"
	"github.com/acquit/acquit/daemon/store"
)

// Options tune the demo.
type Options struct {
	Dir        string // state folder (emptied first)
	BinDir     string // acquit and plugin executables
	ScriptsDir string // the example scripts
	Out        io.Writer
	Payments   int     // number of card payments (0: skip)
	DropAuto   float64 // share of automatic responses the bank drops
	NoReturn   float64 // share of customers who never come back
	Transfers  int     // transactions per EBICS file (0: skip EBICS)
	Seed       uint64
	Verbose    bool // daemon logs on Out too
}

// Run runs the demo: the daemon on its embedded demo configuration with the
// example scripts, the bank simulators, and a summary of what happened.
func Run(ctx context.Context, o Options) error {
	out := o.Out
	if out == nil {
		out = os.Stdout
	}
	h, err := NewHarness(o.Dir, o.BinDir, o.ScriptsDir)
	if err != nil {
		return err
	}
	if o.Verbose {
		h.Log = out
	}
	tp := h.Template()
	tp.Hooks = append(tp.Hooks,
		HookData{Events: `["demo.*", "payment.*", "transmission.*", "ack.*"]`, Script: "demo.lua", Function: "on_event"})
	var pay *paymentsDemo
	if o.Payments > 0 {
		if pay, err = setupPayments(h, o); err != nil {
			return err
		}
		defer pay.close()
	}
	var wl *worldlineDemo
	if o.Payments > 0 {
		if wl, err = setupWorldline(h, o); err != nil {
			return err
		}
		defer wl.close()
	}
	var eb *ebicsDemo
	if o.Transfers > 0 {
		if eb, err = setupEbics(ctx, h, o); err != nil {
			return err
		}
		defer eb.close()
	}
	fmt.Fprintf(out, "acquit demo: state in %s, daemon log in %s\n", h.Dir, filepath.Join(h.Dir, "acquit.log"))
	if err := h.Start(ctx); err != nil {
		return err
	}
	defer h.Stop()
	fmt.Fprintf(out, "daemon up: public http://%s, admin http://%s (pid %d)\n\n", h.PublicAddr, h.AdminAddr, h.Pid())

	// 1. A demo event flows through the example hook.
	c := h.Client()
	var ev store.Event
	if _, err := c.Do(ctx, "POST", "/v1/events", httpapi.EmitRequest{Type: "demo.hello", Subject: "demo", Data: []byte(`{"message":"hello from the demo"}`)}, &ev); err != nil {
		return err
	}
	if err := waitEvent(ctx, h, ev.ID, 30*time.Second); err != nil {
		return err
	}
	fmt.Fprintf(out, "1. event %s (demo.hello) delivered to scripts/demo.lua\n\n", ev.ID)

	if pay != nil {
		if err := pay.run(ctx, h, out); err != nil {
			return err
		}
	}
	if wl != nil {
		if err := wl.run(ctx, h, out); err != nil {
			return err
		}
	}
	if eb != nil {
		if err := eb.run(ctx, h, out); err != nil {
			return err
		}
	}
	fmt.Fprintln(out, "demo finished; stopping the daemon (SIGTERM)")
	return nil
}

// waitEvent waits until an event is delivered (or dead: an error).
func waitEvent(ctx context.Context, h *Harness, id string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		var ev store.Event
		if _, err := h.Client().Do(ctx, "GET", "/v1/events/"+id, nil, &ev); err == nil {
			switch ev.State {
			case store.EventDelivered:
				return nil
			case store.EventDead:
				return fmt.Errorf("event %s dead-lettered: %s", id, ev.LastError)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("event %s not delivered within %s", id, d)
}

// waitIdle waits until no event is pending or running.
func waitIdle(ctx context.Context, h *Harness, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		busy := 0
		for _, st := range []string{"pending", "running"} {
			var evs []store.Event
			if _, err := h.Client().Do(ctx, "GET", "/v1/events?limit=1&state="+st, nil, &evs); err != nil {
				return err
			}
			busy += len(evs)
		}
		if busy == 0 {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("events still pending after %s", d)
}
