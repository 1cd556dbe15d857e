package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/acquit/acquit/plugins/testplugin"
	"github.com/acquit/acquit/sdk"
)

// entriesUnder lists everything below dir (relative paths, sockets marked
// with " (socket)"), or nothing if dir does not exist.
func entriesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) && p == dir {
				return filepath.SkipDir
			}
			return err
		}
		if p == dir {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if d.Type()&os.ModeSocket != 0 {
			rel += " (socket)"
		}
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// socketsUnder lists the unix sockets below dir (relative paths).
func socketsUnder(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type()&os.ModeSocket != 0 {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

// emptyTMPDIR points TMPDIR (os.TempDir, inherited by the plugins) at a
// fresh empty folder and returns it.
func emptyTMPDIR(t *testing.T) string {
	t.Helper()
	tmp := filepath.Join(t.TempDir(), "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", tmp)
	return tmp
}

// TestNoSocketInSystemTemp: every go-plugin socket, the plugin's and the
// daemon's own broker socket that serves the plugin's Host callbacks,
// lives under Options.SocketDir; nothing is created in the system
// temporary directory while a plugin runs, makes Host calls, is killed
// with SIGKILL and restarted, or after Stop. (The Host broker socket used
// to be created in $TMPDIR by go-plugin's default runner.)
func TestNoSocketInSystemTemp(t *testing.T) {
	ctx := context.Background()
	run := filepath.Join(t.TempDir(), "run")
	tmp := emptyTMPDIR(t)
	e := newEnv(t, func(o *Options) { o.SocketDir = run; o.BackoffMin = 50 * time.Millisecond })
	if err := e.m.Start(ctx, gatewaySpec("atos")); err != nil {
		t.Fatal(err)
	}
	g, _ := e.m.Gateway("atos")
	// InitPayment calls the Host twice (NextSequence, StatePut), as does
	// VerifyNotification (StateGet, StatePut).
	if _, err := g.InitPayment(ctx, sdk.PaymentRequest{Reference: "REF0001", Amount: 1250, Currency: "EUR"}); err != nil {
		t.Fatal(err)
	}
	if res, err := g.VerifyNotification(ctx, notification(t, "accepted.form")); err != nil || res.Outcome != sdk.OutcomeAccepted {
		t.Fatalf("verify: %+v %v", res, err)
	}
	if got := entriesUnder(t, tmp); len(got) != 0 {
		t.Fatalf("created in TMPDIR while the plugin runs: %v", got)
	}
	// The plugin's socket and the daemon's Host broker socket.
	if got := socketsUnder(t, run); len(got) != 2 {
		t.Fatalf("sockets under the socket dir: %v, want the plugin's and the Host's", got)
	}

	pid := e.pid(t, "atos")
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "plugin restarted", func() bool {
		st := e.status("atos")
		return st.State == StateUp && st.PID != pid && st.PID != 0
	})
	if _, err := g.InitPayment(ctx, sdk.PaymentRequest{Reference: "REF0002", Amount: 1, Currency: "EUR"}); err != nil {
		t.Fatalf("Host calls after restart: %v", err)
	}
	if got := entriesUnder(t, tmp); len(got) != 0 {
		t.Fatalf("created in TMPDIR after kill -9 and restart: %v", got)
	}
	// The killed process's sockets went with it; only the new ones remain.
	if got := socketsUnder(t, run); len(got) != 2 {
		t.Fatalf("sockets under the socket dir after restart: %v, want the new plugin's and the Host's", got)
	}
	if err := e.m.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if got := entriesUnder(t, tmp); len(got) != 0 {
		t.Fatalf("created in TMPDIR after Stop: %v", got)
	}
	if got := entriesUnder(t, run); len(got) != 0 {
		t.Fatalf("left in the socket dir after Stop: %v", got)
	}
	if _, err := os.Lstat(run); !os.IsNotExist(err) {
		t.Fatalf("the emptied socket dir outlives Stop: %v", err)
	}
}

// TestFailedStartLeavesNoSocketFolder: a plugin that cannot be executed,
// or exits before its handshake, leaves no per-process socket folder
// behind (go-plugin removes it only after killing a started process), so
// restart attempts with backoff do not pile folders up.
func TestFailedStartLeavesNoSocketFolder(t *testing.T) {
	ctx := context.Background()
	run := filepath.Join(t.TempDir(), "run")
	missing := filepath.Join(t.TempDir(), "no-such-plugin")
	tmp := emptyTMPDIR(t)
	e := newEnv(t, func(o *Options) { o.SocketDir = run })
	bad := gatewaySpec("missing")
	bad.Path = missing
	for _, s := range []Spec{bad, gatewaySpec("quitter", testplugin.EnvExitAtStart+"=1")} {
		if err := e.m.Start(ctx, s); err == nil {
			t.Fatalf("%s started", s.Name)
		}
		if got := entriesUnder(t, run); len(got) != 0 {
			t.Fatalf("after the failed start of %s the socket dir holds %v", s.Name, got)
		}
	}
	if got := entriesUnder(t, tmp); len(got) != 0 {
		t.Fatalf("created in TMPDIR: %v", got)
	}
}

// TestCleanKeepsYoungEmptySocketFolder: at start, an empty per-process
// folder is removed only once it is older than a plugin handshake could
// take (it may be another daemon's plugin starting); other folders and
// files are not touched.
func TestCleanKeepsYoungEmptySocketFolder(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"plugin-dir1", "plugin-dir2", "other"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-emptyDirGrace - time.Minute)
	for _, d := range []string{"plugin-dir1", "other"} {
		if err := os.Chtimes(filepath.Join(dir, d), old, old); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := New(Options{State: newMemState(), SocketDir: dir}); err != nil {
		t.Fatal(err)
	}
	if got := entriesUnder(t, dir); !slices.Equal(got, []string{"other", "plugin-dir2"}) {
		t.Fatalf("socket dir after start: %v, want the young folder and the foreign one kept", got)
	}
}

// TestMaxProcs: Spec.MaxProcs becomes the plugin's GOMAXPROCS; without it
// the plugin does not inherit the daemon's GOMAXPROCS (Go's default).
func TestMaxProcs(t *testing.T) {
	t.Setenv("GOMAXPROCS", "2")
	e := newEnv(t, nil)
	one := gatewaySpec("one")
	one.MaxProcs = 1
	if err := e.m.Start(context.Background(), one, gatewaySpec("dflt")); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"one": "GOMAXPROCS=1", "dflt": ""} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", e.pid(t, name)))
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		for _, kv := range strings.Split(string(b), "\x00") {
			if strings.HasPrefix(kv, "GOMAXPROCS=") {
				got = kv
			}
		}
		if got != want {
			t.Errorf("plugin %s environment has %q, want %q", name, got, want)
		}
	}
	bad := gatewaySpec("bad")
	bad.MaxProcs = -1
	if err := e.m.Start(context.Background(), bad); !errors.Is(err, ErrBadSpec) {
		t.Fatalf("MaxProcs -1: %v", err)
	}
}

