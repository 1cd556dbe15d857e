package payments

// kill -9 of the process holding the payments service, in the middle of a
// run: a child process (this test binary) serves the public and admin
// handlers on a SQLite file and a listener inherited from the parent (so
// the notification URLs stay valid across restarts); the parent drives
// payments through the real Sips simulator, kills the child with SIGKILL
// several times and restarts it. Afterwards one reconcile pass settles
// everything: each payment in the state the simulator knows, decided once.

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/daemon/store/sqlite"
	"github.com/acquit/acquit/plugins/atos"
	"github.com/acquit/acquit/plugins/atos/sim"
	"github.com/acquit/acquit/sdk"
)

const crashChildEnv = "ACQUIT_PAYMENTS_CRASH_CHILD"

func atosSettings(simURL string) []byte {
	b, _ := json.Marshal(map[string]any{"request_timeout": "5s", "merchants": []any{map[string]any{
		"name": "shop", "merchant_id": atosMID, "environment": "test", "paypage_url": simURL, "office_url": simURL,
		"keys": map[string]string{"1": atosKey1}, "payment_means": []string{"CB"}, "capture_day": 0}}})
	return b
}

// TestCrashChild is the child process; it does nothing in a normal run.
func TestCrashChild(t *testing.T) {
	if os.Getenv(crashChildEnv) != "1" {
		t.Skip("helper process for TestKill9")
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, os.Getenv("CRASH_DB"), store.WithMigrations(Migrations()))
	if err != nil {
		t.Fatal(err)
	}
	p := atos.New(atos.Silent())
	if err := p.Configure(ctx, atosSettings(os.Getenv("CRASH_SIM")), storeHost{st, "atos"}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.FileListener(os.NewFile(3, "listener"))
	if err != nil {
		t.Fatal(err)
	}
	svc := New(Deps{Store: st, Logger: zerolog.Nop(), Config: Config{DefaultGateway: "atos",
		PublicBaseURL: "http://" + ln.Addr().String(), ManualTimeout: 30 * time.Second},
		Gateway: func(string) (sdk.PaymentGateway, error) { return p, nil }})
	mux := http.NewServeMux()
	mux.Handle("/notify/", svc.PublicHandler())
	mux.Handle("/v1/payments", svc.AdminHandler())
	_ = http.Serve(ln, mux) // until killed
}

func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "acquit.db")
	s := sim.New(sim.Config{Merchants: []sim.Merchant{{ID: atosMID, Keys: map[string]string{"1": atosKey1}}},
		Faults: sim.Faults{DropAutomatic: 0.3, CustomerNeverReturns: 0.3, AutomaticTwice: 0.1}, Seed: 9,
		AutomaticAttempts: 3, RetryDelay: 50 * time.Millisecond})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lf, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	var mu sync.Mutex
	var child *exec.Cmd
	spawn := func() {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"=1", "CRASH_DB="+dbPath, "CRASH_SIM="+s.URL())
		cmd.ExtraFiles = []*os.File{lf}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		child = cmd
		mu.Unlock()
		go func() { _ = cmd.Wait() }()
	}
	kill := func() {
		mu.Lock()
		defer mu.Unlock()
		_ = child.Process.Kill() // SIGKILL
	}
	spawn()
	t.Cleanup(kill)

	const n = 300
	client := &http.Client{Timeout: 10 * time.Second}
	var started atomic.Int64
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := sim.NewBrowser()
			b.Client = client
			rng := rand.New(rand.NewPCG(uint64(w), 3))
			outcomes := []string{"accepted", "accepted", "accepted", "refused", "cancelled"}
			for i := range work {
				var st Started
				ok := false
				for attempt := 0; attempt < 100 && !ok; attempt++ {
					// One order per payment; a retry after a kill gets the
					// order's payment back (200) when the start had committed.
					body := `{"order_id":"K9-` + strconv.Itoa(i) + `","amount":990,"currency":"EUR","success_url":"` + shopOK + `","failure_url":"` + shopKO + `"}`
					resp, err := client.Post(base+"/v1/payments", "application/json", strings.NewReader(body))
					if err == nil {
						if (resp.StatusCode == 201 || resp.StatusCode == 200) && json.NewDecoder(resp.Body).Decode(&st) == nil {
							ok = true
						}
						resp.Body.Close()
					}
					if !ok {
						time.Sleep(20 * time.Millisecond) // the child is restarting
					}
				}
				if !ok {
					t.Error("could not start a payment")
					return
				}
				started.Add(1)
				m, err := b.Pay(context.Background(), st.Method, st.RedirectURL, st.Fields, sim.Choice{Outcome: outcomes[rng.IntN(len(outcomes))]})
				if err != nil || !m.Returns {
					continue
				}
				if resp, err := b.Return(context.Background(), m); err == nil {
					resp.Body.Close() // a crash here loses the return: reconcile covers it
				}
			}
		}()
	}
	kills := 0
	go func() {
		for i := 0; i < n; i++ {
			work <- i
		}
		close(work)
	}()
	for kills < 3 {
		target := int64((kills + 1) * n / 4)
		for started.Load() < target {
			time.Sleep(5 * time.Millisecond)
		}
		kill()
		kills++
		time.Sleep(30 * time.Millisecond)
		spawn()
	}
	wg.Wait()
	wctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.WaitDeliveries(wctx); err != nil {
		t.Fatal(err)
	}
	kill()
	time.Sleep(50 * time.Millisecond)
	if t.Failed() {
		t.FailNow()
	}

	// The parent takes over the file and reconciles.
	ctx := context.Background()
	st, err := sqlite.Open(ctx, dbPath, store.WithMigrations(Migrations()))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p := atos.New(atos.Silent())
	if err := p.Configure(ctx, atosSettings(s.URL()), storeHost{st, "atos"}); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	svc := New(Deps{Store: st, Logger: zerolog.Nop(), Now: func() time.Time { return later },
		Config:  Config{DefaultGateway: "atos", ReconcileAfter: 20 * time.Minute},
		Gateway: func(string) (sdk.PaymentGateway, error) { return p, nil }})
	sum, err := svc.Reconcile(ctx, map[string]string{"limit": "100000"})
	if err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	all, err := svc.List(ctx, ListFilter{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < n {
		t.Fatalf("%d payments stored, %d started", len(all), n)
	}
	truth := s.Decided()
	byChannel := map[string]int{}
	for _, pay := range all {
		want := StateExpired // started, but Sips never saw it (crash before the answer reached the shop)
		if o, ok := truth[pay.ProviderReference]; ok {
			want = stateOf(o)
		}
		if pay.State != want {
			t.Errorf("%s: %s, simulator says %s", pay.Reference, pay.State, want)
		}
		evs, err := st.ListEvents(ctx, store.EventFilter{Subject: "payment:" + pay.Reference, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 1 {
			t.Errorf("%s: %d events", pay.Reference, len(evs))
		}
		byChannel[pay.DecidedChannel]++
	}
	t.Logf("%d payments (%d started by the shop), %d kills; reconcile: %s; decided by channel: %v",
		len(all), n, kills, sum, byChannel)
}
