package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// yamlBlock finds the ```yaml blocks of a Markdown file.
var yamlBlock = regexp.MustCompile("(?ms)^```ya?ml[ \t]*\n(.*?)^```")

// notConfigMark, as the first line of a ```yaml block, exempts it from
// TestDocConfigSnippets (for YAML that is not acquit's configuration).
const notConfigMark = "# not an acquit config"

// docSnippet is one ```yaml block of the docs.
type docSnippet struct {
	file string
	line int
	text string
}

func docSnippets(t *testing.T) []docSnippet {
	t.Helper()
	files, _ := filepath.Glob("../../docs/*.md")
	files = append(files, "../../README.md")
	var out []docSnippet
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range yamlBlock.FindAllSubmatchIndex(b, -1) {
			text := string(b[m[2]:m[3]])
			if strings.HasPrefix(text, notConfigMark) {
				continue
			}
			out = append(out, docSnippet{file: strings.TrimPrefix(f, "../../"), line: 1 + strings.Count(string(b[:m[2]]), "\n"), text: text})
		}
	}
	return out
}

// mergeTopLevel returns base with each top-level key of frag set to frag's
// value (fragments replace whole sections of the minimal config).
func mergeTopLevel(t *testing.T, base, frag string) ([]byte, error) {
	t.Helper()
	var b, f yaml.Node
	if err := yaml.Unmarshal([]byte(base), &b); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte(frag), &f); err != nil {
		return nil, err
	}
	if len(f.Content) == 0 || f.Content[0].Kind != yaml.MappingNode {
		return []byte(frag), nil // let Parse say what is wrong
	}
	bm, fm := b.Content[0], f.Content[0]
	for i := 0; i+1 < len(fm.Content); i += 2 {
		k, v := fm.Content[i], fm.Content[i+1]
		replaced := false
		for j := 0; j+1 < len(bm.Content); j += 2 {
			if bm.Content[j].Value == k.Value {
				bm.Content[j+1], replaced = v, true
			}
		}
		if !replaced {
			bm.Content = append(bm.Content, k, v)
		}
	}
	return yaml.Marshal(&b)
}

// TestDocConfigSnippets loads every ```yaml block of docs/*.md and
// README.md as acquit configuration: a fragment is merged into the minimal
// configuration (testdata/minimal.yaml), its secrets are faked (credential
// files, !file paths, environment) and paths are not checked, as for a
// config meant for another machine.
func TestDocConfigSnippets(t *testing.T) {
	snippets := docSnippets(t)
	if len(snippets) < 2 {
		t.Fatalf("only %d yaml blocks found in the docs", len(snippets))
	}
	base, err := os.ReadFile("testdata/minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range snippets {
		name := s.file + ":" + strconv.Itoa(s.line)
		t.Run(name, func(t *testing.T) {
			data, err := mergeTopLevel(t, string(base), s.text)
			if err != nil {
				t.Fatalf("%s: not YAML: %v", name, err)
			}
			dir, opts := fixture(t)
			fakeSecrets(t, dir, data)
			opts.SkipPathChecks = true
			if _, err := Parse(name, data, opts); err != nil {
				t.Errorf("the config snippet at %s is refused:\n%v\n--- snippet merged into the minimal config:\n%s", name, err, data)
			}
		})
	}
}
