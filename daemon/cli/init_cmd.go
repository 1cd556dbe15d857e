package cli

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/acquit/acquit/configs"
	"github.com/acquit/acquit/daemon/config"
)

// The Sips simulator's test key for merchant 002001000000001 (atos-sim's
// default). A real merchant's keys come from the bank and go in systemd
// credentials (configs/acquit.yaml).
const simulatorSipsKey = "002001000000001_KEY1"

// defaultPortBase is the public listener's port in configs/local.yaml; the
// admin listener is +1, the simulators +10 and +11, the demo shop +12.
const defaultPortBase = 8080

// localPlaceholders are the path expressions of configs/local.yaml that
// `acquit init` replaces with absolute paths.
const (
	phLocal   = "${ACQUIT_LOCAL:-.tmp/local}"
	phBin     = "${ACQUIT_BIN:-bin}"
	phScripts = "${ACQUIT_SCRIPTS:-scripts}"
)

func (r *root) initCmd() *cobra.Command {
	var binDir, scriptsDir string
	var force bool
	var portBase int
	cmd := &cobra.Command{
		Use:   "init [DIR]",
		Short: "Write a local configuration with fresh secrets into DIR (default .tmp/local)",
		Long: "Writes DIR/acquit.yaml (configs/local.yaml: the daemon on loopback, the Sips and EBICS simulators as banks,\n" +
			"the example scripts) and its secrets: a random admin token, a random EBICS key passphrase and the Sips\n" +
			"simulator's test key. Existing secret files are kept. Then: export ACQUIT_CONFIG=DIR/acquit.yaml.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := ".tmp/local"
			if len(args) == 1 {
				dir = args[0]
			}
			absDir, err := filepath.Abs(dir)
			if err != nil {
				return err
			}
			if binDir == "" {
				exe, err := os.Executable()
				if err != nil {
					return err
				}
				binDir = filepath.Dir(exe)
			}
			if binDir, err = filepath.Abs(binDir); err != nil {
				return err
			}
			if scriptsDir, err = filepath.Abs(scriptsDir); err != nil {
				return err
			}
			for _, p := range []string{absDir, binDir, scriptsDir} {
				if strings.ContainsAny(p, "#:\"'\n\r\t${}") {
					return fmt.Errorf("init: %q: choose a path without # : quotes $ { } or control characters", p)
				}
			}
			if fi, err := os.Stat(scriptsDir); err != nil || !fi.IsDir() {
				return fmt.Errorf("init: scripts folder %s not found (run from the repository root or give --scripts)", scriptsDir)
			}
			if err := os.MkdirAll(absDir, 0o700); err != nil {
				return fmt.Errorf("init: %w", err)
			}
			out := cmd.OutOrStdout()
			secrets := []struct{ name, value string }{
				{"admin-token", randomHex(32)},
				{"ebics-passphrase", randomHex(24)},
				{"sips-key", simulatorSipsKey},
			}
			for _, s := range secrets {
				p := filepath.Join(absDir, s.name)
				wrote, err := writeNew(p, []byte(s.value+"\n"), 0o600)
				if err != nil {
					return fmt.Errorf("init: %w", err)
				}
				if wrote {
					fmt.Fprintf(out, "wrote %s\n", p)
				} else {
					fmt.Fprintf(out, "kept  %s (already there)\n", p)
				}
			}
			cfg := bytes.ReplaceAll(configs.Local, []byte(phLocal), []byte(absDir))
			cfg = bytes.ReplaceAll(cfg, []byte(phBin), []byte(binDir))
			cfg = bytes.ReplaceAll(cfg, []byte(phScripts), []byte(scriptsDir))
			if portBase != 0 && portBase != defaultPortBase {
				if portBase < 1024 || portBase > 65535-12 {
					return fmt.Errorf("init: --port-base %d: want 1024..65523", portBase)
				}
				for off := range 13 {
					from := fmt.Sprintf("127.0.0.1:%d", defaultPortBase+off)
					cfg = bytes.ReplaceAll(cfg, []byte(from), []byte(fmt.Sprintf("127.0.0.1:%d", portBase+off)))
				}
			}
			cfgPath := filepath.Join(absDir, "acquit.yaml")
			if force {
				err = os.WriteFile(cfgPath, cfg, 0o600)
			} else {
				var wrote bool
				wrote, err = writeNew(cfgPath, cfg, 0o600)
				if err == nil && !wrote {
					return fmt.Errorf("init: %s exists (--force rewrites it; secrets are kept)", cfgPath)
				}
			}
			if err != nil {
				return fmt.Errorf("init: %w", err)
			}
			fmt.Fprintf(out, "wrote %s\n", cfgPath)
			if _, err := config.Load(cfgPath); err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "note: %s does not load yet: %v\n", cfgPath, err)
			}
			fmt.Fprintf(out, "\nnext:\n  export ACQUIT_CONFIG=%s\n  %s/atos-sim -listen 127.0.0.1:%d &\n  %s/ebics-sim -addr 127.0.0.1:%d &\n  %s/acquit serve &\n",
				cfgPath, binDir, portBase+10, binDir, portBase+11, binDir)
			return nil
		},
	}
	cmd.Flags().StringVar(&binDir, "bin", "", "folder of the plugin executables (default: this executable's)")
	cmd.Flags().StringVar(&scriptsDir, "scripts", "scripts", "Lua scripts folder")
	cmd.Flags().IntVar(&portBase, "port-base", defaultPortBase, "loopback ports: public listener BASE, admin BASE+1, Sips simulator BASE+10, EBICS simulator BASE+11, shop BASE+12")
	cmd.Flags().BoolVar(&force, "force", false, "rewrite DIR/acquit.yaml if it exists (secret files are never overwritten)")
	return cmd
}

// writeNew creates p with data unless it exists; it reports whether it
// wrote.
func writeNew(p string, data []byte, mode os.FileMode) (bool, error) {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return false, err
	}
	return true, f.Close()
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b)
}
