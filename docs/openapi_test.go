package docs

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// loadOpenAPI parses and validates the embedded docs/openapi.yaml.
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI)
	if err != nil {
		t.Fatalf("parse docs/openapi.yaml: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("docs/openapi.yaml is not valid OpenAPI 3: %v", err)
	}
	return doc
}

func TestOpenAPIValid(t *testing.T) {
	doc := loadOpenAPI(t)
	if doc.Components == nil || doc.Components.SecuritySchemes["bearer"] == nil {
		t.Fatal("no bearer security scheme")
	}
	op := doc.Paths.Find("/v1/payments").Post
	if op.Parameters.GetByInAndName("header", "Idempotency-Key") == nil {
		t.Error("POST /v1/payments does not document the Idempotency-Key header")
	}
	for _, code := range []int{200, 201, 400, 401, 409} {
		if op.Responses.Status(code) == nil {
			t.Errorf("POST /v1/payments does not document status %d", code)
		}
	}
	if !strings.Contains(doc.Info.Description, "minor units") {
		t.Error("the description does not say amounts are in minor units")
	}
}

// routePattern is a method-qualified ServeMux pattern under /v1/.
var routePattern = regexp.MustCompile(`^(GET|POST|PUT|PATCH|DELETE) (/v1/\S*)$`)

// registeredRoutes returns every "METHOD /v1/..." pattern passed to a
// Handle or HandleFunc call in the daemon's non-test Go sources.
func registeredRoutes(t *testing.T) []string {
	t.Helper()
	var out []string
	daemonSources(t, func(path string, f *ast.File) {
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || (sel.Sel.Name != "Handle" && sel.Sel.Name != "HandleFunc") {
				return true
			}
			lit, ok := call.Args[0].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, _ := strconv.Unquote(lit.Value)
			// Method-less "/v1/..." patterns are prefix mounts of a
			// package's own mux, whose routes name their method.
			if routePattern.MatchString(s) {
				out = append(out, s)
			}
			return true
		})
	})
	slices.Sort(out)
	return slices.Compact(out)
}

// daemonSources parses every non-test Go file under daemon/ and passes it
// to fn.
func daemonSources(t *testing.T, fn func(path string, f *ast.File)) {
	t.Helper()
	err := filepath.WalkDir("../daemon", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			return err
		}
		fn(path, f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// documentedRoutes returns the "METHOD /path" of every operation of doc.
func documentedRoutes(doc *openapi3.T) []string {
	var out []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			out = append(out, method+" "+path)
		}
	}
	slices.Sort(out)
	return out
}

// TestOpenAPICoversRoutes checks that every /v1 route the daemon registers
// is documented, and that every documented operation is registered.
func TestOpenAPICoversRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	reg := registeredRoutes(t)
	if len(reg) < 10 {
		t.Fatalf("found only %d routes in daemon/: %v", len(reg), reg)
	}
	documented := documentedRoutes(doc)
	for _, r := range reg {
		if !slices.Contains(documented, r) {
			t.Errorf("route %q is served but not in docs/openapi.yaml", r)
		}
	}
	for _, r := range documented {
		if !slices.Contains(reg, r) {
			t.Errorf("docs/openapi.yaml documents %q, which the daemon does not register", r)
		}
	}
}
