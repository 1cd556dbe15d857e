package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestFindsNetRPCRegistration builds two small programs with the real Go
// linker's dump and checks what the tool reports: net/rpc's registration
// (which reflects over a receiver's methods) reached from main.main, and
// nothing for a program that only formats a reflect.Type.
func TestFindsNetRPCRegistration(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two programs")
	}
	cases := []struct {
		name, src string
		want      string // a marked function, or "" for none
	}{
		{"netrpc", `package main

import "net/rpc"

type Svc struct{}

func (Svc) Echo(in string, out *string) error { *out = in; return nil }

func main() { _ = rpc.NewServer().Register(Svc{}) }
`, "net/rpc.suitableMethods"},
		{"plain", `package main

import (
	"fmt"
	"reflect"
)

type T struct{ A int }

func main() { fmt.Println(reflect.TypeOf(T{}).NumField()) }
`, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module x\n\ngo 1.22\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(c.src), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("go", "build", "-ldflags=-dumpdep", "-o", filepath.Join(dir, "x"), ".")
			cmd.Dir = dir
			var dump bytes.Buffer
			cmd.Stderr = &dump
			if err := cmd.Run(); err != nil {
				t.Fatalf("go build: %v\n%s", err, dump.String())
			}
			roots, err := find(&dump)
			if err != nil {
				t.Fatal(err)
			}
			names := make([]string, 0, len(roots))
			for _, r := range roots {
				names = append(names, r.name)
			}
			if c.want == "" {
				if len(roots) != 0 {
					t.Fatalf("marked %v, want none", names)
				}
				return
			}
			i := slices.Index(names, c.want)
			if i < 0 {
				t.Fatalf("marked %v, want %s", names, c.want)
			}
			if !slices.Contains(roots[i].chain, "main.main") || !strings.HasPrefix(roots[i].chain[0], "net/rpc.") {
				t.Fatalf("chain of %s: %v, want net/rpc callers up to main.main", c.want, roots[i].chain)
			}
		})
	}
}

// TestEmptyInput: something that is not a dependency dump is refused.
func TestEmptyInput(t *testing.T) {
	if _, err := find(strings.NewReader("go: downloading x\n")); err == nil {
		t.Fatal("no error for input without dependency lines")
	}
}
