package archtest

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// goList runs `go list -deps` on patterns from the module root and returns
// the import paths of the module's own packages it lists.
func goList(t *testing.T, patterns ...string) []string {
	t.Helper()
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := exec.LookPath(goBin); err != nil {
		goBin = "go"
	}
	args := append([]string{"list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}"}, patterns...)
	cmd := exec.Command(goBin, args...)
	cmd.Dir = filepath.Join("..", "..")
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	var pkgs []string
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "github.com/acquit/acquit/") {
			pkgs = append(pkgs, p)
		}
	}
	if len(pkgs) == 0 {
		t.Fatalf("go list -deps %v listed none of the module's packages", patterns)
	}
	return pkgs
}

// The production binary must not carry a bank simulator (nor the demo that
// drives them).
func TestAcquitBinaryCarriesNoSimulator(t *testing.T) {
	for _, p := range goList(t, "./cmd/acquit") {
		if strings.HasSuffix(p, "/sim") || strings.Contains(p, "/sim/") || strings.HasSuffix(p, "/demo") {
			t.Errorf("./cmd/acquit depends on %s", p)
		}
	}
}

// Plugins talk to the daemon through the sdk only: no package under
// plugins/ may import one under daemon/.
func TestPluginsImportNothingFromTheDaemon(t *testing.T) {
	for _, p := range goList(t, "./plugins/...") {
		if strings.Contains(p, "/daemon/") {
			t.Errorf("./plugins/... depends on %s", p)
		}
	}
}
