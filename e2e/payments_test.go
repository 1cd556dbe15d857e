package e2e

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/acquit/acquit/daemon/payments"
	"github.com/acquit/acquit/internal/demo"
	"github.com/acquit/acquit/plugins/atos/sim"
)

// TestPaymentsEndToEnd2000 runs 2,000 card payments (300 with -short)
// through the real daemon and atos plugin against the Sips simulator, in
// three batches of faults: (1) 30% of automatic responses dropped, 30% of
// customers never returning, 10% of automatic responses sent twice;
// (2) every automatic response held until after the manual one; (3)
// automatic responses 300ms late, with the same drop/never-return/twice
// shares. On top, 5% of returning customers double-submit the manual form
// (two concurrent POSTs), 5% post it again after every batch is done, and
// 3% abandon on the payment page. Every payment must end as the simulator
// decided, with exactly one decision event, and the payment hook must have
// received every decision event.
func TestPaymentsEndToEnd2000(t *testing.T) {
	n := 2000
	if testing.Short() {
		n = 300
	}
	c := ctx(t)
	e := newPayEnv(t, sim.Faults{}, nil)
	e.start(c)
	start := time.Now()
	batches := []struct {
		name   string
		share  float64
		faults sim.Faults
	}{
		{"drop 30%, never return 30%, twice 10%", 0.5, sim.Faults{DropAutomatic: 0.3, CustomerNeverReturns: 0.3, AutomaticTwice: 0.1}},
		{"automatic after manual, twice 10%, never return 10%", 0.25, sim.Faults{AutomaticAfterManual: true, AutomaticTwice: 0.1, CustomerNeverReturns: 0.1}},
		{"automatic 300ms late, drop 30%, never return 30%, twice 10%", 0.25, sim.Faults{AutomaticDelay: 300 * time.Millisecond, DropAutomatic: 0.3, CustomerNeverReturns: 0.3, AutomaticTwice: 0.1}},
	}
	rd := &redirects{}
	var all []*customer
	for k, b := range batches {
		e.sim.SetFaults(b.faults)
		cs := e.plan(int(float64(n)*b.share), uint64(k+1))
		t0 := time.Now()
		if err := e.drive(c, cs, 8, rd, nil); err != nil {
			t.Fatalf("batch %q: %v", b.name, err)
		}
		// Let this batch's automatic responses go out under its faults.
		if err := e.sim.WaitDeliveries(c); err != nil {
			t.Fatal(err)
		}
		t.Logf("batch %d (%s): %d customers in %s", k+1, b.name, len(cs), time.Since(t0).Round(time.Millisecond))
		all = append(all, cs...)
	}
	again := e.returnAgain(c, all, rd, nil)
	o := e.verifyPayments(c, all)
	o.log(t, fmt.Sprintf("%d payments", len(all)), time.Since(start), e.sim.Stats(), rd)
	t.Logf("  %d manual forms posted again after all batches", again)
	if bad := e.auto.errorAnswers(); len(bad) > 0 {
		t.Errorf("acquit answered automatic responses with errors (status: count) %v", bad)
	}
	if len(rd.bad) > 0 {
		t.Errorf("%d returning customers sent to the wrong page: %s", len(rd.bad), firstN(rd.bad, 10))
	}
	if rd.failed > 0 {
		t.Errorf("%d manual POSTs did not reach a running daemon", rd.failed)
	}
	for _, ch := range []string{"automatic", "manual", "reconciliation"} {
		if o.byChannel[ch] == 0 {
			t.Errorf("no payment decided by %s: the faults did not exercise every channel", ch)
		}
	}
	// The daemon's own counters agree (no restart in this test).
	m := e.metrics(c)
	if got := metricValue(m, "acquit_payments_transitions_total"); int(got) != len(all) {
		t.Errorf("acquit_payments_transitions_total = %v, want %d", got, len(all))
	}
	for _, ch := range []string{"automatic", "manual"} {
		got := metricValue(m, "acquit_payments_notifications_total", `verdict="decided"`, `channel="`+ch+`"`)
		if int(got) != o.byChannel[ch] {
			t.Errorf("acquit_payments_notifications_total{channel=%q,verdict=decided} = %v, want %d", ch, got, o.byChannel[ch])
		}
	}
	if o.verdicts["manual/duplicate"] == 0 || o.verdicts["automatic/duplicate"] == 0 {
		t.Errorf("no duplicates recorded (%v): the injected duplicates did not reach the daemon", o.verdicts)
	}
	if err := e.h.Stop(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
}

// TestPaymentsKill9 runs 800 payments (300 with -short) with 30% of
// automatic responses dropped, 30% of customers never returning and 10%
// sent twice, and kills the daemon and the atos plugin with SIGKILL twice
// in the middle. Customers already sent to the payment page keep paying and
// coming back while acquit is down: their manual POSTs fail; half of them
// refresh after the restart, the others are left to the automatic response
// or to reconciliation. Afterwards every payment must be as the simulator
// decided, decided once, with its hook run, and every automatic response
// acquit answered 2xx must be on its payment's timeline.
func TestPaymentsKill9(t *testing.T) {
	n := 800
	if testing.Short() {
		n = 300
	}
	c := ctx(t)
	e := newPayEnv(t, sim.Faults{DropAutomatic: 0.3, CustomerNeverReturns: 0.3, AutomaticTwice: 0.1}, nil)
	e.start(c)
	start := time.Now()
	cs := e.plan(n, 42)
	rd := &redirects{}

	// Starters create payments as a shop does (retrying while acquit is
	// down); payers are customers already sent to the payment page, who
	// keep coming back whether acquit is up or not.
	type startedPayment struct {
		c  *customer
		st *payments.Started
	}
	queue := make(chan startedPayment, 64)
	jobs := make(chan *customer)
	var started atomic.Int64
	var mu sync.Mutex
	var errs []error
	addErr := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	var starters, payers sync.WaitGroup
	for w := 0; w < 3; w++ {
		starters.Add(1)
		go func() {
			defer starters.Done()
			for cu := range jobs {
				st, err := e.startPayment(c, cu)
				if err != nil {
					addErr(err)
					continue
				}
				started.Add(1)
				queue <- startedPayment{cu, st}
			}
		}()
	}
	for w := 0; w < 8; w++ {
		payers.Add(1)
		go func() {
			defer payers.Done()
			for sp := range queue {
				if err := e.pay(c, sp.c, sp.st); err != nil {
					addErr(err)
					continue
				}
				// The customer reads the result page before the form
				// takes the browser back: payers are slower than the
				// shop, so started payments queue up as in real life.
				time.Sleep(time.Duration(50+sp.c.i%100) * time.Millisecond)
				e.goBack(c, sp.c, rd)
			}
		}()
	}
	// The killer: SIGKILL at a third and at two thirds of the payments
	// started, down for 1.5s each time.
	killed := make(chan error, 1)
	go func() {
		for _, at := range []int64{int64(n) / 3, 2 * int64(n) / 3} {
			for started.Load() < at {
				time.Sleep(10 * time.Millisecond)
			}
			// Not while a reconcile run is going: a run left unfinished
			// by a killed daemon blocks the schedule for 15 minutes
			// (TestPaymentsKill9DuringReconcile shows it).
			if err := e.waitNoReconcileRun(c); err != nil {
				killed <- err
				return
			}
			if err := e.h.Kill9(true); err != nil {
				killed <- err
				return
			}
			t.Logf("kill -9 of daemon and plugin with %d of %d payments started", started.Load(), n)
			time.Sleep(1500 * time.Millisecond)
			if err := e.h.Start(c); err != nil {
				killed <- err
				return
			}
		}
		killed <- nil
	}()
	for _, cu := range cs {
		jobs <- cu
	}
	close(jobs)
	starters.Wait()
	close(queue)
	payers.Wait()
	if err := <-killed; err != nil {
		t.Fatalf("kill/restart: %v", err)
	}
	if len(errs) > 0 {
		t.Fatalf("%d customers failed, first: %v", len(errs), errs[0])
	}
	if rd.failed == 0 {
		t.Fatalf("no manual POST met a dead daemon: the kills did not happen while customers were coming back")
	}
	failedReturns := rd.failed
	// Half of those whose POST failed refresh the page; the others never do.
	again := e.returnAgain(c, cs, rd, func(cu *customer) bool { return cu.i%2 == 0 })
	o := e.verifyPayments(c, cs)
	o.log(t, fmt.Sprintf("%d payments, 2 kill -9", n), time.Since(start), e.sim.Stats(), rd)
	t.Logf("  %d manual POSTs met a dead daemon; %d forms posted again after the restarts", failedReturns, again)
	if bad := e.auto.errorAnswers(); len(bad) > 0 {
		t.Errorf("acquit answered automatic responses with errors (status: count) %v", bad)
	}
	if len(rd.bad) > 0 {
		t.Errorf("%d returning customers sent to the wrong page: %s", len(rd.bad), firstN(rd.bad, 10))
	}
	if err := e.h.Stop(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
}

// TestPaymentsPluginCrashDaemonKeepsServing kills only the atos plugin
// process (SIGKILL) while 240 payments flow. The daemon must keep answering
// /healthz, a customer coming back while the plugin is down must still get
// an answer (a 303 to the right page, or the documented neutral "being
// confirmed" page when the response cannot be verified), the plugin must
// be restarted (GET /v1/plugins: state up, Restarts >= 1, a new pid), later
// payments must work, every payment must end as the simulator decided, and
// no zombie process may remain.
func TestPaymentsPluginCrashDaemonKeepsServing(t *testing.T) {
	const n = 240
	c := ctx(t)
	e := newPayEnv(t, sim.Faults{DropAutomatic: 0.3, CustomerNeverReturns: 0.2}, nil)
	e.start(c)
	daemonPID := e.h.Pid()
	rd := &redirects{allowNeutral: true}
	plugin := func() pluginStatus {
		var ps []pluginStatus
		if _, err := e.cl.Do(c, "GET", "/v1/plugins", nil, &ps); err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if p.Name == "atos" {
				return p
			}
		}
		t.Fatalf("no atos plugin in /v1/plugins: %+v", ps)
		return pluginStatus{}
	}
	before := plugin()
	if before.State != "up" || before.PID == 0 {
		t.Fatalf("atos plugin before the crash: %+v", before)
	}
	if st, ok := readProcStat(before.PID); !ok || st.ppid != daemonPID {
		t.Fatalf("plugin pid %d is not a child of the daemon %d (%+v)", before.PID, daemonPID, st)
	}

	// First third of the payments, then customers on the payment page
	// with their manual forms ready when the plugin dies.
	cs := e.plan(n, 5)
	first, waiting, rest := cs[:n/3], cs[n/3:n/3+10], cs[n/3+10:]
	if err := e.drive(c, first, 8, rd, nil); err != nil {
		t.Fatal(err)
	}
	for _, cu := range waiting {
		cu.back = backOnce
		st, err := e.startPayment(c, cu)
		if err == nil {
			err = e.pay(c, cu, st)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// The rest flow concurrently while the plugin is killed.
	flow := make(chan error, 1)
	go func() { flow <- e.drive(c, rest, 4, rd, nil) }()
	time.Sleep(200 * time.Millisecond)
	if err := syscall.Kill(before.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	// Customers come back while the plugin is dead or restarting.
	rdw := &redirects{allowNeutral: true}
	for _, cu := range waiting {
		e.goBack(c, cu, rdw)
	}
	t.Logf("%d customers back right after the plugin's SIGKILL: %d redirected, %d neutral page, %d wrong, %d unanswered",
		len(waiting), rdw.ok, rdw.neutral, len(rdw.bad), rdw.failed)
	if len(rdw.bad) > 0 || rdw.failed > 0 {
		t.Errorf("customers back while the plugin was down: %d unanswered, wrong pages: %v", rdw.failed, rdw.bad)
	}
	// The daemon answers /healthz all along, until the plugin is back.
	healthFails, healthChecks := 0, 0
	var after pluginStatus
	waitFor(t, 60*time.Second, "the atos plugin to be restarted", func() bool {
		healthChecks++
		resp, err := http.Get("http://" + e.h.AdminAddr + "/healthz")
		if err != nil || resp.StatusCode != 200 {
			healthFails++
		}
		if resp != nil {
			resp.Body.Close()
		}
		after = plugin()
		return after.State == "up" && after.PID != before.PID && after.PID != 0
	})
	t.Logf("plugin back after %s: %+v; /healthz failed %d of %d checks", time.Since(killedAt).Round(time.Millisecond),
		after, healthFails, healthChecks)
	if healthFails > 0 {
		t.Errorf("/healthz failed %d of %d times while the plugin was down", healthFails, healthChecks)
	}
	if after.Restarts < 1 {
		t.Errorf("plugin restarted but Restarts = %d", after.Restarts)
	}
	if err := <-flow; err != nil {
		t.Fatal(err)
	}
	// Later payments work.
	later := e.plan(30, 6)
	if err := e.drive(c, later, 4, rd, nil); err != nil {
		t.Fatalf("payments after the plugin restart: %v", err)
	}
	all := append(append([]*customer{}, cs...), later...)
	e.returnAgain(c, all, rd, func(*customer) bool { return true })
	o := e.verifyPayments(c, all)
	o.log(t, fmt.Sprintf("%d payments, plugin kill -9", len(all)), time.Since(killedAt), e.sim.Stats(), rd)
	if len(rd.bad) > 0 {
		t.Errorf("%d returning customers sent to the wrong page: %s", len(rd.bad), firstN(rd.bad, 10))
	}
	// No zombie: the dead plugin was reaped, nothing of the daemon's is Z.
	if st, ok := readProcStat(before.PID); ok && st.ppid == daemonPID {
		t.Errorf("the killed plugin %d is still there: %+v", before.PID, st)
	}
	for _, k := range childProcs(daemonPID) {
		if k.state == "Z" {
			t.Errorf("zombie child of the daemon: %+v", k)
		}
	}
	if err := e.h.Stop(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	waitFor(t, 10*time.Second, "the restarted plugin to exit with the daemon", func() bool {
		st, ok := readProcStat(after.PID)
		return !ok || st.state == "Z" && st.ppid != daemonPID
	})
}

// TestPaymentsKill9DuringReconcile kills the daemon and the plugin while
// the reconcile schedule is running (Office answers slowly, so the run is
// long), restarts the daemon, and expects reconciliation to go on: every
// payment whose customer never came back and whose automatic response was
// lost must be decided within a minute.
//
// The run the killed process left unfinished used to block the schedule
// for 15 minutes (timeout + grace); the restarted process of the instance
// now closes it at start (store.Schedules.AbandonInstanceRuns).
func TestPaymentsKill9DuringReconcile(t *testing.T) {
	c := ctx(t)
	e := newPayEnv(t, sim.Faults{DropAutomatic: 1, CustomerNeverReturns: 1, OfficeDelay: time.Second}, func(tp *demo.TemplateData) {
		tp.ReconcileAfter = "1s"
	})
	e.start(c)
	cs := e.plan(20, 3)
	rd := &redirects{}
	if err := e.drive(c, cs, 4, rd, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "a reconcile run to be going", func() bool { return e.reconcileSchedule(c).Running })
	if err := e.h.Kill9(true); err != nil {
		t.Fatal(err)
	}
	e.sim.SetFaults(sim.Faults{DropAutomatic: 1, CustomerNeverReturns: 1})
	e.start(c)
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		var ps []payments.Payment
		if _, err := e.cl.Do(c, "GET", "/v1/payments?state=pending&limit=1", nil, &ps); err == nil && len(ps) == 0 {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	var ps []payments.Payment
	if _, err := e.cl.Do(c, "GET", "/v1/payments?state=pending&limit=100", nil, &ps); err != nil {
		t.Fatal(err)
	}
	if len(ps) > 0 {
		t.Fatalf("%d payments still pending a minute after the restart; reconcile schedule: %+v", len(ps), e.reconcileSchedule(c))
	}
	e.verifyPayments(c, cs)
	if err := e.h.Stop(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
}

// TestPaymentsOfficeOutage loses every automatic response and every
// customer's return, so only reconciliation with Sips Office can decide,
// and takes Office down (HTTP 503) for three reconcile passes: no payment
// may move while Office cannot answer (in particular none may expire), the
// failing passes must show on GET /v1/schedules, and once Office is back
// every payment must be decided as the simulator says, once.
func TestPaymentsOfficeOutage(t *testing.T) {
	const n = 100
	c := ctx(t)
	e := newPayEnv(t, sim.Faults{DropAutomatic: 1, CustomerNeverReturns: 1, OfficeDown: true}, func(tp *demo.TemplateData) {
		tp.ReconcileAfter = "1s"
	})
	e.start(c)
	cs := e.plan(n, 8)
	rd := &redirects{}
	if err := e.drive(c, cs, 8, rd, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.WaitDeliveries(c); err != nil {
		t.Fatal(err)
	}
	base := e.sim.Stats().OfficeUnavailable
	waitFor(t, time.Minute, "three reconcile passes against Office down", func() bool {
		return e.sim.Stats().OfficeUnavailable >= base+3
	})
	var pending []payments.Payment
	if _, err := e.cl.Do(c, "GET", "/v1/payments?state=pending&limit=1000", nil, &pending); err != nil {
		t.Fatal(err)
	}
	if len(pending) != n {
		t.Errorf("%d of %d payments still pending while Office is down: a payment moved without an answer", len(pending), n)
	}
	sch := e.reconcileSchedule(c)
	if sch.LastOK == nil || *sch.LastOK || sch.LastError == "" {
		t.Errorf("reconcile schedule while Office is down: %+v; want the last run failed with an error", sch)
	}
	t.Logf("Office down: %d queries answered 503; reconcile schedule shows %q", e.sim.Stats().OfficeUnavailable, sch.LastError)
	e.sim.SetFaults(sim.Faults{DropAutomatic: 1, CustomerNeverReturns: 1})
	back := time.Now()
	o := e.verifyPayments(c, cs)
	o.log(t, fmt.Sprintf("%d payments decided after Office came back", n), time.Since(back), e.sim.Stats(), rd)
	if o.byChannel["reconciliation"] != n {
		t.Errorf("decided by %v, want all %d by reconciliation", o.byChannel, n)
	}
	if err := e.h.Stop(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
}

// TestPaymentsJSONModeS10Kill9 runs the other Sips flavour end to end:
// Paypage JSON (the plugin calls paymentInit, the browser follows the
// redirection) with legacy 6-digit s10TransactionIds drawn from the
// plugin's durable counter, and kills the daemon and the plugin with
// SIGKILL halfway. No s10 id may be handed out twice (the counter survives
// the kill), and every payment ends as the simulator decided, once.
func TestPaymentsJSONModeS10Kill9(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 150
	}
	c := ctx(t)
	e := newPayEnv(t, sim.Faults{DropAutomatic: 0.3, CustomerNeverReturns: 0.3, AutomaticTwice: 0.1}, nil)
	if err := e.h.WriteConfig(); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(e.h.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	text := string(cfg)
	for old, repl := range map[string]string{
		"          mode: post\n":                "          mode: json\n          reference_style: s10\n",
		"          interface_version: HP_3.4\n": "          interface_version: IR_WS_2.58\n",
	} {
		if !strings.Contains(text, old) {
			t.Fatalf("configuration template changed: no %q in\n%s", old, text)
		}
		text = strings.Replace(text, old, repl, 1)
	}
	if err := os.WriteFile(e.h.ConfigPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	e.start(c)
	start := time.Now()
	cs := e.plan(n, 77)
	rd := &redirects{}
	killed := make(chan error, 1)
	var once sync.Once
	var startedNow, startedAtKill atomic.Int64
	onStarted := func(k int) {
		startedNow.Store(int64(k))
		if k < n/2 {
			return
		}
		once.Do(func() {
			go func() {
				if err := e.waitNoReconcileRun(c); err != nil {
					killed <- err
					return
				}
				if err := e.h.Kill9(true); err != nil {
					killed <- err
					return
				}
				startedAtKill.Store(startedNow.Load())
				time.Sleep(time.Second)
				killed <- e.h.Start(c)
			}()
		})
	}
	if err := e.drive(c, cs, 8, rd, onStarted); err != nil {
		t.Fatal(err)
	}
	if err := <-killed; err != nil {
		t.Fatalf("kill/restart: %v", err)
	}
	if k := startedAtKill.Load(); k >= int64(n) {
		t.Fatalf("every payment was started before the kill: the test did not kill mid-flow")
	} else {
		t.Logf("kill -9 of daemon and plugin with %d of %d payments started", k, n)
	}
	e.returnAgain(c, cs, rd, func(*customer) bool { return true })
	seen := map[string]string{}
	for _, cu := range cs {
		if len(cu.prov) != 6 || strings.Trim(cu.prov, "0123456789") != "" {
			t.Fatalf("payment %s: provider reference %q is not a 6-digit s10 id", cu.ref, cu.prov)
		}
		if other, dup := seen[cu.prov]; dup {
			t.Errorf("s10 id %s given to %s and %s", cu.prov, other, cu.ref)
		}
		seen[cu.prov] = cu.ref
	}
	o := e.verifyPayments(c, cs)
	o.log(t, fmt.Sprintf("%d JSON-mode s10 payments, 1 kill -9", n), time.Since(start), e.sim.Stats(), rd)
	if bad := e.auto.errorAnswers(); len(bad) > 0 {
		t.Errorf("acquit answered automatic responses with errors (status: count) %v", bad)
	}
	if len(rd.bad) > 0 {
		t.Errorf("%d returning customers sent to the wrong page: %s", len(rd.bad), firstN(rd.bad, 10))
	}
	if err := e.h.Stop(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
}

// TestPaymentsSIGTERMMidFlow stops the daemon gracefully (SIGTERM, as
// systemd does on a restart) while 300 payments flow, and starts it again:
// the stop must exit 0, every request the daemon answered must have been
// answered correctly (no 5xx, no wrong page while shutting down), and every
// payment must end as the simulator decided, once.
func TestPaymentsSIGTERMMidFlow(t *testing.T) {
	const n = 300
	c := ctx(t)
	e := newPayEnv(t, sim.Faults{DropAutomatic: 0.3, CustomerNeverReturns: 0.3, AutomaticTwice: 0.1}, nil)
	e.start(c)
	start := time.Now()
	cs := e.plan(n, 13)
	rd := &redirects{}
	stopped := make(chan error, 1)
	var once sync.Once
	onStarted := func(k int) {
		if k < n/2 {
			return
		}
		once.Do(func() {
			go func() {
				if err := e.h.Stop(); err != nil {
					stopped <- fmt.Errorf("SIGTERM mid-flow: %w", err)
					return
				}
				time.Sleep(500 * time.Millisecond)
				stopped <- e.h.Start(c)
			}()
		})
	}
	if err := e.drive(c, cs, 8, rd, onStarted); err != nil {
		t.Fatal(err)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	e.returnAgain(c, cs, rd, func(*customer) bool { return true })
	o := e.verifyPayments(c, cs)
	o.log(t, fmt.Sprintf("%d payments, SIGTERM and restart mid-flow", n), time.Since(start), e.sim.Stats(), rd)
	if bad := e.auto.errorAnswers(); len(bad) > 0 {
		t.Errorf("acquit answered automatic responses with errors (status: count) %v", bad)
	}
	if len(rd.bad) > 0 {
		t.Errorf("%d returning customers got a wrong answer around the stop: %s", len(rd.bad), firstN(rd.bad, 10))
	}
	if err := e.h.Stop(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
}

// pluginStatus is one row of GET /v1/plugins.
type pluginStatus struct {
	Name      string
	State     string
	PID       int
	Restarts  int
	LastError string
}
