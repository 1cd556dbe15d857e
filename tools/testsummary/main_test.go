package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestSummaryOfARealRun runs `go test -json` on a throwaway package with a
// passing, a skipped and a failing test and checks the summary.
func TestSummaryOfARealRun(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": "module sample\n\ngo 1.22\n",
		"s_test.go": `package sample
import "testing"
func TestPass(t *testing.T) {}
func TestSkip(t *testing.T) { t.Skip("needs xmlsec1") }
func TestFail(t *testing.T) { t.Fatal("boom") }
`,
	}
	for name, body := range files {
		if err := writeFile(dir+"/"+name, body); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("go", "test", "-json", "-count=1", ".")
	cmd.Dir = dir
	cmd.Env = append(cmd.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	raw, _ := cmd.Output() // exits 1: one test fails
	var out bytes.Buffer
	if summarize(bytes.NewReader(raw), &out) {
		t.Fatal("a failing run summarized as passing")
	}
	s := out.String()
	for _, want := range []string{"--- FAIL: TestFail", "boom", "skipped tests (1):", "sample TestSkip: s_test.go:4: needs xmlsec1", "1 passed, 1 failed, 1 skipped"} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
}

func writeFile(p, s string) error { return os.WriteFile(p, []byte(s), 0o600) }
