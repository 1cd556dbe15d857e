package hooks

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/ast"
	"github.com/yuin/gopher-lua/parse"
)

// MaxScriptBytes is the largest .lua file the loader accepts. gopher-lua's
// compiler is quadratic on some shapes (long concatenation chains, deep if
// nesting): a hostile 1 MiB file takes 15 s to refuse, 256 KiB about 2 s.
const MaxScriptBytes = 256 << 10

// MaxScripts is the largest number of .lua files in a folder.
const MaxScripts = 1000

// MaxTotalScriptBytes caps the sum of the .lua files of a folder.
const MaxTotalScriptBytes = 8 << 20

// script is one compiled .lua file.
type script struct {
	name  string // "shop", "lib/util"
	file  string // "shop.lua", "lib/util.lua"
	proto *lua.FunctionProto
	funcs map[string]int // global functions defined at top level -> line
	reqs  []requireRef
}

type requireRef struct {
	name string
	line int
}

// loadDir compiles every .lua file under dir. It returns the scripts by
// name and every problem found; scripts with problems are left out.
func loadDir(dir string) (map[string]*script, []Diagnostic) {
	scripts := map[string]*script{}
	var diags []Diagnostic
	if dir == "" {
		return scripts, []Diagnostic{{File: ".", Message: "no scripts folder given"}}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return scripts, []Diagnostic{{File: dir, Message: err.Error()}}
	}
	root, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return scripts, []Diagnostic{{File: dir, Message: fmt.Sprintf("scripts folder: %v", err)}}
	}
	st, err := os.Stat(root)
	if err != nil || !st.IsDir() {
		return scripts, []Diagnostic{{File: dir, Message: "scripts folder is not a directory"}}
	}
	count := 0
	var total int64
	werr := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if err != nil {
			diags = append(diags, Diagnostic{File: rel, Message: err.Error()})
			return nil
		}
		if d.IsDir() {
			if p != root && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(d.Name(), ".lua") || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		count++
		if count > MaxScripts {
			diags = append(diags, Diagnostic{File: rel, Message: fmt.Sprintf("more than %d scripts in the folder", MaxScripts)})
			return filepath.SkipAll
		}
		real := p
		if d.Type()&fs.ModeSymlink != 0 {
			real, err = filepath.EvalSymlinks(p)
			if err != nil {
				diags = append(diags, Diagnostic{File: rel, Message: fmt.Sprintf("broken symlink: %v", err)})
				return nil
			}
			r, err := filepath.Rel(root, real)
			if err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) || filepath.IsAbs(r) {
				diags = append(diags, Diagnostic{File: rel, Message: "symlink points outside the scripts folder (refused)"})
				return nil
			}
		}
		if fi, err := os.Stat(real); err == nil {
			total += fi.Size()
			if total > MaxTotalScriptBytes {
				diags = append(diags, Diagnostic{File: rel, Message: fmt.Sprintf("the folder's scripts exceed %d bytes in all", MaxTotalScriptBytes)})
				return filepath.SkipAll
			}
		}
		sc, d2 := compileFile(real, rel)
		if d2 != nil {
			diags = append(diags, *d2)
			return nil
		}
		scripts[sc.name] = sc
		return nil
	})
	if werr != nil {
		diags = append(diags, Diagnostic{File: ".", Message: werr.Error()})
	}
	// Unresolvable requires of literal names.
	for _, sc := range scripts {
		for _, r := range sc.reqs {
			if _, ok := builtinModules[r.name]; ok {
				continue
			}
			if _, err := resolveModule(scripts, r.name); err != nil {
				diags = append(diags, Diagnostic{File: sc.file, Line: r.line, Message: err.Error()})
			}
		}
	}
	sortDiags(diags)
	return scripts, diags
}

func sortDiags(d []Diagnostic) {
	sort.SliceStable(d, func(i, j int) bool {
		if d[i].File != d[j].File {
			return d[i].File < d[j].File
		}
		return d[i].Line < d[j].Line
	})
}

