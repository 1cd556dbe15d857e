package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse: no input makes Parse panic; every failure is an *Errors whose
// lines are within the document.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("a: &a [*a]"))
	f.Add([]byte("plugins: [{name: x, settings: {k: !file}}]"))
	_, opts := fixture(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yaml", data, opts)
		if err == nil {
			if cfg == nil {
				t.Fatal("nil config without error")
			}
			return
		}
		var errs *Errors
		if !errors.As(err, &errs) || len(errs.List) == 0 {
			t.Fatalf("error %T %v, want a non-empty *Errors", err, err)
		}
		lines := strings.Count(string(data), "\n") + 2
		for _, e := range errs.List {
			if e.Line < 0 || e.Line > lines || e.File != "fuzz.yaml" {
				t.Fatalf("error position %s:%d out of the document (%d lines): %s", e.File, e.Line, lines, e.Msg)
			}
		}
	})
}
