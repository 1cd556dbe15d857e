package procstat

import (
	"os"
	"os/exec"
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

// TestLiveChildren: the CPU of a child still running counts in
// CPUWithLiveChildren, not in CPUWithChildren. The child spins until
// killed, so it passes 0.1 CPU-second on any machine; the readings are
// taken in an order that makes the comparison exact (each figure only
// grows): own and child first, then the total that must cover both.
func TestLiveChildren(t *testing.T) {
	cmd := exec.Command("sh", "-c", `while :; do :; done`)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	pid := os.Getpid()
	own0, err := CPUWithChildren(pid)
	if err != nil {
		t.Fatal(err)
	}
	child0, _ := CPU(cmd.Process.Pid)
	deadline := time.Now().Add(60 * time.Second) // a hang guard
	for {
		own, _ := CPUWithChildren(pid)
		child, _ := CPU(cmd.Process.Pid)
		live, err := CPUWithLiveChildren(pid)
		if err != nil {
			t.Fatal(err)
		}
		if live < own+child {
			t.Fatalf("with live children %.2f s, less than own and waited-for %.2f s plus the child's %.2f s", live, own, child)
		}
		if child-child0 >= 0.2 {
			// This process mostly slept meanwhile: its figure did not take
			// in the child's.
			if grew := own - own0; grew >= (child-child0)/2 {
				t.Fatalf("CPUWithChildren grew %.2f s while the live child used %.2f s: it counts the child", grew, child-child0)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the child used %.2f s in a minute", child-child0)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
