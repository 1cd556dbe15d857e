package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// errLines loads file and returns its errors with the fixture dir replaced
// by $DIR.
func errLines(t *testing.T, file string, opts Options, dir string) []string {
	t.Helper()
	cfg, err := LoadWith(file, opts)
	if err == nil {
		t.Fatalf("LoadWith(%s) succeeded: %+v", file, cfg)
	}
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error is %T, want *Errors: %v", err, err)
	}
	var out []string
	for _, e := range errs.List {
		if e.File != file {
			t.Errorf("error file %q, want %q", e.File, file)
		}
		out = append(out, strings.ReplaceAll(e.Error(), dir, "$DIR"))
	}
	if got := strings.ReplaceAll(err.Error(), dir, "$DIR"); got != strings.Join(out, "\n") {
		t.Errorf("Error() = %q, want the lines joined", got)
	}
	return out
}

func TestLoadBad(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"bad_unknown_key.yaml", []string{
			`3: unknown key "adr" in listen.public (known: addr, max_body_bytes, read_header_timeout, read_timeout, write_timeout, idle_timeout, trusted_proxies, base_url)`,
			`6: unknown key "lisen" (known: instance, state, listen, log, scripts, hooks, events, plugins, schedules, payments, banks, transmissions)`,
			`10: unknown key "sha" in plugins[0] (known: name, path, sha256, settings, max_procs)`,
		}},
		{"bad_cron.yaml", []string{
			`6: schedules[0].cron: invalid cron spec "61 * * * *": end of range (61) above maximum (59): 61`,
			`11: schedules[1].cron: cron spec "0 0 30 2 *" never fires`,
			`17: schedules[2].timezone: unknown time zone "Mars/Olympus"`,
			`22: schedules[3].cron: invalid cron spec "CRON_TZ=Europe/Paris": CRON_TZ=<zone> must be followed by a schedule`,
		}},
		{"bad_secret_missing.yaml", []string{
			`3: secret file $DIR/secrets/admin-token-missing: no such file`,
			`6: credential "no-such-credential": $DIR/creds/no-such-credential: no such file`,
			`11: secret environment variable NO_SUCH_SECRET_VAR is not set`,
			`12: secret file $DIR/secrets/empty: is empty`,
		}},
		{"bad_checksum.yaml", []string{
			`7: plugins[0].sha256: checksum mismatch: $DIR/bin/acquit-plugin-atos has sha256 b06736d42c9e0a06d19d1c0ff33ca1e0ec503c7f006c60ec87b4f66d8b6ded8f`,
			`10: plugins[1].sha256: must be 64 hexadecimal digits`,
			`11: plugins[1].max_procs: must be between 0 (Go's default) and 1024, got -1`,
			`13: plugins[2].path: $DIR/bin/acquit-plugin-missing: no such file`,
			`15: plugins[3].path: $DIR/scripts/shop.lua is not executable`,
		}},
		{"bad_duration.yaml", []string{
			`3: listen.public.read_timeout: invalid duration "5x" (want e.g. 5s, 10m, 72h)`,
			`4: listen.public.max_body_bytes: invalid size "64 KiBs" (want e.g. 65536, 64KiB, 1MiB)`,
			`5: listen.public.idle_timeout: must be positive, not 0s`,
			`9: events.backoff_base: must be positive, not -1s`,
			`10: events.workers: invalid integer "many"`,
			`17: schedules[0].timeout: invalid duration "ten minutes" (want e.g. 5s, 10m, 72h)`,
		}},
		{"bad_env.yaml", []string{
			`1: environment variable ACQUIT_UNSET_INSTANCE is not set (use ${ACQUIT_UNSET_INSTANCE:-default} for a default)`,
			`4: unterminated ${ in "${PUBLIC_URL"`,
			`6: environment variable ADMIN_PORT is not set (use ${ADMIN_PORT:-default} for a default)`,
			`9: invalid environment variable reference ${LOG-LEVEL}`,
		}},
		{"bad_secret_plain.yaml", []string{
			`3: !file is only allowed for secret values (tokens, keys, passwords, dsn, plugin settings)`,
			`5: listen.admin.token is a secret: write it as !file /path, !credential name or !env NAME, never in the file`,
			`8: state.dsn is a secret: write it as !file /path, !credential name or !env NAME, never in the file`,
			`10: unknown tag !vault`,
		}},
		{"bad_syntax.yaml", []string{
			`4: did not find expected node content`,
		}},
		{"bad_duplicates.yaml", []string{
			`6: duplicate key "level" (first at line 5)`,
			`10: plugins[1].name: duplicate plugin name "atos"`,
			`16: schedules[1].name: duplicate schedule name "r"`,
			`22: banks[1].name: duplicate bank name "demo"`,
			`23: banks[1].plugin: unknown plugin "ebics" (configured: atos)`,
			`26: payments.gateways[0]: "atos" named twice`,
			`26: payments.gateways[1]: unknown plugin "nope" (configured: atos)`,
		}},
		{"bad_jobs.yaml", []string{
			`8: hooks[0].events: at least one event pattern is required`,
			`9: hooks[0].script: "../../etc/passwd" must be a relative path inside scripts.dir`,
			`10: hooks[0].function: invalid Lua function name "os.execute('x')"`,
			`11: hooks[1].events[0]: invalid event pattern "payment.["`,
			`11: hooks[1].function: is required`,
			`12: hooks[1].script: $DIR/scripts/missing.lua: no such file`,
			`16: schedules[0].job: unknown plugin "foo" (configured: atos)`,
			`19: schedules[1].job: must be "<plugin>.<job>" or "lua", not "reconcile"`,
			`20: schedules[2].script: is required`,
			`20: schedules[2].function: is required`,
			`25: schedules[3].job: script and function only apply to job "lua"`,
			`28: payments.gateway: unknown plugin "worldline" (configured: atos)`,
			`29: payments.recheck_every: must be positive, not 0s`,
			`30: payments.fallback_return_url: must be an absolute http(s) URL without query, not "javascript:alert(1)"`,
			`31: payments.notify_burst: must be >= 1`,
			`35: banks[0].ack_kinds[1]: must be psr, hac or ptk, not "fax"`,
			`36: banks[0].ptk_profile: must be de, en or fr, not "xx"`,
			`37: banks[0].function: invalid business function "sct; rm"`,
		}},
		{"bad_types.yaml", []string{
			`1: instance: invalid name "bad name!" (letters, digits, '.', '_', '-'; at most 63)`,
			`3: state.driver: must be sqlite or postgres, not "mysql"`,
			`4: state.raw_retention: must be 0 (keep every raw input) or at least 24h0m0s, not 1h0m0s`,
			`7: listen.public.addr: invalid address "8080" (want host:port)`,
			`8: listen.public.trusted_proxies[0]: invalid network "10.0.0.0/33"`,
			`8: listen.public.trusted_proxies[1]: invalid network "not-an-ip"`,
			`9: listen.public.base_url: scheme must be https (or http for tests), not "ftp"`,
			`11: listen.admin.addr: unix: needs a socket path`,
			`12: listen.admin.token: is too short (at least 16 characters; e.g. openssl rand -hex 32)`,
			`14: log.level: must be trace, debug, info, warn or error, not "loud"`,
			`15: log.format: must be auto, json or console, not "xml"`,
			`17: scripts.pool_size: must be between 1 and 1024, not 0`,
			`18: scripts.memory_budget: must be at least 1MiB, not 1KiB`,
			`20: plugins must be a list, not a mapping`,
			`22: events must be a mapping, not a list`,
		}},
		{"bad_multi_doc.yaml", []string{`4: only one YAML document is allowed`}},
		{"bad_root.yaml", []string{`1: the document must be a mapping, not a list`}},
		{"bad_merge.yaml", []string{
			`1: unknown key "base" (known: instance, state, listen, log, scripts, hooks, events, plugins, schedules, payments, banks, transmissions)`,
			`4: merge keys (<<) are not supported`,
		}},
		{"bad_alias_bomb.yaml", []string{
			`6: document too large or too deeply nested (more than 100000 nodes or 64 levels; alias bomb?)`,
		}},
	}
	dir, opts := fixture(t)
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			file := filepath.Join("testdata", tc.file)
			got := errLines(t, file, opts, dir)
			want := make([]string, len(tc.want))
			for i, w := range tc.want {
				want[i] = file + ":" + w
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

func TestLoadGood(t *testing.T) {
	dir, opts := fixture(t)
	cfg, err := LoadWith("testdata/good.yaml", opts)
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs("testdata/good.yaml")
	if cfg.File != abs {
		t.Errorf("File = %q, want %q", cfg.File, abs)
	}
	check := func(name string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", name, got, want)
		}
	}
	check("Instance", cfg.Instance, "node-a")
	check("State.Driver", cfg.State.Driver, "postgres")
	check("State.DSN", cfg.State.DSN.Reveal(), testDSN)
	check("State.DSN.Source", cfg.State.DSN.Source(), "credential pg-dsn")
	check("Listen.Public", fmt.Sprintln(cfg.Listen.Public.Addr, cfg.Listen.Public.MaxBodyBytes.Bytes(),
		cfg.Listen.Public.ReadHeaderTimeout, cfg.Listen.Public.ReadTimeout, cfg.Listen.Public.WriteTimeout,
		cfg.Listen.Public.IdleTimeout), "127.0.0.1:0 131072 2s 3s 4s 1m30s\n")
	check("TrustedProxies", cfg.Listen.Public.TrustedProxies, []netip.Prefix{
		netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("10.0.0.0/8")})
	check("BaseURL", cfg.Listen.Public.BaseURL, "https://pay.example.com")
	check("Admin.Addr", cfg.Listen.Admin.Addr, "unix:"+filepath.Join(dir, "run/admin.sock"))
	check("Admin.Token", cfg.Listen.Admin.Token.Reveal(), testAdminToken) // CRLF trimmed
	check("Log", cfg.Log, Log{Level: "debug", Format: "json"})
	check("Scripts.Dir", cfg.Scripts.Dir, filepath.Join(dir, "scripts"))
	check("Scripts", fmt.Sprintln(cfg.Scripts.Timeout, cfg.Scripts.PoolSize, cfg.Scripts.MemoryBudget), "2s 8 64MiB\n")
	v := cfg.Scripts.Values
	check("values.shop_url", v["shop_url"], "https://shop.example.com")
	check("values.port", v["port"], int64(8443))
	check("values.quoted", v["quoted"], "8443")
	check("values.retries", v["retries"], int64(3))
	check("values.ratio", v["ratio"], 0.5)
	check("values.enabled", v["enabled"], true)
	check("values.nothing", v["nothing"], nil)
	check("values.list", v["list"], []any{"a", int64(2), false})
	check("values.dollars", v["dollars"], "${NOT_EXPANDED} costs $5")
	if s, ok := v["api_key"].(Secret); !ok || s.Reveal() != testAPIKey {
		t.Errorf("values.api_key = %#v, want a Secret", v["api_key"])
	}
	check("Hooks", cfg.Hooks, []Hook{
		{Events: []string{"payment.*", "demo.*"}, Script: "shop.lua", Function: "on_payment"},
		{Events: []string{"*"}, Script: "sub/audit.lua", Function: "audit.record"}})
	check("Events", cfg.Events, Events{Workers: 2, MaxAttempts: 5, PoisonAfter: 3, MaxAge: 48 * time.Hour,
		BackoffBase: 500 * time.Millisecond, BackoffMax: 10 * time.Minute, PollInterval: 250 * time.Millisecond, Retention: 720 * time.Hour, Lease: 30 * time.Second})
	if len(cfg.Plugins) != 2 {
		t.Fatalf("plugins: %d", len(cfg.Plugins))
	}
	atos, ok := cfg.Plugin("atos")
	if !ok {
		t.Fatal("no atos plugin")
	}
	check("atos.Path", atos.Path, filepath.Join(dir, "bin/acquit-plugin-atos"))
	var settings map[string]any
	if err := json.Unmarshal(atos.Settings.JSON(), &settings); err != nil {
		t.Fatal(err)
	}
	check("atos.settings", settings, map[string]any{
		"merchant_id": "011223344550000", "key_version": float64(3), "secret_key": testSipsKey,
		"merchants": []any{map[string]any{"name": "shop", "secret": testShopSecret}}})
	check("atos.settings redacted", string(atos.Settings.Redacted()),
		`{"key_version":3,"merchant_id":"011223344550000","merchants":[{"name":"shop","secret":"[redacted]"}],"secret_key":"[redacted]"}`)
	ebics, _ := cfg.Plugin("ebics")
	check("ebics.settings", string(ebics.Settings.JSON()), "{}")
	check("Schedules", cfg.Schedules, []Schedule{
		{Name: "reconcile", Cron: "0 */5 * * * *", Timezone: "Europe/Paris", Job: "atos.reconcile",
			Params: map[string]string{"window": "24h", "merchant": "shop"}, Timeout: 2 * time.Minute},
		{Name: "acks", Cron: "@every 5m", Job: "ebics.fetch_acks", Timeout: 10 * time.Minute},
		{Name: "nightly", Cron: "CRON_TZ=Europe/Berlin 30 2 * * *", Job: "lua", Script: "shop.lua",
			Function: "nightly", Timeout: 10 * time.Minute}})
	check("Payments", cfg.Payments, Payments{ReconcileAfter: 10 * time.Minute, FinalDeadline: 12 * time.Hour, Gateway: "atos",
		RecheckEvery: 5 * time.Minute, NotifyRate: 20, NotifyBurst: 200, RefusedBodyKeep: 4 * KiB})
	bankDefaults := func(b Bank) Bank { b.AckKinds, b.PTKProfile, b.Function = []string{"psr"}, "de", "sct"; return b }
	check("Banks", cfg.Banks, []Bank{bankDefaults(Bank{Name: "demo", Plugin: "ebics", AckDeadline: 36 * time.Hour}),
		bankDefaults(Bank{Name: "other", Plugin: "ebics", AckDeadline: 24 * time.Hour})})
	entries := cfg.ScheduleEntries()
	check("ScheduleEntries[0]", fmt.Sprint(entries[0]), "{reconcile 0 */5 * * * * Europe/Paris atos.reconcile map[merchant:shop window:24h] 2m0s}")
	check("ScheduleEntries[2].Params", entries[2].Params, map[string]string{"script": filepath.Join(dir, "scripts/shop.lua"), "function": "nightly"})
}

