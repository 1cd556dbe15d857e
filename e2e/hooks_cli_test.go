package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestHooksRunCLI: `acquit hooks run` runs the shipped shop.lua against a
// sample event, reports its HTTP call and exits 0; when the shop answers
// 500 it reports the failure with file:line and exits non-zero. `acquit
// scripts check` accepts the shipped scripts and rejects a broken one with
// file:line.
func TestHooksRunCLI(t *testing.T) {
	bin := filepath.Join(binDir(t), "acquit")
	rec := newFailingRecorder(t)
	dir := t.TempDir()
	scripts, _ := filepath.Abs("../scripts")
	cfg := filepath.Join(dir, "acquit.yaml")
	os.WriteFile(filepath.Join(dir, "token"), []byte("0123456789abcdef0123\n"), 0o600)
	os.WriteFile(cfg, []byte(`state:
  path: `+dir+`/acquit.db
listen:
  admin:
    addr: 127.0.0.1:0
    token: !file `+dir+`/token
scripts:
  dir: `+scripts+`
  http_allow: [127.0.0.1]
  values:
    shop:
      url: `+rec.srv.URL+`
    mail:
      api_url: `+rec.srv.URL+`/mail
      alert_to: ops@example.com
      from: acquit@example.com
hooks:
  - events: [payment.accepted]
    script: shop.lua
    function: on_accepted
`), 0o600)
	event, _ := filepath.Abs("../daemon/hooks/testdata/events/payment.accepted.json")
	run := func(args ...string) (string, int) {
		cmd := exec.Command(bin, append([]string{"--config", cfg}, args...)...)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	out, code := run("hooks", "run", "payment.accepted", "--event", event)
	if code != 0 || !strings.Contains(out, "hook shop:on_accepted") || !strings.Contains(out, "http  POST "+rec.srv.URL) {
		t.Fatalf("hooks run: exit %d\n%s", code, out)
	}
	rec.mu.Lock()
	rec.fail[""] = -1 // the recorder sees no subject in the shop's body: fail everything
	rec.mu.Unlock()
	out, code = run("hooks", "run", "payment.accepted", "--event", event)
	if code == 0 || !strings.Contains(out, "FAILED") || !strings.Contains(out, "shop.lua:") {
		t.Fatalf("hooks run against a failing shop: exit %d\n%s", code, out)
	}
	out, code = run("scripts", "check", scripts)
	if code != 0 {
		t.Fatalf("scripts check on the shipped scripts: %d\n%s", code, out)
	}
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, "broken.lua"), []byte("function f()\n  return 1 +\nend\n"), 0o600)
	out, code = run("scripts", "check", bad)
	if code == 0 || !strings.Contains(out, "broken.lua:3") {
		t.Fatalf("scripts check on a broken script: %d\n%s", code, out)
	}
}
