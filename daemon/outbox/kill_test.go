package outbox_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/acquit/acquit/daemon/hooks"
	"github.com/acquit/acquit/daemon/outbox"
	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/daemon/store/sqlite"
)

const (
	envHelper = "ACQUIT_OUTBOX_HELPER"
	envDB     = "ACQUIT_OUTBOX_HELPER_DB"
	envOut    = "ACQUIT_OUTBOX_HELPER_OUT"
)

// TestHelperDispatcher is not a test: it is the child process of
// TestKill9WhileDispatching, a dispatcher whose handler appends each event
// id (with fsync) to a file before returning.
func TestHelperDispatcher(t *testing.T) {
	if os.Getenv(envHelper) != "1" {
		t.Skip("helper process for TestKill9WhileDispatching")
	}
	ctx := context.Background()
	s, err := sqlite.Open(ctx, os.Getenv(envDB))
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper open:", err)
		os.Exit(2)
	}
	out, err := os.OpenFile(os.Getenv(envOut), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper out:", err)
		os.Exit(2)
	}
	// PoisonAfter is off: this test kills the process itself, and under
	// load (CI's -race phase) one event could be in flight at three kills in a
	// row and be dead-lettered as a poison event, which the handler is not
	// (TestPoisonEventDeadLettered covers that rule).
	d, err := outbox.New(outbox.Config{Store: s, Workers: 4, Lease: 300 * time.Millisecond, PollInterval: 5 * time.Millisecond,
		BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond, PoisonAfter: -1,
		Handler: func(ctx context.Context, ev store.Event) error {
			// One write per line: a kill leaves at most a torn last line.
			if _, err := out.WriteString(ev.ID + " " + ev.Subject + "\n"); err != nil {
				return err
			}
			if err := out.Sync(); err != nil {
				return err
			}
			time.Sleep(time.Millisecond)
			return nil
		}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper new:", err)
		os.Exit(2)
	}
	serveUntilSignalled(ctx, d)
}

