package configs

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// promtool returns the path of promtool (Debian package prometheus, which
// tools/test.sh installs); it skips the test when missing, except under CI
// where it fails.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool not found (apt-get install prometheus; tools/test.sh does it)")
		}
		t.Skip("promtool not found: apt-get install prometheus")
	}
	return p
}

func TestAlertRulesCheck(t *testing.T) {
	out, err := exec.Command(promtool(t), "check", "rules", "alerts.yaml").CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules alerts.yaml: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool check rules: %s", out)
	}
}

func TestAlertRulesUnit(t *testing.T) {
	out, err := exec.Command(promtool(t), "test", "rules", "alerts_test.yaml").CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules alerts_test.yaml: %v\n%s", err, out)
	}
}

var acquitMetric = regexp.MustCompile(`\bacquit_[a-z0-9_]+`)

// documentedMetrics returns the metric names of the table in
// docs/operations.md (docs.TestMetricsDocumented checks that it lists
// every metric the daemon declares, and only those).
func documentedMetrics(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if m := regexp.MustCompile("^\\| `(acquit_[a-z0-9_]+)` \\|").FindStringSubmatch(line); m != nil {
			out = append(out, m[1])
		}
	}
	if len(out) < 30 {
		t.Fatalf("only %d metrics in the table of docs/operations.md", len(out))
	}
	return out
}

// checkMetricNames fails for each acquit_* name of text that is not an
// exported metric (histogram series suffixes allowed).
func checkMetricNames(t *testing.T, what, text string) int {
	t.Helper()
	known := documentedMetrics(t)
	names := acquitMetric.FindAllString(text, -1)
	for _, n := range names {
		base := n
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(n, suf); ok && slices.Contains(known, b) {
				base = b
			}
		}
		if !slices.Contains(known, base) {
			t.Errorf("%s uses %s, which acquit does not export", what, n)
		}
	}
	return len(names)
}

func TestAlertRulesMetrics(t *testing.T) {
	b, err := os.ReadFile("alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if n := checkMetricNames(t, "alerts.yaml", string(b)); n < 10 {
		t.Fatalf("only %d metric references in alerts.yaml", n)
	}
}

// exprs returns every "expr" string of a Grafana dashboard.
func exprs(v any) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && (k == "expr" || k == "query") {
				out = append(out, s)
			} else {
				out = append(out, exprs(x)...)
			}
		}
	case []any:
		for _, x := range v {
			out = append(out, exprs(x)...)
		}
	}
	return out
}

func TestGrafanaDashboardMetrics(t *testing.T) {
	b, err := os.ReadFile("grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	if _, ok := d["panels"].([]any); !ok {
		t.Fatal("no panels")
	}
	es := exprs(d)
	n := checkMetricNames(t, "grafana-dashboard.json", strings.Join(es, "\n"))
	if n < 15 {
		t.Fatalf("only %d metric references in %d queries", n, len(es))
	}
}
