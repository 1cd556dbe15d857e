// Package e2e runs acquit as users do: the real acquit binary, real plugin
// processes, the bank simulators on loopback, and kill -9 in the middle.
package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acquit/acquit/daemon/config"
	"github.com/acquit/acquit/daemon/server"
	"github.com/acquit/acquit/internal/demo"
)

var (
	buildOnce sync.Once
	builtDir  string
	buildErr  error
)

// binDir returns the folder with acquit, the plugins and the simulators:
// $ACQUIT_BIN_DIR (make test builds them there) or, for a plain go test, a
// fresh make build into a temp folder.
func binDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("ACQUIT_BIN_DIR"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "acquit")); err == nil {
			return d
		}
	}
	buildOnce.Do(func() {
		builtDir, buildErr = os.MkdirTemp("", "acquit-e2e-bin-")
		if buildErr != nil {
			return
		}
		_, file, _, _ := runtime.Caller(0)
		// make build, into that folder: the same binaries, with the same
		// flags, as make test gives the tests in bin/ (the simulators too,
		// which the README test runs).
		cmd := exec.Command("make", "-s", "build", "BIN="+builtDir)
		cmd.Dir = filepath.Dir(filepath.Dir(file))
		if b, err := cmd.CombinedOutput(); err != nil {
			buildErr = &buildError{pkg: "make build", out: err.Error() + "\n" + string(b)}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtDir
}

// TestMain removes the binaries binDir built for this run (about 200 MB).
func TestMain(m *testing.M) {
	code := m.Run()
	if builtDir != "" {
		_ = os.RemoveAll(builtDir)
	}
	os.Exit(code)
}

type buildError struct{ pkg, out string }

func (e *buildError) Error() string { return e.pkg + ": " + e.out }

// delivery is one hook call as the recorder saw it.
type delivery struct {
	ID      string         `json:"id"`
	Type    string         `json:"type"`
	Subject string         `json:"subject"`
	Attempt int            `json:"attempt"`
	Data    map[string]any `json:"data"`
}

// recorder is the loopback HTTP endpoint test hooks report to.
type recorder struct {
	mu    sync.Mutex
	got   []delivery
	delay time.Duration
	srv   *httptest.Server
}

func newRecorder(t *testing.T, delay time.Duration) *recorder {
	r := &recorder{delay: delay}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
		var d delivery
		if err := json.Unmarshal(b, &d); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		if r.delay > 0 {
			time.Sleep(r.delay)
		}
		r.mu.Lock()
		r.got = append(r.got, d)
		r.mu.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) all() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

func (r *recorder) distinct() int {
	seen := map[string]bool{}
	for _, d := range r.all() {
		seen[d.ID] = true
	}
	return len(seen)
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", d, what)
}

func newHarness(t *testing.T) *demo.Harness {
	t.Helper()
	h, err := demo.NewHarness(filepath.Join(t.TempDir(), "state"), binDir(t), "testdata/scripts")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if h.Pid() != 0 {
			_ = h.Kill9(true)
		}
		removeSocketLitter(t, h)
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(h.Dir, "acquit.log")); err == nil {
				if len(b) > 8000 {
					b = b[len(b)-8000:]
				}
				t.Logf("acquit.log (tail):\n%s", b)
			}
		}
	})
	return h
}

// harnessSocketDir is the folder h's daemon has its plugins' sockets in,
// computed as the daemon does (server.PluginSocketDir) for the state
// paths of the harness's configuration.
func harnessSocketDir(h *demo.Harness) string {
	cfg := &config.Config{}
	cfg.State.Driver = "sqlite"
	if h.Template().PostgresDSNFile != "" {
		cfg.State.Driver = "postgres"
	}
	cfg.State.Path, cfg.State.Spool = filepath.Join(h.Dir, "acquit.db"), filepath.Join(h.Dir, "spool")
	return server.PluginSocketDir(cfg)
}

// removeSocketLitter removes the socket folder h's daemons used when it
// is the fallback in the system temporary directory (a state folder too
// deep for unix socket paths), once they are all stopped or killed, if
// all it holds is plugin-dir* folders that are empty or hold only unix
// sockets nobody accepts on. A daemon killed with SIGKILL cannot remove
// its plugins' folders (nor, if its plugin was killed too, their
// sockets), and a daemon started after it keeps an empty one for a grace
// period (it may belong to another daemon's plugin still starting), so at
// its clean stop the folder is not empty and stays. Anything else there
// (a file, a live socket) keeps the folder, and is logged. A socket folder
// inside the state folder goes with t.TempDir.
func removeSocketLitter(t testing.TB, h *demo.Harness) {
	t.Helper()
	if os.Getenv("RUNTIME_DIRECTORY") != "" {
		return // shared with whatever else runs there: not the harness's
	}
	dir := harnessSocketDir(h)
	if rel, err := filepath.Rel(h.Dir, dir); err == nil && !strings.HasPrefix(rel, "..") {
		return
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return // none (the daemon removed it, or never started)
	}
	var sockets, folders []string
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		sub, err := os.ReadDir(p)
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "plugin-dir") || err != nil {
			t.Logf("plugin socket folder %s kept: it holds %s (%v)", dir, e.Name(), err)
			return
		}
		for _, se := range sub {
			sp := filepath.Join(p, se.Name())
			if se.Type()&os.ModeSocket == 0 {
				t.Logf("plugin socket folder %s kept: %s is not a socket", dir, sp)
				return
			}
			if c, err := net.DialTimeout("unix", sp, 200*time.Millisecond); err == nil {
				c.Close()
				t.Logf("plugin socket folder %s kept: %s is live", dir, sp)
				return
			}
			sockets = append(sockets, sp)
		}
		folders = append(folders, p)
	}
	for _, p := range append(sockets, append(folders, dir)...) {
		if err := os.Remove(p); err != nil {
			t.Logf("plugin socket folder %s: %v", dir, err)
			return
		}
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return c
}
