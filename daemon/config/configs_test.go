package config

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/acquit/acquit/plugins/ebics"
	"github.com/acquit/acquit/sdk/plugintest"
)

// repoConfigs is the folder of the shipped example configuration.
const repoConfigs = "../../configs"

var (
	credentialRE = regexp.MustCompile(`(?m)^[^#\n]*!credential\s+(\S+)`)
	fileTagRE    = regexp.MustCompile(`(?m)^[^#\n]*!file\s+(\S+)`)
)

// fakeSecrets writes, under the fixture dir, a value for every
// !credential and !file secret that data names.
func fakeSecrets(t *testing.T, dir string, data []byte) {
	t.Helper()
	for _, m := range credentialRE.FindAllStringSubmatch(string(data), -1) {
		writeFile(t, filepath.Join(dir, "creds", m[1]), "secret-value-of-"+m[1]+"-0123456789\n")
	}
	for _, m := range fileTagRE.FindAllStringSubmatch(string(data), -1) {
		p, err := expandEnv(m[1], func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatal(err)
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		writeFile(t, p, "secret-file-"+filepath.Base(p)+"-0123456789\n")
	}
}

// notAcquitConfig are the configs/*.yaml files that are not acquit
// configurations: the Prometheus alert rules and their promtool unit tests
// (checked by configs/monitoring_test.go).
var notAcquitConfig = map[string]bool{"alerts.yaml": true, "alerts_test.yaml": true}

// TestExampleConfigs loads every configs/*.yaml with its secrets present
// (credentials directory and !file paths in a temp dir), and checks that
// every hook names a function defined in the repository's scripts.
func TestExampleConfigs(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(repoConfigs, "*.yaml"))
	if err != nil || len(files) < 2 {
		t.Fatalf("configs: %v %v", files, err)
	}
	for _, f := range files {
		if notAcquitConfig[filepath.Base(f)] {
			continue
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			dir, opts := fixture(t)
			fakeSecrets(t, dir, data)
			// The real scripts, so hooks are checked against them.
			scripts, _ := filepath.Glob("../../scripts/*.lua")
			for _, s := range scripts {
				b, err := os.ReadFile(s)
				if err != nil {
					t.Fatal(err)
				}
				writeFile(t, filepath.Join(dir, "scripts", filepath.Base(s)), string(b))
			}
			// acquit.yaml is for a server: its absolute paths do not exist here.
			opts.SkipPathChecks = bytes.Contains(data, []byte("/usr/local/lib/acquit/"))
			cfg, err := LoadWith(f, opts)
			if err != nil {
				t.Fatalf("%s does not load:\n%v", f, err)
			}
			for _, h := range cfg.Hooks {
				b, err := os.ReadFile(filepath.Join("../../scripts", h.Script))
				if err != nil {
					t.Errorf("hook script %s: %v", h.Script, err)
					continue
				}
				if !bytes.Contains(b, []byte("function "+h.Function+"(")) {
					t.Errorf("hook %v: scripts/%s defines no function %s", h.Events, h.Script, h.Function)
				}
			}
			if len(cfg.Plugins) == 0 || len(cfg.Schedules) == 0 || len(cfg.Hooks) == 0 || len(cfg.Banks) == 0 {
				t.Errorf("example config should show plugins, schedules, hooks and banks: %+v", cfg)
			}
			if !cfg.Listen.Admin.Token.IsSet() {
				t.Error("no admin token")
			}
			if w := cfg.Warnings(); len(w) != 0 {
				t.Errorf("an example config with warnings: %q", w)
			}
			// The EBICS plugin accepts its example settings as they reach it
			// (JSON, secrets resolved): unknown keys (a misspelt
			// deflate_workers) and values out of range are refused there.
			for _, p := range cfg.Plugins {
				if p.Name != "ebics" {
					continue
				}
				if err := ebics.New().Configure(context.Background(), p.Settings.JSON(), plugintest.NewMemHost()); err != nil {
					t.Errorf("plugin ebics refuses the example settings: %v", err)
				}
			}
		})
	}
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestSystemdUnit checks configs/acquit.service has the required
// directives, a LoadCredential for every !credential of acquit.yaml, and
// passes systemd-analyze verify when that tool is installed.
func TestSystemdUnit(t *testing.T) {
	unit, err := os.ReadFile(filepath.Join(repoConfigs, "acquit.service"))
	if err != nil {
		t.Fatal(err)
	}
	directives := map[string][]string{}
	section := ""
	for _, line := range strings.Split(string(unit), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "[") {
			section = strings.Trim(line, "[]")
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf("malformed line %q", line)
			continue
		}
		directives[section+"."+k] = append(directives[section+"."+k], v)
	}
	required := map[string]string{
		"Service.Type":                    "notify",
		"Service.ExecStart":               "/usr/local/bin/acquit serve --config /etc/acquit/acquit.yaml",
		"Service.ExecReload":              "/bin/kill -HUP $MAINPID",
		"Service.StateDirectory":          "acquit",
		"Service.RuntimeDirectory":        "acquit",
		"Service.ProtectSystem":           "strict",
		"Service.ProtectHome":             "yes",
		"Service.PrivateTmp":              "yes",
		"Service.NoNewPrivileges":         "yes",
		"Service.PrivateDevices":          "yes",
		"Service.ProtectKernelTunables":   "yes",
		"Service.ProtectKernelModules":    "yes",
		"Service.ProtectKernelLogs":       "yes",
		"Service.RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
		"Service.Restart":                 "on-failure",
		"Service.KillMode":                "mixed",
		"Install.WantedBy":                "multi-user.target",
	}
	for k, want := range required {
		if got := directives[k]; len(got) != 1 || got[0] != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	for _, k := range []string{"Service.WatchdogSec", "Service.MemoryMax", "Service.TimeoutStopSec"} {
		if len(directives[k]) != 1 || directives[k][0] == "" {
			t.Errorf("%s missing", k)
		}
	}
	if directives["Service.DynamicUser"] == nil && directives["Service.User"] == nil {
		t.Error("neither DynamicUser nor User")
	}
	creds := map[string]bool{}
	for _, v := range directives["Service.LoadCredential"] {
		name, path, ok := strings.Cut(v, ":")
		if !ok || !strings.HasPrefix(path, "/etc/acquit/credentials/") {
			t.Errorf("LoadCredential=%s: want name:/etc/acquit/credentials/...", v)
		}
		creds[name] = true
	}
	if !creds["admin-token"] {
		t.Error("no LoadCredential for admin-token")
	}
	yml, err := os.ReadFile(filepath.Join(repoConfigs, "acquit.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range credentialRE.FindAllStringSubmatch(string(yml), -1) {
		if !creds[m[1]] {
			t.Errorf("acquit.yaml uses !credential %s but acquit.service has no LoadCredential for it", m[1])
		}
	}

	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed: verify sub-check skipped")
	}
	// verify wants the executables to exist: point them at true(1).
	truePath, err := exec.LookPath("true")
	if err != nil {
		t.Skip("no true(1) for systemd-analyze verify")
	}
	tmp := filepath.Join(t.TempDir(), "acquit.service")
	writeFile(t, tmp, strings.ReplaceAll(string(unit), "/usr/local/bin/acquit", truePath))
	out, err := exec.Command(tool, "verify", tmp).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