// TestSocketDirMustBePrivate: an existing socket directory open to others
// is restricted to 0700 at start, one owned by another user (a predictable
// folder in /tmp created by someone else) or a symbolic link is refused.
func TestSocketDirMustBePrivate(t *testing.T) {
	open := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{State: newMemState(), SocketDir: open}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(open); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("socket dir mode after start: %v %v, want 0700", fi.Mode().Perm(), err)
	}

	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(open, link); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{State: newMemState(), SocketDir: link}); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("symlinked socket dir: %v", err)
	}

	if os.Geteuid() != 0 {
		t.Skip("chown to another user needs root")
	}
	foreign := filepath.Join(t.TempDir(), "foreign")
	if err := os.Mkdir(foreign, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(foreign, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{State: newMemState(), SocketDir: foreign}); err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
		t.Fatalf("socket dir of another user: %v", err)
	}
}

// TestStopKeepsSocketDirInUse: Stop removes the socket dir only when it is
// empty; anything another daemon keeps there (its live plugin folders) stays.
func TestStopKeepsSocketDirInUse(t *testing.T) {
	ctx := context.Background()
	run := filepath.Join(t.TempDir(), "run")
	e := newEnv(t, func(o *Options) { o.SocketDir = run })
	other := filepath.Join(run, pluginSocketDirPrefix+"42")
	if err := os.Mkdir(other, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, "marker"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Start(ctx, gatewaySpec("atos")); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{pluginSocketDirPrefix + "42", filepath.Join(pluginSocketDirPrefix+"42", "marker")}
	if got := entriesUnder(t, run); !slices.Equal(got, want) {
		t.Fatalf("socket dir after Stop: %v, want exactly the other daemon's folder and its file %v", got, want)
	}
}
