package client_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/acquit/acquit/internal/painfile"
	"github.com/acquit/acquit/plugins/ebics/client"
	"github.com/acquit/acquit/plugins/ebics/protocol"
	"github.com/acquit/acquit/plugins/ebics/sim"
)

func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

// BenchmarkUpload100MB uploads a ~100 MB pain.001 to the simulator on
// loopback (H004, 512 KiB segments). Reported: MB/s of the file, CPU
// seconds per upload and the peak Go heap of the process (client AND the
// in-process simulator, which holds the decrypted file).
func BenchmarkUpload100MB(b *testing.B) {
	n := 200000
	if testing.Short() {
		n = 20000
	}
	e := newEnv(b, protocol.H004, "", sim.Config{MaxSegmentSize: 1 << 20}, true)
	e.bank.Profile.SegmentSize = client.DefaultSegmentSize
	e.cl = e.newClient(b)
	path, size := writeBenchFile(b, b.TempDir(), "BENCH", n)
	peak, stop := watchPeakHeap()
	runtime.GC()
	cpu0 := cpuSeconds()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := e.cl.Upload(context.Background(), client.UploadSpec{ID: fmt.Sprint("B", i), Function: "sct", Path: path})
		if err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			b.ReportMetric(float64(res.Segments), "segments")
		}
	}
	b.StopTimer()
	stop()
	b.ReportMetric((cpuSeconds()-cpu0)/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MB")
	b.ReportMetric(float64(size)/(1<<20), "file-MB")
}

// writeBenchFile writes a generated pain.001 of n transfers and sets the
// benchmark's bytes per op to its size.
func writeBenchFile(b *testing.B, dir, msgID string, n int) (string, int64) {
	path := filepath.Join(dir, "big.xml")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := painfile.Generate(f, painfile.GenOptions{MsgID: msgID, N: n, Seed: 3, Debtor: "ACME", Date: time.Now()}); err != nil {
		b.Fatal(err)
	}
	f.Close()
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(fi.Size())
	return path, fi.Size()
}

// watchPeakHeap samples HeapAlloc every 20 ms until stop is called.
func watchPeakHeap() (peak *atomic.Uint64, stop func()) {
	peak = new(atomic.Uint64)
	done := make(chan struct{})
	go func() {
		var ms runtime.MemStats
		for {
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
				runtime.ReadMemStats(&ms)
				if ms.HeapAlloc > peak.Load() {
					peak.Store(ms.HeapAlloc)
				}
			}
		}
	}()
	return peak, func() { close(done) }
}
