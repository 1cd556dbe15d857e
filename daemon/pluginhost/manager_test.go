package pluginhost

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/acquit/acquit/internal/procstat"
	"github.com/acquit/acquit/plugins/testplugin"
	"github.com/acquit/acquit/sdk"
)

const (
	secret   = "0123456789abcdef-test-secret"
	settings = `{"secret":"` + secret + `","merchant":"shop1"}`
)

type env struct {
	m     *Manager
	state *memState
	reg   *prometheus.Registry
	logs  *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newEnv(t *testing.T, tweak func(*Options)) *env {
	t.Helper()
	e := &env{state: newMemState(), reg: prometheus.NewRegistry(), logs: &syncBuffer{}}
	opts := Options{
		State:          e.state,
		Logger:         zerolog.New(e.logs).Level(zerolog.DebugLevel),
		Registerer:     e.reg,
		HealthInterval: time.Hour,
		BackoffMin:     200 * time.Millisecond,
		BackoffMax:     time.Second,
	}
	if tweak != nil {
		tweak(&opts)
	}
	m, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.m = m
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := m.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return e
}

func gatewaySpec(name string, envv ...string) Spec {
	return Spec{Name: name, Path: pluginPath, Kind: sdk.KindPaymentGateway, Settings: []byte(settings), Env: envv}
}

func notification(t testing.TB, name string) sdk.Notification {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return sdk.Notification{Channel: sdk.ChannelAutomatic, Method: "POST", Path: "/notify/test", Body: b}
}

func (e *env) pid(t testing.TB, name string) int {
	t.Helper()
	for _, s := range e.m.Status() {
		if s.Name == name {
			return s.PID
		}
	}
	t.Fatalf("no status for %s", name)
	return 0
}

func (e *env) status(name string) Status {
	for _, s := range e.m.Status() {
		if s.Name == name {
			return s
		}
	}
	return Status{}
}

// TestRoundTrip: start, Describe, every gateway call, Host state written
// by the plugin through the daemon, metrics and plugin logs.
func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	if err := e.m.Start(ctx, gatewaySpec("test")); err != nil {
		t.Fatal(err)
	}
	info, err := e.m.Info("test")
	if err != nil || info.Name != testplugin.Name || info.Version != testplugin.Version || info.Kind != sdk.KindPaymentGateway || len(info.Jobs) != 1 {
		t.Fatalf("info %+v %v", info, err)
	}
	g, err := e.m.Gateway("test")
	if err != nil {
		t.Fatal(err)
	}
	init, err := g.InitPayment(ctx, sdk.PaymentRequest{Reference: "REF0001", Amount: 1250, Currency: "EUR"})
	if err != nil {
		t.Fatal(err)
	}
	if init.Fields["Seal"] != testplugin.Seal(secret, init.Fields["Data"]) {
		t.Fatalf("init %+v", init)
	}
	// The plugin wrote its state through the Host into the daemon's store,
	// scoped by the configured name.
	if keys := e.state.keys("test"); len(keys) != 1 || keys[0] != "payment/REF0001" {
		t.Fatalf("state keys %v", keys)
	}
	res, err := g.VerifyNotification(ctx, notification(t, "accepted.form"))
	if err != nil || res.Outcome != sdk.OutcomeAccepted || res.Reference != "REF0001" || res.Amount != 1250 {
		t.Fatalf("verify: %+v %v", res, err)
	}
	_, err = g.VerifyNotification(ctx, notification(t, "forged_seal.form"))
	var rej *sdk.RejectError
	if !errors.As(err, &rej) || rej.Code != "bad_seal" {
		t.Fatalf("forged: %v", err)
	}
	q, err := g.QueryTransaction(ctx, sdk.TransactionQuery{Reference: "REF0001"})
	if err != nil || q.Outcome != sdk.OutcomeAccepted {
		t.Fatalf("query: %+v %v", q, err)
	}
	// store.ErrConflict in the daemon reaches the plugin as sdk.ErrConflict
	// and comes back to the caller as such.
	if _, err := g.InitPayment(ctx, sdk.PaymentRequest{Reference: "REF0001", Amount: 1, Currency: "EUR"}); !errors.Is(err, sdk.ErrConflict) {
		t.Fatalf("duplicate: %v, want sdk.ErrConflict", err)
	}
	jr, err := e.m.JobRunner("test")
	if err != nil {
		t.Fatal(err)
	}
	if sum, err := jr.RunJob(ctx, "reconcile", nil); err != nil || sum != "reconcile run 1" {
		t.Fatalf("job: %q %v", sum, err)
	}
	if err := g.Health(ctx); err != nil {
		t.Fatal(err)
	}
	if v := testutil.ToFloat64(e.m.metrics.up.WithLabelValues("test")); v != 1 {
		t.Fatalf("up gauge %v", v)
	}
	if v := testutil.ToFloat64(e.m.metrics.rpcErrors.WithLabelValues("test", "VerifyNotification", "reject")); v != 1 {
		t.Fatalf("reject counter %v", v)
	}
	// The plugin's own stderr log line arrived in zerolog with plugin=test.
	waitFor(t, "plugin log line", func() bool {
		return strings.Contains(e.logs.String(), `"plugin":"test"`) && strings.Contains(e.logs.String(), `"message":"starting"`)
	})
	if _, err := e.m.Transport("test"); !errors.Is(err, ErrWrongKind) {
		t.Fatalf("Transport on a gateway: %v", err)
	}
	if _, err := e.m.Gateway("nope"); !errors.Is(err, ErrUnknownPlugin) {
		t.Fatalf("unknown plugin: %v", err)
	}
}

