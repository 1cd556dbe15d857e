// Package procstat reads a process's peak resident set and CPU time from
// Linux /proc, for tests and benchmarks that bound memory or report
// CPU-seconds. It works only where /proc has the Linux layout.
package procstat

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// userHZ is the clock tick of /proc/<pid>/stat times (USER_HZ, 100 on Linux).
const userHZ = 100

// PeakRSS returns the peak resident set size (VmHWM of /proc/<pid>/status)
// of process pid, in bytes.
func PeakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("peak RSS of %d: %w", pid, err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			f := strings.Fields(l)
			if len(f) < 2 {
				break
			}
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("peak RSS of %d: %w", pid, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("peak RSS of %d: no VmHWM in /proc/%d/status", pid, pid)
}

// CPU returns the user + system CPU seconds process pid has used so far
// (utime and stime of /proc/<pid>/stat).
func CPU(pid int) (float64, error) { return cpu(pid, 2) }

// CPUWithChildren is CPU plus the CPU seconds of the children pid has
// waited for (cutime and cstime of /proc/<pid>/stat).
func CPUWithChildren(pid int) (float64, error) { return cpu(pid, 4) }

// CPUWithLiveChildren is CPUWithChildren plus the CPUWithChildren of the
// children of pid that are still running (a helper process that lives as
// long as its parent shows up in neither figure until it is waited for).
func CPUWithLiveChildren(pid int) (float64, error) {
	total, err := CPUWithChildren(pid)
	if err != nil {
		return 0, err
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("children of %d: %w", pid, err)
	}
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil || child == pid {
			continue
		}
		if ppid, err := parent(child); err != nil || ppid != pid {
			continue // gone meanwhile, or not a child
		}
		if c, err := CPUWithChildren(child); err == nil {
			total += c
		}
	}
	return total, nil
}

// parent is the parent process id of pid (field 4 of /proc/<pid>/stat).
func parent(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	return strconv.Atoi(f[1])
}

// cpu sums n clock-tick fields of /proc/<pid>/stat from utime on.
func cpu(pid, n int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("CPU of %d: %w", pid, err)
	}
	// The fields after the command name, which is in parentheses and may
	// itself hold spaces or parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("CPU of %d: malformed /proc/%d/stat", pid, pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 11+n {
		return 0, fmt.Errorf("CPU of %d: /proc/%d/stat has %d fields", pid, pid, len(f))
	}
	var ticks int64
	for _, s := range f[11 : 11+n] { // utime is field 14 of proc(5)
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("CPU of %d: %w", pid, err)
		}
		ticks += v
	}
	return float64(ticks) / userHZ, nil
}
