package worldline

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/acquit/acquit/plugins/worldline/direct"
)

// The README's status table is the code's table (direct.Interpret) and its
// sample configuration is the embedded one.
func TestReadmeMatchesCode(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, code := range direct.StatusCodes() {
		in := direct.Interpret(code)
		op := ""
		if in.OpKind != "" {
			op = in.OpKind + " " + in.OpStatus
		}
		ask := ""
		if in.AskLater {
			ask = "yes"
		}
		row := fmt.Sprintf("| %d | %s | %s | %s | %s |", code, in.Meaning, in.Outcome, ask, op)
		if !strings.Contains(readme, row) {
			t.Errorf("README lacks the row %q", row)
		}
	}
	if !strings.Contains(readme, SampleConfig()) {
		t.Error("README does not contain sample.yaml as embedded")
	}
}

func TestSampleConfigConfigures(t *testing.T) {
	var y map[string]any
	text := os.Expand(SampleConfig(), func(k string) string { return "secret-value-for-" + k })
	if err := yaml.Unmarshal([]byte(text), &y); err != nil {
		t.Fatalf("sample.yaml: %v", err)
	}
	raw, err := json.Marshal(y)
	if err != nil {
		t.Fatal(err)
	}
	if err := New(Silent()).Configure(context.Background(), raw, nil); err != nil {
		t.Fatalf("sample config does not configure: %v", err)
	}
}