func TestChecksum(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	marker := filepath.Join(t.TempDir(), "started")
	bad := gatewaySpec("bad", testplugin.EnvStartedFile+"="+marker)
	bad.SHA256 = strings.Repeat("ab", 32)
	err := e.m.Start(ctx, bad)
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("got %v, want ErrChecksum", err)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatalf("the plugin was started despite the checksum mismatch (%v)", err)
	}
	good := gatewaySpec("good", testplugin.EnvStartedFile+"="+marker)
	good.SHA256 = strings.ToUpper(pluginSum(t))
	if err := e.m.Start(ctx, good); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(marker)
	if err != nil || string(b) != strconv.Itoa(e.pid(t, "good")) {
		t.Fatalf("marker %q %v, pid %d", b, err, e.pid(t, "good"))
	}
}

func TestStartFailures(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		want error  // errors.Is target, or nil
		text string // substring of the error
	}{
		{"garbage on stdout", gatewaySpec("garbage", testplugin.EnvStdoutGarbage+"=1"), nil, "handshake"},
		{"exits at start", gatewaySpec("exits", testplugin.EnvExitAtStart+"=1"), nil, "handshake"},
		{"wrong kind", Spec{Name: "kind", Path: pluginPath, Kind: sdk.KindBankTransport, Settings: []byte(settings)}, ErrWrongKind, ""},
		{"bad settings", Spec{Name: "settings", Path: pluginPath, Kind: sdk.KindPaymentGateway, Settings: []byte(`{"secret":"short"}`)}, nil, "configure"},
		{"missing executable", Spec{Name: "missing", Path: "/nonexistent/acquit-plugin", Kind: sdk.KindPaymentGateway}, nil, "handshake"},
		{"not a plugin", Spec{Name: "notplugin", Path: "/bin/true", Kind: sdk.KindPaymentGateway}, nil, "handshake"},
		{"bad name", Spec{Name: "Bad Name", Path: pluginPath, Kind: sdk.KindPaymentGateway}, ErrBadSpec, ""},
		{"empty path", Spec{Name: "x", Kind: sdk.KindPaymentGateway}, ErrBadSpec, ""},
		{"unknown kind", Spec{Name: "x", Path: pluginPath, Kind: "scanner"}, ErrBadSpec, ""},
		{"short sha", Spec{Name: "x", Path: pluginPath, Kind: sdk.KindPaymentGateway, SHA256: "abcd"}, ErrBadSpec, ""},
		{"bad env", Spec{Name: "x", Path: pluginPath, Kind: sdk.KindPaymentGateway, Env: []string{"NOEQUALS"}}, ErrBadSpec, ""},
	}
	e := newEnv(t, func(o *Options) { o.StartTimeout = 10 * time.Second })
	before := children(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := e.m.Start(context.Background(), tc.spec)
			if err == nil {
				t.Fatal("started")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if tc.text != "" && !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("got %v, want it to mention %q", err, tc.text)
			}
			if _, err := e.m.Gateway(tc.spec.Name); !errors.Is(err, ErrUnknownPlugin) {
				t.Fatalf("failed plugin is registered: %v", err)
			}
		})
	}
	for pid := range children(t) {
		if !before[pid] {
			t.Errorf("child process %d (state %s) left behind by a failed start", pid, procState(pid))
		}
	}
	if err := e.m.Start(context.Background(), gatewaySpec("dup"), gatewaySpec("dup")); !errors.Is(err, ErrBadSpec) {
		t.Fatalf("duplicate names: %v", err)
	}
}

