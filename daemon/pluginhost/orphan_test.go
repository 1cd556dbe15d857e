package pluginhost

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// helperEnv makes the test binary act as a small daemon: it starts the
// test plugin, prints the plugin's pid and waits to be killed.
const helperEnv = "ACQUIT_PLUGINHOST_HELPER_PLUGIN"

// socketDirEnv is the helper daemon's Options.SocketDir.
const socketDirEnv = "ACQUIT_PLUGINHOST_HELPER_SOCKETS"

func runHelperDaemon() {
	m, err := New(Options{State: newMemState(), Logger: zerolog.Nop(), HealthInterval: time.Hour, SocketDir: os.Getenv(socketDirEnv)})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	if err := m.Start(context.Background(), Spec{Name: "orphan", Path: os.Getenv(helperEnv), Kind: "payment_gateway", Settings: []byte(settings)}); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("pid", m.Status()[0].PID)
	select {}
}

// startHelperDaemon runs the test binary as a small daemon with the test
// plugin (runHelperDaemon) and returns it with the plugin's pid; it is
// killed at the end of the test.
func startHelperDaemon(t *testing.T, env ...string) (*exec.Cmd, int) {
	t.Helper()
	helper := exec.Command(os.Args[0], "-test.run=^$")
	helper.Env = append(append(os.Environ(), helperEnv+"="+pluginPath), env...)
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = helper.Process.Kill(); _ = helper.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	f := strings.Fields(line)
	if err != nil || len(f) != 2 || f[0] != "pid" {
		t.Fatalf("helper said %q (%v)", line, err)
	}
	pid, err := strconv.Atoi(f[1])
	if err != nil {
		t.Fatalf("helper said %q", line)
	}
	return helper, pid
}

// TestDaemonKilledLeavesNoOrphan: when the daemon dies by SIGKILL (no
// chance to Stop), its plugin processes die too.
func TestDaemonKilledLeavesNoOrphan(t *testing.T) {
	helper, pid := startHelperDaemon(t)
	if procState(pid) == "" {
		t.Fatalf("plugin pid %d not running", pid)
	}
	// Should the test fail, do not leave the plugin behind.
	defer func() {
		if st := procState(pid); st != "" && st != "Z" {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}()
	if err := helper.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = helper.Wait()
	// The orphaned plugin gets SIGKILL from the kernel; once dead it is
	// reaped by init (or left as a zombie of a subreaper, which is fine:
	// it no longer runs).
	waitFor(t, "orphaned plugin to die", func() bool {
		st := procState(pid)
		return st == "" || st == "Z"
	})
}

// TestPluginSocketsInSocketDirCleanedAtStart: the go-plugin sockets (the
// plugin's, and the daemon's broker socket serving the plugin's Host
// callbacks) live under Options.SocketDir (the daemon's runtime
// directory), never in the system temporary directory; a daemon and its
// plugin killed with SIGKILL leave them behind, and the next start removes
// them while keeping the live sockets of its own plugin.
func TestPluginSocketsInSocketDirCleanedAtStart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	tmp := filepath.Join(t.TempDir(), "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	helper, pid := startHelperDaemon(t, socketDirEnv+"="+dir, "TMPDIR="+tmp)
	stale := socketsUnder(t, dir)
	if len(stale) != 2 {
		t.Fatalf("sockets under %s while the plugin runs: %v, want the plugin's and the Host's", dir, stale)
	}
	_ = helper.Process.Signal(syscall.SIGKILL)
	_ = helper.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for procState(pid) != "" && procState(pid) != "Z" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := entriesUnder(t, tmp); len(got) != 0 {
		t.Fatalf("the killed daemon left in TMPDIR: %v", got)
	}
	if got := socketsUnder(t, dir); !slices.Equal(got, stale) {
		t.Fatalf("after kill -9 the socket directory holds %v, want the stale %v", got, stale)
	}

	// The dead plugin's threads may still hold the socket for a moment.
	waitFor(t, "the killed plugin's sockets to refuse connections", func() bool {
		for _, s := range stale {
			if c, err := net.Dial("unix", filepath.Join(dir, s)); err == nil {
				c.Close()
				return false
			}
		}
		return true
	})
	m, err := New(Options{State: newMemState(), Logger: zerolog.Nop(), HealthInterval: time.Hour, SocketDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if got := entriesUnder(t, dir); len(got) != 0 {
		t.Fatalf("stale sockets kept at start: %v", got)
	}
	if err := m.Start(context.Background(), Spec{Name: "fresh", Path: pluginPath, Kind: "payment_gateway", Settings: []byte(settings)}); err != nil {
		t.Fatal(err)
	}
	defer m.Stop(context.Background())
	live := socketsUnder(t, dir)
	if len(live) != 2 || slices.Contains(live, stale[0]) || slices.Contains(live, stale[1]) {
		t.Fatalf("live plugin sockets %v (stale were %v)", live, stale)
	}
	// A second manager on the same directory keeps the live sockets.
	if _, err := New(Options{State: newMemState(), Logger: zerolog.Nop(), SocketDir: dir}); err != nil {
		t.Fatal(err)
	}
	if got := socketsUnder(t, dir); !slices.Equal(got, live) {
		t.Fatalf("a live socket was removed: %v, want %v", got, live)
	}
}
