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

// BenchmarkIdleDaemon starts the real daemon with both bank plugins (atos
// and ebics, each configured against its simulator) and reports the time
// until /readyz answers (polled every 100 ms, so a ceiling) and the
// resident memory of the daemon and of its plugin processes after two idle
// seconds. Needs ACQUIT_BIN_DIR (make build):
//
//	ACQUIT_BIN_DIR=$PWD/bin go test ./e2e -run '^$' -bench IdleDaemon -benchtime 1x
func BenchmarkIdleDaemon(b *testing.B) {
	bin := os.Getenv("ACQUIT_BIN_DIR")
	if bin == "" {
		b.Skip("needs ACQUIT_BIN_DIR with acquit and both plugins (make build)")
	}
	var ready time.Duration
	var daemonKB, pluginKB, plugins int
	for i := 0; i < b.N; i++ {
		h, err := demo.NewHarness(filepath.Join(b.TempDir(), "state"), bin, "testdata/scripts")
		if err != nil {
			b.Fatal(err)
		}
		s, err := demo.SetupEbics(h, "de", 1<<20)
		if err != nil {
			b.Fatal(err)
		}
		if err := h.WriteSecret("sips-key-1", payKey); err != nil {
			b.Fatal(err)
		}
		h.Template().Atos = &demo.AtosData{PaypageURL: "http://127.0.0.1:9/", OfficeURL: "http://127.0.0.1:9/", MerchantID: payMerchantID, KeyFile: h.SecretPath("sips-key-1")}
		if err := h.WriteConfig(); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if err := h.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		ready += time.Since(t0)
		time.Sleep(2 * time.Second)
		daemonKB = rssKB(b, h.Pid())
		pluginKB, plugins = 0, 0
		for _, c := range h.PluginPids() {
			pluginKB += rssKB(b, c)
			plugins++
		}
		if err := h.Stop(); err != nil {
			b.Fatal(err)
		}
		_ = s.Close()
	}
	if plugins != 2 {
		b.Fatalf("%d plugin processes, want 2", plugins)
	}
	b.ReportMetric(ready.Seconds()/float64(b.N), "ready-s")
	b.ReportMetric(float64(daemonKB)/1024, "daemon-rss-MB")
	b.ReportMetric(float64(pluginKB)/1024, "plugins-rss-MB")
	b.ReportMetric(float64(daemonKB+pluginKB)/1024, "total-rss-MB")
}

// rssKB reads VmRSS (kB) of a process.
func rssKB(b *testing.B, pid int) int {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(st), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			kb, _ := strconv.Atoi(strings.Fields(l)[1])
			return kb
		}
	}
	b.Fatalf("no VmRSS for %d", pid)
	return 0
}