// serveUntilSignalled runs a helper's dispatcher until SIGTERM (or two
// minutes, never to outlive a crashed parent for long), then exits.
func serveUntilSignalled(ctx context.Context, d *outbox.Dispatcher) {
	if err := d.Start(ctx); err != nil {
		os.Exit(2)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	select {
	case <-sig:
	case <-time.After(2 * time.Minute):
	}
	_ = d.Stop(ctx)
	os.Exit(0)
}

type delivery struct{ id, subject string }

func readDeliveries(t *testing.T, path string) []delivery {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []delivery
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.Fields(sc.Text())
		if len(parts) != 2 || len(parts[0]) != 26 {
			continue // torn line from a kill
		}
		out = append(out, delivery{parts[0], parts[1]})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestKill9WhileDispatching kills a dispatching process with SIGKILL
// several times while events keep being emitted, restarts it, and checks
// that no event is lost and that per subject the first deliveries follow
// emission order.
func TestKill9WhileDispatching(t *testing.T) {
	dir := t.TempDir()
	dbPath, outPath := filepath.Join(dir, "outbox.db"), filepath.Join(dir, "delivered.log")
	s, err := sqlite.Open(context.Background(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	const subjects, batches, perBatch = 6, 12, 30
	var all []store.Event
	emitBatch := func(b int) {
		var evs []store.NewEvent
		for i := 0; i < perBatch; i++ {
			evs = append(evs, store.NewEvent{Type: "payment.accepted", Subject: fmt.Sprintf("s%d", i%subjects),
				Payload: json.RawMessage(fmt.Sprintf(`{"batch":%d,"i":%d}`, b, i))})
		}
		all = append(all, emit(t, s, evs...)...)
	}
	startChild := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperDispatcher$", "-test.count=1")
		cmd.Env = append(os.Environ(), envHelper+"=1", envDB+"="+dbPath, envOut+"="+outPath)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	delivered := func() int64 {
		n, err := s.CountEvents(context.Background(), store.EventDelivered)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	emitBatch(0)
	kills := 0
	for b := 1; b < batches; b++ {
		before := len(readDeliveries(t, outPath))
		child := startChild()
		emitBatch(b) // emitted while the child dispatches
		// Kill once it has handled some more events: mid-way through.
		waitFor(t, "child progress", func() bool {
			return len(readDeliveries(t, outPath)) >= before+perBatch/2 || delivered() == int64(len(all))
		})
		if b%3 != 0 { // every third round the child is killed right away instead
			time.Sleep(time.Duration(b) * time.Millisecond)
		}
		if err := child.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = child.Wait()
		kills++
	}
	// Final run to completion.
	child := startChild()
	waitFor(t, "everything delivered after restarts", func() bool {
		if dead, err := s.CountEvents(context.Background(), store.EventDead); err != nil || dead > 0 {
			t.Fatalf("%d dead events (%v): none may die in this test", dead, err)
		}
		return delivered() == int64(len(all))
	})
	_ = child.Process.Signal(syscall.SIGKILL)
	_ = child.Wait()

	got := readDeliveries(t, outPath)
	first := map[string]int{}
	var firsts []delivery
	for _, d := range got {
		if _, ok := first[d.id]; !ok {
			first[d.id] = len(firsts)
			firsts = append(firsts, d)
		}
	}
	for _, e := range all {
		if _, ok := first[e.ID]; !ok {
			t.Fatalf("event %s (seq %d) lost", e.ID, e.Seq)
		}
	}
	if len(first) != len(all) {
		t.Fatalf("%d distinct ids delivered, %d emitted", len(first), len(all))
	}
	// Per subject, first deliveries in emission (seq) order.
	pos := map[string]int{}
	for i, e := range all {
		pos[e.ID] = i
	}
	last := map[string]int{}
	for _, d := range firsts {
		if p, ok := last[d.subject]; ok && pos[d.id] < p {
			t.Fatalf("subject %s: event %s delivered first after a later one", d.subject, d.id)
		}
		last[d.subject] = pos[d.id]
	}
	for _, e := range all {
		got, err := s.GetEvent(context.Background(), e.ID)
		if err != nil || got.State != store.EventDelivered {
			t.Fatalf("event %s: %v %v", e.ID, got, err)
		}
	}
	var check string
	if err := s.InTx(context.Background(), func(tx store.Tx) error {
		return tx.QueryRow(context.Background(), "PRAGMA integrity_check").Scan(&check)
	}); err != nil || check != "ok" {
		t.Fatalf("integrity_check after kills = %q, %v", check, err)
	}
	t.Logf("%d events, %d kills, %d deliveries (%d redelivered after a kill)", len(all), kills, len(got), len(got)-len(all))
}

const envScripts = "ACQUIT_OUTBOX_HELPER_SCRIPTS"

// TestHelperHookDispatcher is not a test: it is the child process of
// TestKill9MidHookPoisonEvent, a dispatcher delivering to real Lua hooks
// (hooks.Engine over the scripts folder in envScripts).
func TestHelperHookDispatcher(t *testing.T) {
	if os.Getenv(envHelper) != "hooks" {
		t.Skip("helper process for TestKill9MidHookPoisonEvent")
	}
	ctx := context.Background()
	s, err := sqlite.Open(ctx, os.Getenv(envDB))
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper open:", err)
		os.Exit(2)
	}
	eng, err := hooks.New(hooks.Options{Dir: os.Getenv(envScripts), KV: s, Timeout: time.Minute, Logger: zerolog.New(os.Stderr),
		Bindings: []hooks.Binding{{Events: []string{"*"}, Script: "hog", Function: "on_event"}}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper hooks:", err)
		os.Exit(2)
	}
	log := zerolog.New(os.Stderr)
	d, err := outbox.New(outbox.Config{Store: s, Workers: 2, Lease: 300 * time.Millisecond, PollInterval: 5 * time.Millisecond,
		BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond, Logger: &log,
		Handler: func(ctx context.Context, ev store.Event) error { return eng.Deliver(ctx, ev, ev.Attempts) }})
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper new:", err)
		os.Exit(2)
	}
	serveUntilSignalled(ctx, d)
}

// TestKill9MidHookPoisonEvent: a Lua hook that never returns on one event
// stands for a hook that brings the daemon down (the OOM killer, a crash).
// The process is really killed (SIGKILL) while that hook runs, restarted,
// and killed again, three times; after the third restart the event is
// dead-lettered as poison without the hook running a fourth time, the next
// event of its subject waits behind it (order per subject), and the other
// subject's events are delivered.
func TestKill9MidHookPoisonEvent(t *testing.T) {
	dir := t.TempDir()
	dbPath, scripts := filepath.Join(dir, "outbox.db"), filepath.Join(dir, "scripts")
	if err := os.MkdirAll(scripts, 0o755); err != nil {
		t.Fatal(err)
	}
	hog := `
function on_event(event)
  kv.set("started:" .. event.id, tostring(event.attempt))
  if event.data.poison then
    while true do end -- the test kills the process here
  end
  kv.set("done:" .. event.id, "1")
end
`
	if err := os.WriteFile(filepath.Join(scripts, "hog.lua"), []byte(hog), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := sqlite.Open(context.Background(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	evs := emit(t, s,
		store.NewEvent{Type: "payment.accepted", Subject: "p", Payload: json.RawMessage(`{"poison":true}`)},
		store.NewEvent{Type: "payment.refunded", Subject: "p", Payload: json.RawMessage(`{}`)},
		store.NewEvent{Type: "payment.accepted", Subject: "q", Payload: json.RawMessage(`{}`)})
	poison, behind, other := evs[0], evs[1], evs[2]
	kv := func(key string) string {
		v, _, err := s.KVGet(context.Background(), "script:hog", key)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	startChild := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHookDispatcher$", "-test.count=1")
		cmd.Env = append(os.Environ(), envHelper+"=hooks", envDB+"="+dbPath, envScripts+"="+scripts)
		var logs strings.Builder
		cmd.Stderr = &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("child log:\n%s", logs.String())
			}
		})
		return cmd
	}
	for kill := 1; kill <= 3; kill++ {
		child := startChild()
		waitFor(t, fmt.Sprintf("the hook running on the poison event, attempt %d", kill), func() bool {
			// The innocent event of the other subject finishes first: an
			// event in flight at each crash would be taken for poison too.
			return kv("started:"+poison.ID) == fmt.Sprint(kill) && state(t, s, other.ID) == store.EventDelivered
		})
		if err := child.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = child.Wait()
		if st := state(t, s, poison.ID); st != store.EventRunning {
			t.Fatalf("after kill %d the poison event is %s, want running (lease held by the dead process)", kill, st)
		}
	}
	child := startChild()
	waitFor(t, "poison event dead-lettered after the restart", func() bool { return state(t, s, poison.ID) == store.EventDead })
	if st := state(t, s, other.ID); st != store.EventDelivered {
		atts, _ := s.EventAttempts(context.Background(), other.ID)
		t.Fatalf("other subject's event is %s: %+v", st, atts)
	}
	time.Sleep(100 * time.Millisecond)
	_ = child.Process.Signal(syscall.SIGTERM)
	_ = child.Wait()

	if got := kv("started:" + poison.ID); got != "3" {
		t.Fatalf("the hook ran on the poison event up to attempt %s, want 3 (not after the restart)", got)
	}
	ev, err := s.GetEvent(context.Background(), poison.ID)
	if err != nil || !strings.Contains(ev.LastError, "poison event") {
		t.Fatalf("poison event %+v: %v", ev, err)
	}
	if st := state(t, s, behind.ID); st != store.EventPending || kv("started:"+behind.ID) != "" {
		t.Fatalf("the event behind the poison one is %s (hook started %q), want pending, never run", st, kv("started:"+behind.ID))
	}
	if kv("done:"+other.ID) != "1" {
		t.Fatal("the other subject's hook did not complete")
	}
}
