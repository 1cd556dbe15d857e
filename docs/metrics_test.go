package docs

import (
	"go/ast"
	"go/token"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var metricName = regexp.MustCompile(`^acquit_[a-z0-9_]+$`)

// notMetrics are "acquit_..." literals of metric-declaring files that name
// something else.
var notMetrics = map[string]bool{"acquit_session": true} // the dashboard's cookie

// declaredMetrics returns the names of the metrics the daemon's sources
// declare: "acquit_..." string literals in files that import the
// Prometheus client, and Namespace/Subsystem/Name options.
func declaredMetrics(t *testing.T) []string {
	t.Helper()
	var out []string
	daemonSources(t, func(_ string, f *ast.File) {
		if !slices.ContainsFunc(f.Imports, func(is *ast.ImportSpec) bool {
			return strings.Contains(is.Path.Value, "prometheus/client_golang/prometheus")
		}) {
			return
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.BasicLit:
				if s, err := strconv.Unquote(n.Value); n.Kind == token.STRING && err == nil && metricName.MatchString(s) && !notMetrics[s] {
					out = append(out, s)
				}
			case *ast.CompositeLit:
				parts := map[string]string{}
				for _, el := range n.Elts {
					kv, ok := el.(*ast.KeyValueExpr)
					if !ok {
						continue
					}
					k, ok1 := kv.Key.(*ast.Ident)
					v, ok2 := kv.Value.(*ast.BasicLit)
					if ok1 && ok2 && v.Kind == token.STRING {
						parts[k.Name], _ = strconv.Unquote(v.Value)
					}
				}
				if parts["Namespace"] == "acquit" && parts["Name"] != "" {
					name := "acquit_"
					if parts["Subsystem"] != "" {
						name += parts["Subsystem"] + "_"
					}
					out = append(out, name+parts["Name"])
				}
			}
			return true
		})
	})
	slices.Sort(out)
	return slices.Compact(out)
}

// TestMetricsDocumented checks that every metric the daemon declares is
// named in docs/operations.md (the e2e test TestMetricsStoreGaugesAndDocs
// does the same for the families a real daemon exports).
func TestMetricsDocumented(t *testing.T) {
	names := declaredMetrics(t)
	if len(names) < 30 {
		t.Fatalf("found only %d metric names in daemon/: %v", len(names), names)
	}
	doc, err := os.ReadFile("operations.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if !regexp.MustCompile(`\b` + n + `\b`).Match(doc) {
			t.Errorf("metric %s is not documented in docs/operations.md", n)
		}
	}
	// The table lists only metrics that exist (configs' alert and
	// dashboard tests rely on it).
	for _, m := range regexp.MustCompile("(?m)^\\| `(acquit_[a-z0-9_]+)` \\|").FindAllSubmatch(doc, -1) {
		if !slices.Contains(names, string(m[1])) {
			t.Errorf("docs/operations.md lists %s, which the daemon does not declare", m[1])
		}
	}
}