func TestLoadDefaults(t *testing.T) {
	_, opts := fixture(t)
	opts.LookupEnv = func(k string) (string, bool) {
		switch k {
		case "CREDENTIALS_DIRECTORY":
			return filepath.Join(opts.Dir, "creds"), true
		case "STATE_DIRECTORY":
			return "/var/lib/acquit:/var/lib/other", true
		}
		return "", false
	}
	cfg, err := LoadWith("testdata/minimal.yaml", opts)
	if err != nil {
		t.Fatal(err)
	}
	want := defaults(func(string) (string, bool) { return "", false }, opts.Hostname)
	want.State.Path = "/var/lib/acquit/acquit.db"
	want.Scripts.Dir = filepath.Join(opts.Dir, "scripts")
	want.Listen.Admin.Token = cfg.Listen.Admin.Token
	want.File = cfg.File
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", cfg, want)
	}
	if cfg.Instance != "testhost" || cfg.Listen.Public.Addr != ":8080" || cfg.Listen.Public.MaxBodyBytes != 65536 ||
		cfg.Events.MaxAttempts != 20 || cfg.Scripts.MemoryBudget != 256*MiB || cfg.Listen.Admin.Addr != "127.0.0.1:8081" {
		t.Errorf("unexpected defaults: %+v", cfg)
	}
}

