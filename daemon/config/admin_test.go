package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadAdminNeedsOnlyTheAdminToken: the CLI reads the admin address and
// token from a production config whose other secrets (bank keys, database
// DSN, credentials of systemd) it cannot read.
func TestLoadAdminNeedsOnlyTheAdminToken(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "admin-token")
	os.WriteFile(tokenFile, []byte("0123456789abcdef0123\n"), 0o600)
	env := map[string]string{"ADMIN_PORT": "9181"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cases := []struct {
		name, yaml, addr, token, err string
	}{
		{"file token, other secrets unreadable", `
state: {driver: postgres, dsn: !credential postgres-dsn}
listen:
  admin:
    addr: "127.0.0.1:${ADMIN_PORT}"
    token: !file admin-token
plugins:
  - name: atos
    path: /nonexistent
    settings: {keys: {"1": !credential sips-key-1}}
`, "127.0.0.1:9181", "0123456789abcdef0123", ""},
		{"default address", "listen:\n  admin:\n    token: !env ADMIN_PORT\n", "127.0.0.1:8081", "9181", ""},
		{"no token", "listen:\n  admin:\n    addr: unix:/run/acquit/admin.sock\n", "", "", "listen.admin.token is not set"},
		{"missing token file", "listen:\n  admin:\n    token: !file nope\n", "", "", "no such file"},
		{"credential outside systemd", "listen:\n  admin:\n    token: !credential admin-token\n", "", "", "CREDENTIALS_DIRECTORY"},
		{"not yaml", "listen: [\n", "", "", "yaml"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, "acquit.yaml")
			os.WriteFile(p, []byte(c.yaml), 0o600)
			a, err := LoadAdmin(p, Options{Dir: dir, LookupEnv: lookup})
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.Addr != c.addr || a.Token.Reveal() != c.token {
				t.Fatalf("got %q %q, want %q %q", a.Addr, a.Token.Reveal(), c.addr, c.token)
			}
		})
	}
	// The full loader refuses the first file (its other secrets are
	// unreadable here): LoadAdmin is what makes the CLI usable.
	p := filepath.Join(dir, "acquit.yaml")
	os.WriteFile(p, []byte(cases[0].yaml), 0o600)
	if _, err := LoadWith(p, Options{Dir: dir, LookupEnv: lookup}); err == nil {
		t.Fatal("the full loader accepted a config whose secrets are missing")
	}
}