// TestCrashRestart: a plugin that dies is restarted with backoff; calls
// during the outage fail fast with UnavailableError; state survives.
func TestCrashRestart(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, func(o *Options) { o.BackoffMin = 500 * time.Millisecond })
	if err := e.m.Start(ctx, gatewaySpec("atos", testplugin.EnvCrashOn+"=RunJob")); err != nil {
		t.Fatal(err)
	}
	g, _ := e.m.Gateway("atos")
	jr, _ := e.m.JobRunner("atos")
	if _, err := g.InitPayment(ctx, sdk.PaymentRequest{Reference: "KEEP", Amount: 5, Currency: "EUR"}); err != nil {
		t.Fatal(err)
	}
	pid1 := e.pid(t, "atos")

	_, err := jr.RunJob(ctx, "reconcile", nil) // the plugin exits(3) here
	var un *UnavailableError
	if !errors.As(err, &un) {
		t.Fatalf("call that killed the plugin: %v, want UnavailableError", err)
	}
	waitFor(t, "plugin marked down", func() bool { return e.status("atos").State == StateRestarting })
	// During the backoff, calls fail at once with a clear error.
	_, err = g.QueryTransaction(ctx, sdk.TransactionQuery{Reference: "KEEP"})
	if !errors.As(err, &un) || err.Error() != "plugin atos unavailable (restarting)" {
		t.Fatalf("call during outage: %v", err)
	}
	if st := procState(pid1); st != "" {
		t.Fatalf("crashed plugin %d not reaped (state %s)", pid1, st)
	}
	waitFor(t, "plugin restarted", func() bool { return e.status("atos").State == StateUp })
	st := e.status("atos")
	if st.Restarts != 1 || st.PID == pid1 || st.PID == 0 || !strings.Contains(st.LastError, "exited") {
		t.Fatalf("status after restart %+v (old pid %d)", st, pid1)
	}
	// The same handle reaches the new process, configured, with its state.
	q, err := g.QueryTransaction(ctx, sdk.TransactionQuery{Reference: "KEEP"})
	if err != nil || q.Outcome != sdk.OutcomePending || q.Amount != 5 {
		t.Fatalf("after restart: %+v %v", q, err)
	}
	if v := testutil.ToFloat64(e.m.metrics.restarts.WithLabelValues("atos")); v != 1 {
		t.Fatalf("restart counter %v", v)
	}
	if v := testutil.ToFloat64(e.m.metrics.rpcErrors.WithLabelValues("atos", "QueryTransaction", "unavailable")); v != 1 {
		t.Fatalf("unavailable counter %v", v)
	}
}

