package server

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acquit/acquit/daemon/config"
)

// TestPluginSocketDirFitsSunPath: a state folder deep enough to push
// go-plugin's socket path past the 107 bytes of sun_path made every plugin
// fail its handshake ("bind: invalid argument"); the socket folder must
// always leave room for the socket name, and stay the same across restarts.
func TestPluginSocketDirFitsSunPath(t *testing.T) {
	t.Setenv("RUNTIME_DIRECTORY", "")
	deep := filepath.Join(t.TempDir(), strings.Repeat("TestEbicsKill9DuringUploaddelast-segment-stored", 2), "state")
	// A folder that fitted go-plugin's socket name alone but not its
	// per-process folder too.
	base := t.TempDir()
	medium := filepath.Join(base, strings.Repeat("m", 85-len(base)-len("/plugin-sockets")-1))
	for _, state := range []string{filepath.Join(t.TempDir(), "acquit.db"), filepath.Join(medium, "acquit.db"), filepath.Join(deep, "acquit.db")} {
		cfg := &config.Config{}
		cfg.State.Driver, cfg.State.Path = "sqlite", state
		dir := PluginSocketDir(cfg)
		if dir != PluginSocketDir(cfg) {
			t.Fatal("socket folder not stable across calls")
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		// go-plugin's per-process folder and socket, at their longest.
		sub := filepath.Join(dir, "plugin-dir4294967295")
		if err := os.Mkdir(sub, 0o700); err != nil {
			t.Fatal(err)
		}
		sock := filepath.Join(sub, "plugin4294967295")
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatalf("state %d bytes deep: socket folder %s: %v", len(state), dir, err)
		}
		l.Close()
	}
}
