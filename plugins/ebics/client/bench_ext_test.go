package client_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/acquit/acquit/internal/procstat"
	"github.com/acquit/acquit/plugins/ebics/client"
	"github.com/acquit/acquit/sdk/plugintest"
)

// startExternalSim builds and starts cmd/ebics-sim, reads the URL and the
// bank key hashes it prints, and returns an onboarded client.
func startExternalSim(tb testing.TB, dir string, args ...string) (*client.Client, *exec.Cmd) {
	tb.Helper()
	bin := filepath.Join(dir, "ebics-sim")
	if out, err := exec.Command("go", "build", "-o", bin, "../sim/cmd/ebics-sim").CombinedOutput(); err != nil {
		tb.Fatalf("build sim: %v\n%s", err, out)
	}
	args = append([]string{"-subscriber", "PARTNER1/USER1"}, args...)
	if extra := os.Getenv("EBICS_SIM_ARGS"); extra != "" {
		// e.g. EBICS_SIM_ARGS="-cpuprofile /tmp/sim.pprof" or "-xsd off"
		args = append(args, strings.Fields(extra)...)
	}
	cmd := exec.Command(bin, args...)
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		// Interrupt first, so that the simulator writes its -cpuprofile.
		cmd.Process.Signal(os.Interrupt)
		t := time.AfterFunc(5*time.Second, func() { cmd.Process.Kill() })
		cmd.Wait()
		t.Stop()
	})
	vals := map[string]string{}
	sc := bufio.NewScanner(stdout)
	for len(vals) < 6 && sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ": ")
		vals[k] = strings.Trim(v, `"`)
	}
	prof, _ := client.BuiltinProfile("de")
	bank := client.Bank{Name: "ext", URL: vals["url"], HostID: vals["host_id"], PartnerID: "PARTNER1", UserID: "USER1", Profile: prof,
		BankAuthHash: vals["H004 bank_auth_hash"], BankEncHash: vals["H004 bank_enc_hash"]}
	ks := testKeys(tb, "PARTNER1", "USER1", false, "A006")
	// EBICS_DEFLATE_WORKERS=1 measures the single zlib stream (default:
	// the client's default, GOMAXPROCS).
	workers, _ := strconv.Atoi(os.Getenv("EBICS_DEFLATE_WORKERS"))
	cl, err := client.New(bank, ks, plugintest.NewMemHost(), client.Options{WorkDir: dir, DeflateWorkers: workers})
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	if err := cl.INI(ctx); err != nil {
		tb.Fatal(err)
	}
	if err := cl.HIA(ctx); err != nil {
		tb.Fatal(err)
	}
	if _, err := cl.HPB(ctx); err != nil {
		tb.Fatal(err)
	}
	return cl, cmd
}

// TestSimCommand runs the ebics-sim executable as a separate process (as
// a treasurer or an integration test would), onboards and uploads through
// it, and reads the bank's record from its admin endpoint.
func TestSimCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs ebics-sim")
	}
	dir := t.TempDir()
	cl, _ := startExternalSim(t, dir, "-reject-file")
	ctx := context.Background()
	path := writePain(t, dir, "MSG-EXT", 50)
	res, err := cl.Upload(ctx, client.UploadSpec{ID: "EXT-1", Function: "sct", Path: path})
	if err != nil {
		t.Fatal(err)
	}
	var h *client.Downloaded
	for i := 0; i < 1000 && h == nil; i++ { // the bank validates asynchronously (up to 10 s)
		if h, err = cl.Download(ctx, "hac", time.Time{}, time.Time{}); err != nil {
			t.Fatal(err)
		}
		if h == nil {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if h == nil || !strings.Contains(string(h.Content), "ORDER_HAC_FINAL_NEG") || !strings.Contains(string(h.Content), res.OrderID) {
		t.Fatalf("HAC: %v", h)
	}
	if err := cl.Receipt(ctx, h.TransactionID, true); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkUpload100MBExternalSim runs the simulator as its own process
// (built from cmd/ebics-sim), so the peak heap reported is the client's
// alone; the simulator's peak RSS is reported as sim-peak-rss-MB.
func BenchmarkUpload100MBExternalSim(b *testing.B) {
	n := 200000
	if testing.Short() {
		n = 20000
	}
	dir := b.TempDir()
	cl, cmd := startExternalSim(b, dir, "-never-ack")
	ctx := context.Background()
	path, size := writeBenchFile(b, dir, "BENCH-EXT", n)
	peak, stop := watchPeakHeap()
	runtime.GC()
	sim0, err0 := procstat.CPUWithLiveChildren(cmd.Process.Pid)
	cpu0 := cpuSeconds()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := cl.Upload(ctx, client.UploadSpec{ID: fmt.Sprint("E", i), Function: "sct", Path: path}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	stop()
	cpu := (cpuSeconds() - cpu0) / float64(b.N)
	b.ReportMetric(cpu, "client-cpu-s/op")
	// MB (10^6 bytes, as go test's MB/s) per client CPU-second: compared
	// with BenchmarkDeflateAES's MB/cpu-s, it is the ratio a loaded machine
	// disturbs least.
	b.ReportMetric(float64(size)/1e6/cpu, "MB/client-cpu-s")
	b.ReportMetric(float64(peak.Load())/(1<<20), "client-peak-heap-MB")
	b.ReportMetric(float64(size)/(1<<20), "file-MB")
	// The simulator's CPU with its xmllint children, those it waited for
	// and those still running (its xmllint session): most of the wall
	// clock the client spends waiting.
	if s, err := procstat.CPUWithLiveChildren(cmd.Process.Pid); err == nil && err0 == nil {
		b.ReportMetric((s-sim0)/float64(b.N), "sim-cpu-s/op")
	}
	if hwm, err := procstat.PeakRSS(cmd.Process.Pid); err == nil {
		b.ReportMetric(float64(hwm)/(1<<20), "sim-peak-rss-MB")
	}
	// The test process's high-water mark: the client plus the benchmark's
	// own setup (the file is generated streaming), so a ceiling.
	if hwm, err := procstat.PeakRSS(os.Getpid()); err == nil {
		b.ReportMetric(float64(hwm)/(1<<20), "client-peak-rss-MB")
	}
}
