package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/acquit/acquit/daemon/httpapi"
	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/internal/demo"
)

// acquitCLI runs the acquit binary against the harness's daemon.
func acquitCLI(t *testing.T, h *demo.Harness, args ...string) (string, int) {
	t.Helper()
	full := append([]string{"--config", h.ConfigPath}, args...)
	cmd := exec.Command(filepath.Join(h.BinDir, "acquit"), full...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), code
}

// failingRecorder answers 500 to deliveries of the listed subjects while
// their remaining failure budget is positive (-1: always).
type failingRecorder struct {
	mu       sync.Mutex
	fail     map[string]int
	calls    map[string][]time.Time
	attempts map[string][]int // event.attempt as the hook saw it, per call
	srv      *httptest.Server
}

func newFailingRecorder(t *testing.T) *failingRecorder {
	f := &failingRecorder{fail: map[string]int{}, calls: map[string][]time.Time{}, attempts: map[string][]int{}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var d delivery
		if err := json.NewDecoder(r.Body).Decode(&d); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.calls[d.Subject] = append(f.calls[d.Subject], time.Now())
		f.attempts[d.Subject] = append(f.attempts[d.Subject], d.Attempt)
		if n := f.fail[d.Subject]; n != 0 {
			if n > 0 {
				f.fail[d.Subject] = n - 1
			}
			http.Error(w, "no", 500)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *failingRecorder) count(subject string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls[subject])
}

// TestRetryDeadLetterAndReplay: a hook failing 3 times is retried with
// growing delays and then delivered; one that always fails is
// dead-lettered, shown by `acquit events list --state dead`, and delivered
// after `acquit events replay` once the business system is back.
func TestRetryDeadLetterAndReplay(t *testing.T) {
	rec := newFailingRecorder(t)
	rec.fail["flaky"] = 3
	rec.fail["broken"] = -1
	h := newHarness(t)
	tp := h.Template()
	tp.RecorderURL = rec.srv.URL
	tp.Hooks = []demo.HookData{{Events: `["custom.*"]`, Script: "flaky.lua", Function: "on_event"}}
	c := ctx(t)
	if err := h.Start(c); err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, subj := range []string{"flaky", "broken"} {
		var ev store.Event
		if _, err := h.Client().Do(c, "POST", "/v1/events", httpapi.EmitRequest{Type: "custom.order", Subject: subj}, &ev); err != nil {
			t.Fatal(err)
		}
		ids[subj] = ev.ID
	}
	// flaky: 3 failures, then delivered.
	waitFor(t, time.Minute, "flaky delivered", func() bool {
		var ev store.Event
		_, err := h.Client().Do(c, "GET", "/v1/events/"+ids["flaky"], nil, &ev)
		return err == nil && ev.State == store.EventDelivered
	})
	var d httpapi.EventDetail
	if _, err := h.Client().Do(c, "GET", "/v1/events/"+ids["flaky"], nil, &d); err != nil {
		t.Fatal(err)
	}
	if len(d.AttemptLog) != 4 || d.AttemptLog[3].OK != true || d.AttemptLog[0].OK {
		t.Fatalf("attempt log %+v", d.AttemptLog)
	}
	// event.attempt is 1 on the first delivery (docs/lua.md), then 2, 3, 4.
	rec.mu.Lock()
	seen := fmt.Sprint(rec.attempts["flaky"])
	rec.mu.Unlock()
	if seen != "[1 2 3 4]" {
		t.Fatalf("event.attempt seen by the hook = %s, want [1 2 3 4]", seen)
	}
	if !strings.Contains(d.AttemptLog[0].Error, "business system refused: HTTP 500") || !strings.Contains(d.AttemptLog[0].Error, "flaky.lua:") {
		t.Fatalf("attempt error does not name the script line: %q", d.AttemptLog[0].Error)
	}
	// broken: max_attempts (8 in the harness config) then dead.
	waitFor(t, 2*time.Minute, "broken dead-lettered", func() bool {
		out, _ := acquitCLI(t, h, "events", "list", "--state", "dead")
		return strings.Contains(out, ids["broken"])
	})
	if n := rec.count("broken"); n != 8 {
		t.Fatalf("broken hook called %d times, want 8 (max_attempts)", n)
	}
	rec.mu.Lock()
	calls := rec.calls["broken"]
	rec.fail["broken"] = 0
	rec.mu.Unlock()
	if gap1, gapN := calls[1].Sub(calls[0]), calls[len(calls)-1].Sub(calls[len(calls)-2]); gap1 > 3*time.Second || gapN > 5*time.Second {
		t.Fatalf("retry delays out of bounds: first %s last %s", gap1, gapN)
	}
	out, code := acquitCLI(t, h, "events", "replay", ids["broken"])
	if code != 0 || !strings.Contains(out, ids["broken"]) {
		t.Fatalf("replay: %d %s", code, out)
	}
	waitFor(t, time.Minute, "replayed event delivered", func() bool {
		var ev store.Event
		_, err := h.Client().Do(c, "GET", "/v1/events/"+ids["broken"], nil, &ev)
		return err == nil && ev.State == store.EventDelivered
	})
	out, code = acquitCLI(t, h, "events", "show", ids["broken"])
	if code != 0 || !strings.Contains(out, "delivered") {
		t.Fatalf("show: %d %s", code, out)
	}
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
}

// TestConfigCheckAndReload: `acquit config check` reports file:line errors
// with a non-zero exit; SIGHUP with a broken config keeps the old one
// serving; SIGHUP with a good one applies new hook bindings.
func TestConfigCheckAndReload(t *testing.T) {
	rec := newRecorder(t, 0)
	h := newHarness(t)
	tp := h.Template()
	tp.RecorderURL = rec.srv.URL
	tp.Hooks = []demo.HookData{{Events: `["custom.a"]`, Script: "record.lua", Function: "on_event"}}
	c := ctx(t)
	if err := h.Start(c); err != nil {
		t.Fatal(err)
	}
	out, code := acquitCLI(t, h, "config", "check")
	if code != 0 || !strings.Contains(out, "ok") || strings.Contains(out, "warning") {
		t.Fatalf("config check on a good file: %d %s", code, out)
	}
	good, _ := os.ReadFile(h.ConfigPath)
	// A non-loopback admin address is valid but warned about (token in
	// plain HTTP on the network).
	_, port, _ := strings.Cut(h.AdminAddr, ":")
	os.WriteFile(h.ConfigPath, []byte(strings.Replace(string(good), "addr: "+h.AdminAddr, "addr: 0.0.0.0:"+port, 1)), 0o600)
	out, code = acquitCLI(t, h, "config", "check")
	if code != 0 || !strings.Contains(out, "warning: ") || !strings.Contains(out, "listen.admin.addr: \"0.0.0.0:"+port+"\" is not a loopback address") {
		t.Fatalf("config check with a network admin address: %d %s", code, out)
	}
	bad := strings.Replace(string(good), "instance: demo", "instance: demo\nbogus_key: 1", 1)
	bad += "schedules:\n  - name: nightly\n    cron: \"61 * * * *\"\n    job: lua\n    script: record.lua\n    function: on_event\n"
	cronLine := strings.Count(bad, "\n") - 3
	os.WriteFile(h.ConfigPath, []byte(bad), 0o600)
	out, code = acquitCLI(t, h, "config", "check")
	if code == 0 || !strings.Contains(out, "acquit.yaml:3: unknown key \"bogus_key\"") ||
		!strings.Contains(out, fmt.Sprintf("acquit.yaml:%d: ", cronLine)) {
		t.Fatalf("config check on a bad file: %d %s", code, out)
	}
	syscall.Kill(h.Pid(), syscall.SIGHUP)
	time.Sleep(500 * time.Millisecond)
	emit := func(typ string) {
		if _, err := h.Client().Do(c, "POST", "/v1/events", httpapi.EmitRequest{Type: typ, Subject: typ}, nil); err != nil {
			t.Fatal(err)
		}
	}
	emit("custom.a")
	waitFor(t, 30*time.Second, "old config still serving", func() bool { return rec.distinct() == 1 })
	// A good config binding custom.b too.
	reloaded := strings.Replace(string(good), `["custom.a"]`, `["custom.a", "custom.b"]`, 1)
	os.WriteFile(h.ConfigPath, []byte(reloaded), 0o600)
	syscall.Kill(h.Pid(), syscall.SIGHUP)
	waitFor(t, 30*time.Second, "reload applied", func() bool {
		b, _ := os.ReadFile(filepath.Join(h.Dir, "acquit.log"))
		return bytes.Contains(b, []byte("configuration reloaded"))
	})
	emit("custom.b")
	waitFor(t, 30*time.Second, "new binding delivered", func() bool { return rec.distinct() == 2 })
	logb, _ := os.ReadFile(filepath.Join(h.Dir, "acquit.log"))
	if !bytes.Contains(logb, []byte("reload refused")) {
		t.Fatalf("no log line for the refused reload")
	}
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	_ = fmt.Sprint
}

// TestLogLinesHaveUniqueKeys: every JSON line the daemon writes (its own,
// go-plugin's and the plugins' relayed lines, start to stop) has each key
// once, so `jq 'select(.plugin=="atos")'` and `select(.component==...)` see
// every line.
func TestLogLinesHaveUniqueKeys(t *testing.T) {
	rec := newFailingRecorder(t)
	rec.fail["logs"] = 1 // one failed delivery: the outbox logs the retry
	h := newHarness(t)
	s, err := demo.SetupEbics(h, "de", 16<<10) // a plugin process: go-plugin's and the plugin's lines
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tp := h.Template()
	tp.RecorderURL = rec.srv.URL
	tp.Hooks = []demo.HookData{{Events: `["custom.*"]`, Script: "flaky.lua", Function: "on_event"}}
	c := ctx(t)
	if err := h.Start(c); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Client().Do(c, "POST", "/v1/events", httpapi.EmitRequest{Type: "custom.logs", Subject: "logs"}, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "event delivered after a retry", func() bool { return rec.count("logs") == 2 })
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(h.Dir, "acquit.log"))
	if err != nil {
		t.Fatal(err)
	}
	lines, plugin, outbox := 0, 0, 0
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		lines++
		dec := json.NewDecoder(strings.NewReader(line))
		if _, err := dec.Token(); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		seen := map[string]bool{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				t.Fatalf("%v: %s", err, line)
			}
			if seen[k.(string)] {
				t.Errorf("key %q twice in %s", k, line)
			}
			seen[k.(string)] = true
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("%v: %s", err, line)
			}
		}
		if seen["plugin"] {
			plugin++
		}
		if strings.Contains(line, `"component":"outbox"`) {
			outbox++
		}
	}
	if lines < 5 || plugin == 0 || outbox == 0 {
		t.Fatalf("log too thin to judge: %d JSON lines, %d with plugin, %d from the outbox", lines, plugin, outbox)
	}
}