// compileFile reads, parses and compiles one file.
func compileFile(real, rel string) (*script, *Diagnostic) {
	f, err := os.Open(real)
	if err != nil {
		return nil, &Diagnostic{File: rel, Message: err.Error()}
	}
	defer f.Close()
	src, err := io.ReadAll(io.LimitReader(f, MaxScriptBytes+1))
	if err != nil {
		return nil, &Diagnostic{File: rel, Message: err.Error()}
	}
	if len(src) > MaxScriptBytes {
		return nil, &Diagnostic{File: rel, Message: fmt.Sprintf("file larger than %d bytes", MaxScriptBytes)}
	}
	if bytes.HasPrefix(src, []byte("\x1bLua")) {
		return nil, &Diagnostic{File: rel, Message: "precompiled bytecode is not accepted"}
	}
	chunk, err := parse.Parse(bytes.NewReader(src), rel)
	if err != nil {
		var pe *parse.Error
		if errors.As(err, &pe) {
			line := pe.Pos.Line
			if line <= 0 { // at EOF
				line = 1 + bytes.Count(bytes.TrimRight(src, "\n"), []byte("\n"))
			}
			msg := strings.TrimSpace(pe.Message)
			if pe.Token != "" {
				msg = fmt.Sprintf("%s near '%s'", msg, pe.Token)
			}
			if !strings.HasPrefix(msg, "syntax error") {
				msg = "syntax error: " + msg
			}
			return nil, &Diagnostic{File: rel, Line: line, Message: msg}
		}
		l := 0
		if _, n := position(err.Error()); n > 0 {
			l = n
		}
		return nil, &Diagnostic{File: rel, Line: l, Message: "syntax error: " + strings.TrimSpace(err.Error())}
	}
	chunk, d := rewriteConcat(chunk)
	if d != nil {
		d.File = rel
		return nil, d
	}
	proto, err := lua.Compile(chunk, rel)
	if err != nil {
		_, l := position(err.Error())
		return nil, &Diagnostic{File: rel, Line: l, Message: "compile error: " + strings.TrimSpace(err.Error())}
	}
	name := strings.TrimSuffix(rel, ".lua")
	sc := &script{name: name, file: rel, proto: proto, funcs: map[string]int{}}
	for _, st := range chunk {
		switch s := st.(type) {
		case *ast.FuncDefStmt:
			if id, ok := s.Name.Func.(*ast.IdentExpr); ok && s.Name.Receiver == nil {
				sc.funcs[id.Value] = s.Line()
			}
		case *ast.AssignStmt:
			for i, l := range s.Lhs {
				id, ok := l.(*ast.IdentExpr)
				if !ok || i >= len(s.Rhs) {
					continue
				}
				if _, ok := s.Rhs[i].(*ast.FunctionExpr); ok {
					sc.funcs[id.Value] = s.Line()
				}
			}
		}
	}
	sc.reqs = findRequires(chunk)
	return sc, nil
}

// moduleName turns a require argument into a script name: "lib.util",
// "lib/util" and "lib/util.lua" all name lib/util.lua. Absolute paths, ".."
// and odd characters are refused.
func moduleName(req string) (string, error) {
	if req == "" {
		return "", fmt.Errorf("require: empty module name: %w", ErrForbidden)
	}
	if len(req) > 200 {
		return "", fmt.Errorf("require: module name too long: %w", ErrForbidden)
	}
	if strings.HasPrefix(req, "/") || strings.HasPrefix(req, "\\") || strings.Contains(req, ":") {
		return "", fmt.Errorf("require %q: absolute paths are refused: %w", req, ErrForbidden)
	}
	if strings.Contains(req, "..") {
		return "", fmt.Errorf("require %q: '..' is refused: %w", req, ErrForbidden)
	}
	for _, r := range req {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.' || r == '/') {
			return "", fmt.Errorf("require %q: invalid character %q: %w", req, r, ErrForbidden)
		}
	}
	n := strings.TrimSuffix(req, ".lua")
	if !strings.Contains(n, "/") {
		n = strings.ReplaceAll(n, ".", "/")
	}
	if n != path.Clean(n) || strings.HasPrefix(n, "./") {
		return "", fmt.Errorf("require %q: not a clean module path: %w", req, ErrForbidden)
	}
	return n, nil
}

// resolveModule finds the script a require names: "lib.util" is
// lib/util.lua, and a file whose name has dots ("shop.v2.lua") is found by
// its literal name too.
func resolveModule(scripts map[string]*script, req string) (*script, error) {
	n, err := moduleName(req)
	if err != nil {
		return nil, err
	}
	if sc, ok := scripts[n]; ok {
		return sc, nil
	}
	if sc, ok := scripts[strings.TrimSuffix(req, ".lua")]; ok {
		return sc, nil
	}
	return nil, fmt.Errorf("require %q: no such module in the scripts folder", req)
}

// scriptName normalises a binding's script: "shop", "shop.lua".
func scriptName(s string) string {
	return strings.TrimSuffix(filepath.ToSlash(s), ".lua")
}

// Check compiles every .lua file of dir and reports every problem (syntax
// errors with file:line, oversized files, symlinks escaping the folder,
// require of modules that do not exist). It runs no script. An empty result
// means the folder loads.
func Check(dir string) []Diagnostic {
	_, d := loadDir(dir)
	return d
}