// TestRestartBackoffGrows: a plugin that cannot start again is retried
// with growing delays and stays unavailable.
func TestRestartBackoffGrows(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, func(o *Options) { o.BackoffMin = 50 * time.Millisecond; o.BackoffMax = 400 * time.Millisecond })
	// Start from a private copy of the plugin, then remove it: every
	// restart after the crash fails.
	exe := filepath.Join(t.TempDir(), "plugin")
	b, err := os.ReadFile(pluginPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, b, 0o700); err != nil {
		t.Fatal(err)
	}
	spec := gatewaySpec("flaky", testplugin.EnvCrashOn+"=RunJob")
	spec.Path = exe
	if err := e.m.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(exe); err != nil {
		t.Fatal(err)
	}
	jr, _ := e.m.JobRunner("flaky")
	_, _ = jr.RunJob(ctx, "reconcile", nil)
	waitFor(t, "several failed restarts", func() bool { return e.status("flaky").Restarts >= 5 })
	st := e.status("flaky")
	if st.State != StateRestarting || !strings.Contains(st.LastError, "handshake") {
		t.Fatalf("status %+v", st)
	}
	// The delays logged between attempts double up to BackoffMax.
	var delays []string
	for _, line := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(line, `"plugin restart failed"`) && len(delays) < 4 {
			i := strings.Index(line, `"backoff":`)
			delays = append(delays, strings.SplitN(line[i+10:], ",", 2)[0])
		}
	}
	if got := strings.Join(delays, " "); got != "100 200 400 400" {
		t.Fatalf("backoff sequence %q, want \"100 200 400 400\" (ms)", got)
	}
	g, _ := e.m.Gateway("flaky")
	if err := g.Health(ctx); !strings.Contains(err.Error(), "unavailable (restarting)") {
		t.Fatalf("health while down: %v", err)
	}
}

// TestHungCall: a call that hangs in the plugin ends with the caller's
// deadline; the plugin keeps serving other calls.
func TestHungCall(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	if err := e.m.Start(ctx, gatewaySpec("hang", testplugin.EnvHangOn+"=VerifyNotification")); err != nil {
		t.Fatal(err)
	}
	g, _ := e.m.Gateway("hang")
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := g.VerifyNotification(cctx, notification(t, "accepted.form")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hung call: %v", err)
	}
	if err := g.Health(ctx); err != nil {
		t.Fatalf("other calls: %v", err)
	}
}

// TestHealthCheckRestartsHungPlugin: a plugin that stops answering health
// checks is killed and restarted.
func TestHealthCheckRestartsHungPlugin(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.HealthInterval = 100 * time.Millisecond
		o.HealthTimeout = 100 * time.Millisecond
		o.HealthFailures = 2
		o.BackoffMin = 50 * time.Millisecond
	})
	if err := e.m.Start(context.Background(), gatewaySpec("stuck", testplugin.EnvHangOn+"=Health")); err != nil {
		t.Fatal(err)
	}
	pid1 := e.pid(t, "stuck")
	waitFor(t, "restart after failed health checks", func() bool { return e.status("stuck").Restarts >= 1 })
	waitFor(t, "old process reaped", func() bool { return procState(pid1) == "" })
	if !strings.Contains(e.status("stuck").LastError, "health") {
		t.Fatalf("status %+v", e.status("stuck"))
	}
}

func TestReconfigure(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	if err := e.m.Start(ctx, gatewaySpec("cfg")); err != nil {
		t.Fatal(err)
	}
	g, _ := e.m.Gateway("cfg")
	if err := e.m.Reconfigure(ctx, "cfg", []byte(`{"secret":"x"}`)); err == nil {
		t.Fatal("bad settings accepted")
	}
	// The previous configuration is still in force.
	if _, err := g.VerifyNotification(ctx, notification(t, "accepted.form")); err != nil {
		t.Fatalf("after refused reconfigure: %v", err)
	}
	if err := g.Configure(ctx, []byte(`{"secret":"`+secret+`","merchant":"shop2"}`), nil); err != nil {
		t.Fatal(err)
	}
	var rej *sdk.RejectError
	if _, err := g.VerifyNotification(ctx, notification(t, "accepted.form")); !errors.As(err, &rej) || rej.Code != "unknown_merchant" {
		t.Fatalf("after reconfigure to shop2: %v", err)
	}
	// The Host still works after reconfiguration (same broker server).
	if _, err := g.InitPayment(ctx, sdk.PaymentRequest{Reference: "R2", Amount: 1, Currency: "EUR"}); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Reconfigure(ctx, "nope", nil); !errors.Is(err, ErrUnknownPlugin) {
		t.Fatalf("unknown: %v", err)
	}
}

