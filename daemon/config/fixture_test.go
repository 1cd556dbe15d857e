package config

import (
	"os"
	"path/filepath"
	"testing"
)

// pluginContent is the fake plugin executable; its sha256 is pinned in
// testdata/good.yaml.
const pluginContent = "#!/bin/sh\necho acquit test plugin\n"

const (
	testAdminToken = "0123456789abcdef0123456789abcdef"
	testSipsKey    = "002001000000002_KEY1"
	testDSN        = "postgres://acquit:s3cr3t-pw@127.0.0.1:5432/acquit"
	testShopSecret = "shop-secret-value-42"
	testAPIKey     = "api-key-from-env-77"
)

// fixture builds a working directory with plugin executables, scripts,
// secret files and a credentials directory, and the Options that load
// configs against it.
func fixture(t testing.TB) (string, Options) {
	t.Helper()
	dir := t.TempDir()
	write := func(rel, content string, mode os.FileMode) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("bin/acquit-plugin-atos", pluginContent, 0o755)
	write("bin/acquit-plugin-ebics", pluginContent, 0o755)
	write("bin/acquit-plugin-test", pluginContent, 0o755)
	write("scripts/shop.lua", "function on_payment(ev) end\nfunction nightly() end\n", 0o644)
	write("scripts/demo.lua", "function on_demo(ev) end\n", 0o644)
	write("scripts/sub/audit.lua", "audit = {record = function(ev) end}\n", 0o644)
	write("secrets/sips-key", testSipsKey+"\n", 0o600)
	write("secrets/empty", "\n", 0o600)
	write("creds/admin-token", testAdminToken+"\r\n", 0o600)
	write("creds/pg-dsn", testDSN, 0o600)
	write("creds/sips-shop", testShopSecret+"\n", 0o600)
	write("creds/sips-secret-key", testSipsKey+"\n", 0o600)
	write("creds/ebics-keys", "ebics-key-passphrase\n", 0o600)
	write("creds/postgres-dsn", testDSN+"\n", 0o600)
	if err := os.MkdirAll(filepath.Join(dir, "run"), 0o755); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"CREDENTIALS_DIRECTORY": filepath.Join(dir, "creds"),
		"PUBLIC_URL":            "https://pay.example.com",
		"SHOP_URL":              "https://shop.example.com",
		"SHOP_API_KEY":          testAPIKey,
		"SHORT_TOKEN":           "short",
		"EMPTY":                 "",
	}
	opts := Options{
		Dir:       dir,
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		Hostname:  func() (string, error) { return "testhost", nil },
	}
	return dir, opts
}
