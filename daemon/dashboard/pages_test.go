package dashboard

import (
	"io/fs"
	"testing"
	"time"
)

// TestPagesParse parses every embedded page template, as the first render
// does: New no longer parses them (they are parsed at the first render),
// so a template that does not parse fails here, not in a running daemon.
func TestPagesParse(t *testing.T) {
	pages, err := parsePages(time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	names, err := fs.Glob(templateFiles, "templates/*.html")
	if err != nil {
		t.Fatal(err)
	}
	if want := len(names) - 2; len(pages) != want || want < 1 { // layout and partials are not pages
		t.Fatalf("%d pages parsed, want %d", len(pages), want)
	}
	for name, p := range pages {
		if p.Lookup("layout") == nil {
			t.Errorf("page %s has no layout template", name)
		}
	}
}