// TestStopLeavesNoChild: after Stop every plugin process is gone and
// reaped (no zombie), including one hung in a call.
func TestStopLeavesNoChild(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	if err := e.m.Start(ctx, gatewaySpec("a"), gatewaySpec("b", testplugin.EnvHangOn+"=QueryTransaction")); err != nil {
		t.Fatal(err)
	}
	pids := []int{e.pid(t, "a"), e.pid(t, "b")}
	kids := children(t)
	for _, p := range pids {
		if !kids[p] || procState(p) == "" {
			t.Fatalf("plugin %d is not a running child", p)
		}
	}
	g, _ := e.m.Gateway("b")
	go func() { _, _ = g.QueryTransaction(context.Background(), sdk.TransactionQuery{Reference: "x"}) }()
	time.Sleep(50 * time.Millisecond)
	if err := e.m.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for _, p := range pids {
		if st := procState(p); st != "" {
			t.Errorf("plugin %d still exists after Stop (state %s)", p, st)
		}
	}
	if st := e.status("a"); st.State != StateStopped {
		t.Fatalf("status %+v", st)
	}
	if err := e.m.Start(ctx, gatewaySpec("c")); !errors.Is(err, ErrStopped) {
		t.Fatalf("start after stop: %v", err)
	}
	ga, _ := e.m.Gateway("a")
	var un *UnavailableError
	if err := ga.Health(ctx); !errors.As(err, &un) || un.State != StateStopped {
		t.Fatalf("call after stop: %v", err)
	}
}

// BenchmarkPluginRPC measures one VerifyNotification round trip (seal
// check included, and the test plugin's two Host calls back to the daemon)
// to a real plugin process, with the plugin's GOMAXPROCS left to Go
// (max_procs=0) and set to 1.
func BenchmarkPluginRPC(b *testing.B) {
	data := testplugin.EncodeData(map[string]string{"merchant": "shop1", "reference": "B1", "amount": "100", "currency": "EUR", "responseCode": "00"})
	n := sdk.Notification{Body: []byte(url.Values{"Data": {data}, "Seal": {testplugin.Seal(secret, data)}}.Encode())}
	benchRPC(b, func(ctx context.Context, g sdk.PaymentGateway) error {
		_, err := g.VerifyNotification(ctx, n)
		return err
	})
}

// benchRPC runs call against a fresh test plugin, once per max_procs value,
// reporting the median round trip and the CPU of both processes.
func benchRPC(b *testing.B, call func(context.Context, sdk.PaymentGateway) error) {
	benchRPCSpec(b, gatewaySpec("bench"), call)
}

