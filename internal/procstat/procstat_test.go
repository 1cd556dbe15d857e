package procstat

import (
	"os"
	"testing"
	"time"
)

// TestSelf: this process has a peak RSS of at least the 64 MB it touches,
// and its CPU seconds rise after spinning for 300 ms of CPU.
func TestSelf(t *testing.T) {
	pid := os.Getpid()
	buf := make([]byte, 64<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	hwm, err := PeakRSS(pid)
	if err != nil {
		t.Fatal(err)
	}
	if hwm < int64(len(buf)) {
		t.Fatalf("peak RSS %d bytes after touching %d", hwm, len(buf))
	}
	c0, err := CPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	w0, _ := CPUWithChildren(pid)
	var ru float64
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for i := 0; i < 1e6; i++ {
			buf[i%len(buf)]++
		}
		if ru, _ = CPU(pid); ru-c0 >= 0.3 {
			break
		}
	}
	if ru-c0 < 0.3 {
		t.Fatalf("CPU went from %.2f s to %.2f s after spinning", c0, ru)
	}
	if w, _ := CPUWithChildren(pid); w < ru || w-w0 < 0.3 {
		t.Fatalf("CPU with children %.2f s (was %.2f s), own %.2f s", w, w0, ru)
	}
}

// TestMissing: a process that does not exist is an error, not a zero.
func TestMissing(t *testing.T) {
	if _, err := PeakRSS(1 << 30); err == nil {
		t.Fatal("no error for a missing process")
	}
	if _, err := CPU(1 << 30); err == nil {
		t.Fatal("no error for a missing process")
	}
}
