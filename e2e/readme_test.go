package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// readmeBlock returns the first ```sh block under the README heading.
func readmeBlock(t *testing.T, heading string) string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("README has no %q section", heading)
	}
	s = s[i:]
	start := strings.Index(s, "```sh\n")
	if start < 0 {
		t.Fatalf("no sh block under %q", heading)
	}
	s = s[start+len("```sh\n"):]
	end := strings.Index(s, "\n```")
	if end < 0 {
		t.Fatal("unterminated sh block")
	}
	return s[:end+1]
}

// freePortBase finds n consecutive free loopback ports.
func freePortBase(t *testing.T, n int) int {
	t.Helper()
	for try := 0; try < 200; try++ {
		base := 20000 + rand.IntN(40000)
		ok := true
		var ls []net.Listener
		for i := 0; i < n && ok; i++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+i))
			if err != nil {
				ok = false
				break
			}
			ls = append(ls, l)
		}
		for _, l := range ls {
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port range")
	return 0
}

// TestReadmeUsingItRunsAsWritten runs the README's "Using it" block with
// bash, as a new user pastes it, from a folder laid out like a fresh clone
// (bin/, scripts/, configs/, daemon/ of this checkout). Only two things are
// changed: `make build` is skipped (the binaries under test are bin/), and
// the loopback ports move to a free range (init's --port-base and the
// simulators' addresses) so the test cannot collide with anything.
func TestReadmeUsingItRunsAsWritten(t *testing.T) {
	block := readmeBlock(t, "## Using it")
	work := t.TempDir()
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	links := map[string]string{"bin": binDir(t), "scripts": filepath.Join(repo, "scripts"),
		"configs": filepath.Join(repo, "configs"), "daemon": filepath.Join(repo, "daemon")}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(work, name)); err != nil {
			t.Fatal(err)
		}
	}
	base := freePortBase(t, 13)
	script := block
	replace := func(old, new string) {
		t.Helper()
		if !strings.Contains(script, old) {
			t.Fatalf("README block no longer contains %q", old)
		}
		script = strings.ReplaceAll(script, old, new)
	}
	replace("make build ", ": make build ")
	replace("bin/acquit init .tmp/local ", fmt.Sprintf("bin/acquit init .tmp/local --port-base %d ", base))
	replace("127.0.0.1:8090", fmt.Sprintf("127.0.0.1:%d", base+10))
	replace("127.0.0.1:8091", fmt.Sprintf("127.0.0.1:%d", base+11))
	// A failing line stops the run; the daemon and simulators never outlive it.
	full := "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\nset -x\n" + script
	c, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(c, "bash", "-c", full)
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "ACQUIT_CONFIG=", "ACQUIT_ADMIN=", "ACQUIT_ADMIN_TOKEN=", "ACQUIT_ADMIN_TOKEN_FILE=", "TZ=UTC")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 10 * time.Second
	err = cmd.Run()
	text := out.String()
	if err != nil {
		t.Fatalf("README block failed: %v\n%s", err, text)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`acquit\.yaml: ok \(2 plugins, 2 schedules, 2 hooks\)`),
		regexp.MustCompile(`(?m)^ready$`),
		regexp.MustCompile(`scripts/: \d+ scripts ok`),
		regexp.MustCompile(`ok, returned`),
		regexp.MustCompile(`amount:\s+10\.00 EUR`),           // payments show, major units
		regexp.MustCompile(`ORDER-1\s+10\.00 EUR\s+pending`), // payments list
		regexp.MustCompile(`demo\.hello`),                    // events emit/list
		regexp.MustCompile(`fetch-acks`),                     // schedules list
		regexp.MustCompile(`wrote .*letter\.pdf`),            // the initialisation letter
		regexp.MustCompile(`sum 600\.00 EUR`),                // transmissions show: sum with currency
		regexp.MustCompile(`EXAMPLE-MSG-1`),                  // the uploaded file's message id
		regexp.MustCompile(`state:\s+(submitted|received|accepted)`),
	} {
		if !want.MatchString(text) {
			t.Errorf("README run output lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", text)
	}
	// Nothing of the run is left listening.
	time.Sleep(200 * time.Millisecond)
	for _, p := range []int{base, base + 1, base + 10, base + 11} {
		if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err != nil {
			t.Errorf("port %d still in use after the block's kill: %v", p, err)
		} else {
			l.Close()
		}
	}
}