func TestSecretNeverPrinted(t *testing.T) {
	_, opts := fixture(t)
	cfg, err := LoadWith("testdata/good.yaml", opts)
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"%v": fmt.Sprintf("%v", cfg), "%+v": fmt.Sprintf("%+v", cfg), "%#v": fmt.Sprintf("%#v", cfg),
		"%s": fmt.Sprintf("%s", cfg.Listen.Admin.Token), "%q": fmt.Sprintf("%q", cfg.State.DSN),
		"json": string(js),
	}
	for name, out := range outputs {
		for _, secret := range []string{testAdminToken, testDSN, "s3cr3t-pw", testSipsKey, testShopSecret, testAPIKey} {
			if strings.Contains(out, secret) {
				t.Errorf("%s output reveals %q", name, secret)
			}
		}
		if !strings.Contains(out, "[redacted]") {
			t.Errorf("%s output has no [redacted]: %.200s", name, out)
		}
	}
	if NewSecret("", "x").String() != "" || NewSecret("v", "x").String() != "[redacted]" {
		t.Error("Secret.String")
	}
}

func TestCredentialsDirectoryUnset(t *testing.T) {
	_, opts := fixture(t)
	opts.LookupEnv = func(string) (string, bool) { return "", false }
	got := errLines(t, "testdata/minimal.yaml", opts, opts.Dir)
	want := []string{`testdata/minimal.yaml:4: credential "admin-token": $CREDENTIALS_DIRECTORY is not set (use systemd LoadCredential=)`}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestHostileFiles(t *testing.T) {
	dir, opts := fixture(t)
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	big := write("big.yaml", "log:\n  level: info\n"+strings.Repeat("# padding\n", MaxFileBytes/10+1))
	deep := write("deep.yaml", "scripts:\n  values:\n    x: "+strings.Repeat("[", 100)+strings.Repeat("]", 100)+"\n")
	bigSecret := write("bigsecret.yaml", "listen:\n  admin:\n    token: !file huge\n")
	write("huge", strings.Repeat("x", maxSecretBytes+1))
	dirSecret := write("dirsecret.yaml", "listen:\n  admin:\n    token: !file scripts\n")
	badCred := write("badcred.yaml", "listen:\n  admin:\n    token: !credential ../creds/admin-token\n")
	nul := write("nul.yaml", "log:\n  level: \"info\x00\"\n")
	tests := []struct {
		file string
		want string
	}{
		{big, big + ": file is larger than 1048576 bytes"},
		{deep, deep + ":3: document too large or too deeply nested (more than 100000 nodes or 64 levels; alias bomb?)"},
		{bigSecret, bigSecret + ":3: secret file " + filepath.Join(dir, "huge") + ": is larger than 1 MiB"},
		{dirSecret, dirSecret + ":3: secret file " + filepath.Join(dir, "scripts") + ": is not a regular file"},
		{badCred, badCred + `:3: credential "../creds/admin-token": invalid name`},
		{filepath.Join(dir, "nope.yaml"), filepath.Join(dir, "nope.yaml") + ": no such file"},
	}
	for _, tc := range tests {
		_, err := LoadWith(tc.file, opts)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s: error %v\nwant %s", filepath.Base(tc.file), err, tc.want)
		}
	}
	if _, err := LoadWith(nul, opts); err == nil {
		t.Error("a NUL in a value must be refused")
	}

	// A plugin anyone can overwrite is refused.
	ww := filepath.Join(dir, "bin/acquit-plugin-test")
	if err := os.Chmod(ww, 0o777); err != nil {
		t.Fatal(err)
	}
	wwCfg := write("ww.yaml", "listen:\n  admin:\n    token: !credential admin-token\nplugins:\n  - name: test\n    path: bin/acquit-plugin-test\n")
	if _, err := LoadWith(wwCfg, opts); err == nil || err.Error() != wwCfg+":6: plugins[0].path: "+ww+" is writable by everyone: anyone could replace the plugin" {
		t.Errorf("world-writable plugin: %v", err)
	}

	// 5000 unknown keys: the first 100 are listed, the rest counted.
	var sb strings.Builder
	sb.WriteString("listen:\n  admin:\n    token: !credential admin-token\n")
	for i := 0; i < 5000; i++ {
		fmt.Fprintf(&sb, "unknown%d: x\n", i)
	}
	many := write("many.yaml", sb.String())
	_, err := LoadWith(many, opts)
	var errs *Errors
	if !errors.As(err, &errs) || len(errs.List) != 101 {
		t.Fatalf("many unknown keys: %v", err)
	}
	if got := errs.List[99].Error(); got != many+`:103: unknown key "unknown99" (known: instance, state, listen, log, scripts, hooks, events, plugins, schedules, payments, banks, transmissions)` {
		t.Errorf("100th error = %s", got)
	}
	if got := errs.List[100].Error(); got != many+": 4900 more problems not shown" {
		t.Errorf("last error = %s", got)
	}
}