// benchRPCSpec is benchRPC for the gateway plugin spec describes.
func benchRPCSpec(b *testing.B, spec Spec, call func(context.Context, sdk.PaymentGateway) error) {
	for _, procs := range []int{0, 1} {
		b.Run(fmt.Sprintf("max_procs=%d", procs), func(b *testing.B) {
			m, err := New(Options{State: newMemState(), Logger: zerolog.Nop(), HealthInterval: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = m.Stop(context.Background()) }()
			spec := spec
			spec.MaxProcs = procs
			if p := os.Getenv(benchProfileEnv); p != "" {
				spec.Env = append(spec.Env, testplugin.EnvCPUProfile+"="+fmt.Sprintf("%s.max_procs=%d", p, procs))
			}
			if err := m.Start(context.Background(), spec); err != nil {
				b.Fatal(err)
			}
			g, _ := m.Gateway(spec.Name)
			ctx := context.Background()
			lat := make([]time.Duration, 0, 1024)
			cpu := rpcCPU(b, m, spec.Name)
			for b.Loop() {
				t0 := time.Now()
				if err := call(ctx, g); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			cpu()
			reportP50(b, lat)
		})
	}
}

// benchProfileEnv, when set to a path prefix, makes the benchmarks' plugin
// write its CPU profile to <prefix>.max_procs=N (the daemon side is
// go test's -cpuprofile).
const benchProfileEnv = "ACQUIT_BENCH_PLUGIN_CPUPROFILE"

// reportP50 reports the median of the measured round trips in µs (the
// mean, ns/op, is pulled up by the GC and by other load on the machine).
func reportP50(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1000, "p50-µs")
}

// rpcCPU returns a function reporting the CPU time per call spent by this
// process and the plugin's together (getrusage and /proc/<pid>/stat): on
// a loaded machine it moves far less than the wall-clock latency.
func rpcCPU(b *testing.B, m *Manager, name string) (report func()) {
	pid := 0
	for _, s := range m.Status() {
		if s.Name == name {
			pid = s.PID
		}
	}
	return pidCPU(b, pid)
}

// pidCPU is rpcCPU for the other process pid.
func pidCPU(b *testing.B, pid int) (report func()) {
	both := func() time.Duration {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		d := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		if s, err := procstat.CPU(pid); err == nil {
			d += time.Duration(s * float64(time.Second))
		}
		return d
	}
	c0 := both()
	return func() {
		b.ReportMetric(float64((both()-c0).Microseconds())/float64(b.N), "cpu-µs/op")
	}
}

// TestRemove: a removed plugin's process is gone, its handles report it
// stopped, and the name can be started again (configuration reload).
func TestRemove(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	if err := e.m.Start(ctx, gatewaySpec("old")); err != nil {
		t.Fatal(err)
	}
	g, _ := e.m.Gateway("old")
	pid := e.pid(t, "old")
	if err := e.m.Remove(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	if st := procState(pid); st != "" {
		t.Fatalf("removed plugin %d still exists (state %s)", pid, st)
	}
	var un *UnavailableError
	if err := g.Health(ctx); !errors.As(err, &un) || un.State != StateStopped {
		t.Fatalf("handle after remove: %v", err)
	}
	if err := e.m.Remove(ctx, "old"); !errors.Is(err, ErrUnknownPlugin) {
		t.Fatalf("second remove: %v", err)
	}
	if err := e.m.Start(ctx, gatewaySpec("old")); err != nil {
		t.Fatal(err)
	}
	g2, _ := e.m.Gateway("old")
	if err := g2.Health(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestPluginOutputAfterHandshake: a plugin writing garbage to stdout once
// serving does not break it; the output is logged with the plugin's name.
func TestPluginOutputAfterHandshake(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	if err := e.m.Start(ctx, gatewaySpec("noisy", testplugin.EnvPrintOn+"=Health")); err != nil {
		t.Fatal(err)
	}
	g, _ := e.m.Gateway("noisy")
	if err := g.Health(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "stdout and stderr lines logged", func() bool {
		l := e.logs.String()
		return strings.Contains(l, `"stream":"stdout","message":"garbage on stdout during Health`) &&
			strings.Contains(l, `raw stderr line during Health`)
	})
	if _, err := g.VerifyNotification(ctx, notification(t, "accepted.form")); err != nil {
		t.Fatalf("after garbage: %v", err)
	}
}

// BenchmarkPluginRPCHealth measures a bare round trip (Health, no Host
// calls) to a real plugin process.
func BenchmarkPluginRPCHealth(b *testing.B) {
	benchRPC(b, func(ctx context.Context, g sdk.PaymentGateway) error { return g.Health(ctx) })
}

// TestHandshakeTimeout: a plugin that never completes the handshake is
// killed after StartTimeout and reaped.
func TestHandshakeTimeout(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.StartTimeout = 500 * time.Millisecond })
	before := children(t)
	err := e.m.Start(context.Background(), gatewaySpec("mute", testplugin.EnvHangAtStart+"=1"))
	if err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("got %v, want a handshake timeout", err)
	}
	for pid := range children(t) {
		if !before[pid] {
			t.Errorf("child %d (state %s) left behind", pid, procState(pid))
		}
	}
}
