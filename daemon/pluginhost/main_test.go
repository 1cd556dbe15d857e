package pluginhost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acquit/acquit/daemon/store"
)

// pluginPath is the test plugin, built once per test binary.
var pluginPath string

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		runHelperDaemon()
		return
	}
	if os.Getenv(floorServerEnv) != "" {
		runFloorServer()
		return
	}
	dir, err := os.MkdirTemp("", "acquit-pluginhost-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	pluginPath = filepath.Join(dir, "acquit-plugin-test")
	cmd := exec.Command("go", "build", "-o", pluginPath, "github.com/acquit/acquit/plugins/testplugin/cmd/acquit-plugin-test")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build test plugin:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func pluginSum(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(pluginPath)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// memState is an in-memory store.PluginState with the store's semantics.
type memState struct {
	mu   sync.Mutex
	vals map[[2]string][]byte
	vers map[[2]string]int64
	seqs map[[2]string]int64
}

var _ store.PluginState = (*memState)(nil)

func newMemState() *memState {
	return &memState{vals: map[[2]string][]byte{}, vers: map[[2]string]int64{}, seqs: map[[2]string]int64{}}
}

func (s *memState) StateGet(_ context.Context, plugin, key string) ([]byte, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := [2]string{plugin, key}
	if s.vers[k] == 0 {
		return nil, 0, store.ErrNotFound
	}
	return append([]byte(nil), s.vals[k]...), s.vers[k], nil
}

func (s *memState) StatePut(_ context.Context, plugin, key string, value []byte, version int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := [2]string{plugin, key}
	if s.vers[k] != version {
		return 0, store.ErrConflict
	}
	s.vers[k]++
	s.vals[k] = append([]byte(nil), value...)
	return s.vers[k], nil
}

func (s *memState) NextSequence(_ context.Context, plugin, name string) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := [2]string{plugin, name}
	s.seqs[k]++
	return s.seqs[k], nil
}

func (s *memState) keys(plugin string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.vals {
		if k[0] == plugin {
			out = append(out, k[1])
		}
	}
	return out
}

// procState returns the state letter of pid ("R", "S", "Z"...), or "" when
// the process no longer exists (it was reaped).
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+3 > len(s) {
		return "?"
	}
	return s[i+2 : i+3]
}

// children returns the pids of this process's live or zombie children.
func children(t testing.TB) map[int]bool {
	t.Helper()
	out := map[int]bool{}
	tasks, err := filepath.Glob("/proc/self/task/*/children")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // thread ended
		}
		for _, p := range strings.Fields(string(b)) {
			pid, _ := strconv.Atoi(p)
			out[pid] = true
		}
	}
	return out
}

// waitFor polls cond until it holds or the (generous) limit passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
