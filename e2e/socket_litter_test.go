package e2e

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acquit/acquit/internal/demo"
	wlsim "github.com/acquit/acquit/plugins/worldline/sim"
)

// TestKill9LeavesNoSocketFolder: a daemon whose state folder is too deep
// for unix socket paths puts its plugins' sockets in a folder of the
// system temporary directory. Killed with SIGKILL, it cannot remove its
// plugin's per-process folder (which holds the plugin's dead sockets, or
// nothing when the plugin exited by itself before its own SIGKILL); a
// daemon started after it keeps such an empty folder for a grace period,
// so at its clean stop the socket folder is not empty and stays: the kill
// tests left one /tmp/acquit-sockets-* each behind. The harness removes
// it once the test's daemons are gone.
func TestKill9LeavesNoSocketFolder(t *testing.T) {
	start := func(t *testing.T) (*demo.Harness, string) {
		h := newHarness(t)
		dir := harnessSocketDir(h)
		if !strings.HasPrefix(dir, filepath.Clean(os.TempDir())+"/acquit-sockets-") {
			t.Fatalf("socket folder %s: want the fallback in the temporary directory (state folder %d bytes deep)", dir, len(h.Dir))
		}
		s, err := demo.WorldlineSim(h, 1, wlsim.Faults{}, 5*time.Second, &http.Client{Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if err := h.Start(ctx(t)); err != nil {
			t.Fatal(err)
		}
		// The daemon uses the folder the harness computes.
		if ents, err := os.ReadDir(dir); err != nil || len(ents) != 1 || !strings.HasPrefix(ents[0].Name(), "plugin-dir") {
			t.Fatalf("socket folder %s of the running daemon: %v, %v; want its plugin's plugin-dir*", dir, ents, err)
		}
		return h, dir
	}
	var dirs []string
	t.Run("killed with its plugin then restarted and stopped", func(t *testing.T) {
		h, dir := start(t)
		dirs = append(dirs, dir)
		if err := h.Kill9(true); err != nil {
			t.Fatal(err)
		}
		// What the killed daemon leaves when its plugin exited by itself
		// before its SIGKILL (as in TestEbicsFetchScheduleAfterKill9).
		if _, err := os.MkdirTemp(dir, "plugin-dir"); err != nil {
			t.Fatal(err)
		}
		if err := h.Start(ctx(t)); err != nil {
			t.Fatal(err)
		}
		if err := h.Stop(); err != nil {
			t.Fatal(err)
		}
		if ents, err := os.ReadDir(dir); err != nil || len(ents) != 1 {
			t.Fatalf("socket folder %s after the clean stop: %v, %v; want the empty plugin-dir* kept (the case this test is about)", dir, ents, err)
		}
	})
	t.Run("killed by the harness at the end of the test", func(t *testing.T) {
		_, dir := start(t)
		dirs = append(dirs, dir)
	})
	for _, dir := range dirs {
		if _, err := os.Lstat(dir); !os.IsNotExist(err) {
			ents, _ := os.ReadDir(dir)
			os.RemoveAll(dir)
			t.Errorf("socket folder %s left behind (%v, %v)", dir, ents, err)
		}
	}
}

// TestSocketLitterKeepsOthers: the harness's cleanup removes the fallback
// socket folder only when all it holds is plugin-dir* folders, empty or
// with dead sockets: a live socket or any other file keeps it.
func TestSocketLitterKeepsOthers(t *testing.T) {
	h, err := demo.NewHarness(filepath.Join(t.TempDir(), strings.Repeat("d", 64), "state"), "bin", "scripts")
	if err != nil {
		t.Fatal(err)
	}
	dir := harnessSocketDir(h)
	if filepath.Dir(dir) != filepath.Clean(os.TempDir()) {
		t.Fatalf("socket folder %s: want the fallback in the temporary directory", dir)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sub := filepath.Join(dir, "plugin-dir123")
	if err := os.MkdirAll(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(sub, "plugin456"))
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	removeSocketLitter(t, h)
	if _, err := os.Stat(filepath.Join(sub, "plugin456")); err != nil {
		t.Fatalf("a live socket was removed: %v", err)
	}
	l.Close() // now a dead socket, left in place
	other := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(other, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	removeSocketLitter(t, h)
	if _, err := os.Stat(other); err != nil {
		t.Fatalf("a file that is not go-plugin's was removed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(sub, "plugin456")); err != nil {
		t.Fatalf("the folder holds a file: its dead socket was removed all the same: %v", err)
	}
	os.Remove(other)
	removeSocketLitter(t, h)
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Fatalf("socket folder %s with a dead socket only: kept (%v)", dir, err)
	}
}
