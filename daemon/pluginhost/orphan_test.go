package pluginhost

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
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

func runHelperDaemon() {
	m, err := New(Options{State: newMemState(), Logger: zerolog.Nop(), HealthInterval: time.Hour})
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

// TestDaemonKilledLeavesNoOrphan: when the daemon dies by SIGKILL (no
// chance to Stop), its plugin processes die too.
func TestDaemonKilledLeavesNoOrphan(t *testing.T) {
	helper := exec.Command(os.Args[0], "-test.run=^$")
	helper.Env = append(os.Environ(), helperEnv+"="+pluginPath)
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = helper.Process.Kill(); _ = helper.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	f := strings.Fields(line)
	if len(f) != 2 || f[0] != "pid" {
		t.Fatalf("helper said %q", line)
	}
	pid, err := strconv.Atoi(f[1])
	if err != nil || procState(pid) == "" {
		t.Fatalf("plugin pid %q not running", f[1])
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
