package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/acquit/acquit/internal/demo"
)

// idleRSSBoundMB is what TestIdleDaemonMemory allows the daemon and its
// two plugins together, resident after two idle seconds. Issue 12 asks for
// 60 MB; 62.0-62.7 MB is measured with `make build` (CGO_ENABLED=0,
// grpcnotrace) since the dashboard and payment-page templates are parsed
// at first use and the validation patterns lost their bounded
// repetitions (64.2-64.8 MB before), of which
// about 48 MB are the three binaries' own code and read-only data mapped
// from the file (clean pages shared with the page cache), and the Go
// heaps, stacks, runtime and SQLite about 14.5 MB: see docs/benchmarks.md,
// "idle daemon". The bound catches a regression (a table built at start,
// a state pool filled eagerly, a dependency that doubles a binary) without
// claiming the target. What keeps the target out of reach (seventh pass
// there): Linux keeps nearly all of each binary's code resident, and
// go-plugin's net/rpc server (plugins) and html/template (daemon) make
// the linker keep every exported method (tools/reflectroots).
//
// 64 MB until session 8, when CI's own runs measured 64,860 and 65,252 kB
// (63.3 and 63.7 MB, 0.3 MB under that bound) and bench/run.sh 62.7-63.7
// MB: 65 leaves about 1.3 MB for a busier machine, and a regression of 2
// MB (a dependency that doubles a binary, a table built at start) still
// fails it.
const idleRSSBoundMB = 65

// idleFigures are one idle start's measurements.
type idleFigures struct {
	ready              time.Duration
	daemonKB, pluginKB int
	daemonAnonKB       int
	pluginAnonKB       int
	plugins            int
}

// startIdle starts the real daemon with both bank plugins (atos and ebics,
// each configured against an unreachable provider: nothing is asked of
// them), waits until /readyz answers (polled every 100 ms, so a ceiling),
// waits two idle seconds and reads the resident memory of the daemon and
// of its plugin processes.
func startIdle(tb testing.TB, bin string) idleFigures {
	tb.Helper()
	h, err := demo.NewHarness(filepath.Join(tb.TempDir(), "state"), bin, "testdata/scripts")
	if err != nil {
		tb.Fatal(err)
	}
	s, err := demo.SetupEbics(h, "de", 1<<20)
	if err != nil {
		tb.Fatal(err)
	}
	defer s.Close()
	if err := h.WriteSecret("sips-key-1", payKey); err != nil {
		tb.Fatal(err)
	}
	h.Template().Atos = &demo.AtosData{PaypageURL: "http://127.0.0.1:9/", OfficeURL: "http://127.0.0.1:9/", MerchantID: payMerchantID, KeyFile: h.SecretPath("sips-key-1")}
	if err := h.WriteConfig(); err != nil {
		tb.Fatal(err)
	}
	var f idleFigures
	t0 := time.Now()
	if err := h.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	f.ready = time.Since(t0)
	defer func() {
		if err := h.Stop(); err != nil {
			tb.Error(err)
		}
	}()
	time.Sleep(2 * time.Second)
	f.daemonKB, f.daemonAnonKB = rssKB(tb, h.Pid())
	for _, c := range h.PluginPids() {
		kb, anon := rssKB(tb, c)
		f.pluginKB += kb
		f.pluginAnonKB += anon
		f.plugins++
	}
	if f.plugins != 2 {
		tb.Fatalf("%d plugin processes, want 2", f.plugins)
	}
	return f
}

// BenchmarkIdleDaemon reports the time until the daemon with both bank
// plugins is ready and the resident memory of the daemon and of its plugin
// processes after two idle seconds (see startIdle); *-anon-MB is the part
// that is not mapped from the binaries (heaps, stacks, runtime). Needs
// ACQUIT_BIN_DIR (make build):
//
//	ACQUIT_BIN_DIR=$PWD/bin go test ./e2e -run '^$' -bench IdleDaemon -benchtime 1x
func BenchmarkIdleDaemon(b *testing.B) {
	bin := os.Getenv("ACQUIT_BIN_DIR")
	if bin == "" {
		b.Skip("needs ACQUIT_BIN_DIR with acquit and both plugins (make build)")
	}
	var ready time.Duration
	var f idleFigures
	for i := 0; i < b.N; i++ {
		f = startIdle(b, bin)
		ready += f.ready
	}
	b.ReportMetric(ready.Seconds()/float64(b.N), "ready-s")
	b.ReportMetric(float64(f.daemonKB)/1024, "daemon-rss-MB")
	b.ReportMetric(float64(f.pluginKB)/1024, "plugins-rss-MB")
	b.ReportMetric(float64(f.daemonKB+f.pluginKB)/1024, "total-rss-MB")
	b.ReportMetric(float64(f.daemonAnonKB+f.pluginAnonKB)/1024, "total-anon-MB")
}

// TestIdleDaemonMemory fails when the idle daemon and its two plugins
// together stay resident above idleRSSBoundMB. Needs ACQUIT_BIN_DIR
// (make build).
func TestIdleDaemonMemory(t *testing.T) {
	bin := os.Getenv("ACQUIT_BIN_DIR")
	if bin == "" {
		t.Skip("needs ACQUIT_BIN_DIR with acquit and both plugins (make build)")
	}
	f := startIdle(t, bin)
	total := f.daemonKB + f.pluginKB // kB: a truncation to whole MB would let 0.9 MB more through
	t.Logf("idle: daemon %d kB (anon %d), plugins %d kB (anon %d), ready in %s",
		f.daemonKB, f.daemonAnonKB, f.pluginKB, f.pluginAnonKB, f.ready.Round(time.Millisecond))
	if total > idleRSSBoundMB*1024 {
		t.Fatalf("daemon + 2 plugins resident %.1f MB after 2 idle seconds, bound %d MB (daemon %d kB, plugins %d kB)",
			float64(total)/1024, idleRSSBoundMB, f.daemonKB, f.pluginKB)
	}
}

// rssKB reads VmRSS and RssAnon (kB) of a process.
func rssKB(tb testing.TB, pid int) (rss, anon int) {
	tb.Helper()
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, l := range strings.Split(string(st), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			rss, _ = strconv.Atoi(f[1])
		case "RssAnon:":
			anon, _ = strconv.Atoi(f[1])
		}
	}
	if rss == 0 {
		tb.Fatalf("no VmRSS for %d", pid)
	}
	return rss, anon
}