func TestExpandEnv(t *testing.T) {
	env := map[string]string{"A": "alpha", "EMPTY": "", "N1": "x"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	tests := []struct{ in, want, err string }{
		{"plain", "plain", ""},
		{"${A}", "alpha", ""},
		{"pre-${A}-post", "pre-alpha-post", ""},
		{"${A}${N1}", "alphax", ""},
		{"${MISSING:-def}", "def", ""},
		{"${EMPTY:-def}", "def", ""},
		{"${EMPTY}", "", ""},
		{"${A:-def}", "alpha", ""},
		{"${MISSING:-}", "", ""},
		{"$5 and $A", "$5 and $A", ""},
		{"$${A}", "${A}", ""},
		{"${MISSING}", "", "environment variable MISSING is not set"},
		{"${A", "", "unterminated"},
		{"${}", "", "invalid environment variable reference ${}"},
		{"${1A}", "", "invalid environment variable reference"},
		{"${A B}", "", "invalid environment variable reference"},
	}
	for _, tc := range tests {
		got, err := expandEnv(tc.in, lookup)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("expandEnv(%q) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("expandEnv(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want Size
		ok   bool
	}{
		{"65536", 65536, true}, {"64KiB", 65536, true}, {"1MiB", 1 << 20, true}, {"2GiB", 2 << 30, true},
		{"10KB", 10000, true}, {"1MB", 1000000, true}, {"512B", 512, true}, {" 8 KiB ", 8192, true},
		{"-1", 0, false}, {"1.5MiB", 0, false}, {"KiB", 0, false}, {"", 0, false}, {"1TiB", 0, false},
		{"99999999999999999GiB", 0, false},
	}
	for _, tc := range tests {
		got, err := ParseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func BenchmarkLoadGood(b *testing.B) {
	_, opts := fixture(b)
	for b.Loop() {
		if _, err := LoadWith("testdata/good.yaml", opts); err != nil {
			b.Fatal(err)
		}
	}
}

func TestExtraJobs(t *testing.T) {
	dir, opts := fixture(t)
	p := filepath.Join(dir, "extra.yaml")
	writeFile(t, p, "listen:\n  admin:\n    token: !credential admin-token\nschedules:\n  - name: purge\n    cron: \"@daily\"\n    job: events.purge\n")
	if _, err := LoadWith(p, opts); err == nil || err.Error() != p+`:7: schedules[0].job: unknown plugin "events" (none configured)` {
		t.Errorf("without ExtraJobs: %v", err)
	}
	opts.ExtraJobs = []string{"events.purge"}
	cfg, err := LoadWith(p, opts)
	if err != nil {
		t.Fatal(err)
	}
	if e := cfg.ScheduleEntries(); len(e) != 1 || e[0].Job != "events.purge" || e[0].Timeout != 10*time.Minute {
		t.Errorf("entries = %+v", e)
	}
}

// TestAdminAddrWarning: a non-loopback admin address is valid but warned
// about (the bearer token would cross the network in plain HTTP).
func TestAdminAddrWarning(t *testing.T) {
	for addr, warn := range map[string]bool{
		"127.0.0.1:8081": false, "[::1]:8081": false, "localhost:8081": false, "127.0.0.2:8081": false,
		"unix:/run/acquit/admin.sock": false,
		"0.0.0.0:8081":                true, ":8081": true, "192.168.1.5:8081": true, "[::]:8081": true, "admin.example.com:8081": true,
	} {
		c := &Config{}
		c.Listen.Admin.Addr = addr
		w := c.Warnings()
		if got := len(w) == 1 && strings.Contains(w[0], "listen.admin.addr") && strings.Contains(w[0], "not a loopback address"); got != warn || (!warn && len(w) != 0) {
			t.Errorf("%s: warnings %q", addr, w)
		}
	}
}

// TestUnheardSilenceWarnings: a payment gateway that no schedule
// reconciles, or a bank whose acknowledgements no schedule downloads, is
// valid but warned about: the missing answers would never become events.
func TestUnheardSilenceWarnings(t *testing.T) {
	sched := func(job string, params map[string]string) Schedule {
		return Schedule{Name: job, Job: job, Params: params}
	}
	cases := []struct {
		name      string
		schedules []Schedule
		want      []string // substrings, one warning each
	}{
		{"nothing scheduled", nil, []string{"no schedule runs atos.reconcile", "no schedule runs worldline.reconcile", "banks[0] (mybank)", "banks[1] (other)"}},
		{"everything", []Schedule{sched("atos.reconcile", nil), sched("worldline.reconcile", nil), sched("ebics.fetch_acks", nil)}, nil},
		{"one fetch per bank", []Schedule{sched("atos.reconcile", nil), sched("worldline.reconcile", nil),
			sched("ebics.fetch_acks", map[string]string{"bank": "mybank"}), sched("ebics.fetch_acks", map[string]string{"bank": "other"})}, nil},
		{"a fetch for another bank only", []Schedule{sched("atos.reconcile", nil), sched("worldline.reconcile", nil),
			sched("ebics.fetch_acks", map[string]string{"bank": "mybank"})}, []string{"banks[1] (other)"}},
		{"a reconcile job pointed at the other gateway", []Schedule{sched("atos.reconcile", map[string]string{"gateway": "worldline"}),
			sched("ebics.fetch_acks", nil)}, []string{"no schedule runs atos.reconcile"}},
		{"a Lua job is no reconcile", []Schedule{sched("lua", map[string]string{"gateway": "atos"}), sched("worldline.reconcile", nil),
			sched("ebics.fetch_acks", nil)}, []string{"no schedule runs atos.reconcile"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &Config{Schedules: tc.schedules, Banks: []Bank{{Name: "mybank", Plugin: "ebics"}, {Name: "other", Plugin: "ebics"}}}
			c.Listen.Admin.Addr = "127.0.0.1:8081"
			c.Payments.Gateway, c.Payments.Gateways = "atos", []string{"worldline"}
			w := c.Warnings()
			if len(w) != len(tc.want) {
				t.Fatalf("warnings %q, want %d", w, len(tc.want))
			}
			for i, sub := range tc.want {
				if !strings.Contains(w[i], sub) {
					t.Errorf("warning %d %q lacks %q", i, w[i], sub)
				}
			}
		})
	}
}
