package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acquit/acquit/internal/demo"
)

// TestEbicsCLI walks a treasurer's path with the acquit CLI against the
// running daemon and the EBICS bank simulator: keys init, send, letter
// (text and PDF), fetch-bank-keys, status, an upload, the same file again
// (not sent twice), fetch-acks, and the transmission's details.
func TestEbicsCLI(t *testing.T) {
	h := newHarness(t)
	s, err := demo.SetupEbics(h, "de", 16<<10)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	h.Template().FetchEvery = "@every 1h" // fetch by hand below
	if err := h.Start(ctx(t)); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) string {
		t.Helper()
		out, code := acquitCLI(t, h, args...)
		if code != 0 {
			t.Fatalf("acquit %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
		return out
	}
	bank := "demobank"
	if out := cli("ebics", "keys", "status", "--bank", bank); !strings.Contains(out, "no_keys") {
		t.Fatalf("status before init: %s", out)
	}
	cli("ebics", "keys", "init", "--bank", bank)
	cli("ebics", "keys", "send", "--bank", bank)
	outDir := t.TempDir()
	letter := cli("ebics", "keys", "letter", "--bank", bank, "--out", outDir)
	pdf, err := os.ReadFile(filepath.Join(outDir, "letter.pdf"))
	if err != nil || !strings.HasPrefix(string(pdf), "%PDF") || !strings.Contains(letter, "A006") && !strings.Contains(letter, "A005") {
		t.Fatalf("letter: %v\n%s", err, letter)
	}
	cli("ebics", "keys", "fetch-bank-keys", "--bank", bank)
	if out := cli("ebics", "keys", "status", "--bank", bank); !strings.Contains(out, "ready") {
		t.Fatalf("status after onboarding: %s", out)
	}
	path, _, err := demo.GenerateFile(filepath.Join(h.Dir, "files"), "CLI-1", 800, 3)
	if err != nil {
		t.Fatal(err)
	}
	out := cli("ebics", "upload", path, "--bank", bank)
	if !strings.Contains(out, "submitted") || !strings.Contains(out, "CLI-1") {
		t.Fatalf("upload: %s", out)
	}
	id := strings.Fields(out)[0]
	again := cli("ebics", "upload", path, "--bank", bank)
	if !strings.Contains(again, "already recorded") || !strings.HasPrefix(again, id) {
		t.Fatalf("second upload of the same file: %s", again)
	}
	if n := len(s.Orders()); n != 1 {
		t.Fatalf("%d orders at the bank", n)
	}
	s.WaitAcks()
	sum := cli("ebics", "fetch-acks", "--bank", bank)
	if !strings.Contains(sum, "demobank/psr: 1 new") {
		t.Fatalf("fetch-acks: %s", sum)
	}
	show := cli("transmissions", "show", id)
	if !strings.Contains(show, "state:     accepted") || !strings.Contains(show, "ORDER_HAC_FINAL_POS") ||
		!strings.Contains(show, "uploads:   1 attempt(s)\n") {
		t.Fatalf("transmissions show: %s", show)
	}
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
}
