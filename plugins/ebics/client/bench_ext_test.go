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
	"sync/atomic"
	"testing"
	"time"

	"github.com/acquit/acquit/daemon/painfile"
	"github.com/acquit/acquit/plugins/ebics/client"
	"github.com/acquit/acquit/plugins/ebics/internal/memhost"
)

// BenchmarkUpload100MBExternalSim runs the simulator as its own process
// (built from cmd/ebics-sim), so the peak heap reported is the client's
// alone; the simulator's peak RSS is reported as sim-peak-rss-MB.
func BenchmarkUpload100MBExternalSim(b *testing.B) {
	n := 200000
	if testing.Short() {
		n = 20000
	}
	dir := b.TempDir()
	bin := filepath.Join(dir, "ebics-sim")
	if out, err := exec.Command("go", "build", "-o", bin, "../sim/cmd/ebics-sim").CombinedOutput(); err != nil {
		b.Fatalf("build sim: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-subscriber", "PARTNER1/USER1", "-never-ack")
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	vals := map[string]string{}
	sc := bufio.NewScanner(stdout)
	for len(vals) < 6 && sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ": ")
		vals[k] = strings.Trim(v, `"`)
	}
	prof, _ := client.BuiltinProfile("de")
	bank := client.Bank{Name: "ext", URL: vals["url"], HostID: vals["host_id"], PartnerID: "PARTNER1", UserID: "USER1", Profile: prof,
		BankAuthHash: vals["H004 bank_auth_hash"], BankEncHash: vals["H004 bank_enc_hash"]}
	ks := testKeys(b, "PARTNER1", "USER1", false, "A006")
	cl, err := client.New(bank, ks, memhost.New(), client.Options{WorkDir: dir})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := cl.INI(ctx); err != nil {
		b.Fatal(err)
	}
	if err := cl.HIA(ctx); err != nil {
		b.Fatal(err)
	}
	if _, err := cl.HPB(ctx); err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(dir, "big.xml")
	f, _ := os.Create(path)
	painfile.Generate(f, painfile.GenOptions{MsgID: "BENCH-EXT", N: n, Seed: 3, Debtor: "ACME", Date: time.Now()})
	f.Close()
	fi, _ := os.Stat(path)
	b.SetBytes(fi.Size())
	var peak atomic.Uint64
	stop := make(chan struct{})
	go func() {
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				runtime.ReadMemStats(&ms)
				if ms.HeapAlloc > peak.Load() {
					peak.Store(ms.HeapAlloc)
				}
			}
		}
	}()
	runtime.GC()
	cpu0 := cpuSeconds()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := cl.Upload(ctx, client.UploadSpec{ID: fmt.Sprint("E", i), Function: "sct", Path: path}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	close(stop)
	b.ReportMetric((cpuSeconds()-cpu0)/float64(b.N), "client-cpu-s/op")
	b.ReportMetric(float64(peak.Load())/(1<<20), "client-peak-heap-MB")
	b.ReportMetric(float64(fi.Size())/(1<<20), "file-MB")
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)); err == nil {
		for _, l := range strings.Split(string(st), "\n") {
			if strings.HasPrefix(l, "VmHWM:") {
				kb, _ := strconv.Atoi(strings.Fields(l)[1])
				b.ReportMetric(float64(kb)/1024, "sim-peak-rss-MB")
			}
		}
	}
}
