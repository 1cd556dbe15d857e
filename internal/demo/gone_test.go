package demo

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// leaderExitEnv makes the test binary the helper process of
// TestWaitGoneZombieLeader: its main thread exits alone while another
// thread keeps a unix socket listening.
const leaderExitEnv = "ACQUIT_TEST_LEADER_EXIT_SOCKET"

func init() {
	if os.Getenv(leaderExitEnv) != "" {
		// Keeps the main goroutine, hence TestMain, on the main thread
		// (the thread group leader).
		runtime.LockOSThread()
	}
}

func TestMain(m *testing.M) {
	if path := os.Getenv(leaderExitEnv); path != "" {
		l, err := net.Listen("unix", path)
		if err != nil {
			os.Exit(3)
		}
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		os.Stdout.WriteString("ready\n")
		// exit(2), not exit_group(2): only this thread ends; the leader
		// becomes a zombie while the others run on.
		syscall.RawSyscall(syscall.SYS_EXIT, 0, 0, 0)
	}
	os.Exit(m.Run())
}

// TestWaitGoneZombieLeader: a process whose thread group leader is a
// zombie but whose other threads still hold its descriptors is not gone:
// its socket still accepts (what a SIGKILLed plugin looks like for a
// moment, and what left plugin socket folders behind). Once the whole
// group has exited it is.
func TestWaitGoneZombieLeader(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), leaderExitEnv+"="+sock)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("helper: %q, %v", line, err)
	}
	pid := cmd.Process.Pid
	// Wait for the leader's exit to show.
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
		if err != nil {
			t.Fatal(err)
		}
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && strings.HasPrefix(strings.TrimSpace(string(b[i+1:])), "Z") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("leader of %d never a zombie: %s", pid, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	tasks, _ := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "task"))
	if len(tasks) < 2 {
		t.Fatalf("helper %d has %d threads left; want the leader and others", pid, len(tasks))
	}
	if waitGone(pid, 300*time.Millisecond) {
		t.Fatalf("process %d with a zombie leader and %d threads reported gone", pid, len(tasks))
	}
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatalf("the helper's socket should still accept: %v", err)
	}
	c.Close()

	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if !waitGone(pid, 10*time.Second) {
		t.Fatalf("process %d killed: not gone after 10 s", pid)
	}
	if c, err := net.Dial("unix", sock); err == nil {
		c.Close()
		t.Fatal("process reported gone while its socket still accepts")
	}
	_ = cmd.Wait()
	if !waitGone(pid, 0) {
		t.Fatalf("process %d reaped: not gone", pid)
	}
}
