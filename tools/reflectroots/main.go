// Command reflectroots reads the Go linker's dependency dump on stdin and
// prints each reachable function that calls reflect's Method or
// MethodByName (the linker marks them <ReflectMethod>), with the chain of
// references that made it reachable, up to main.main.
//
// One such function anywhere in a binary makes the linker keep every
// exported method of every type that may sit in an interface, whether
// called or not: in acquit's plugins that is about 2 MB of code and tables
// each, mapped and so resident (docs/benchmarks.md, "idle daemon").
// Functions are listed in the order the linker reached them: the first is
// a cause; later ones may be reachable only because of it.
//
//	go build -ldflags=-dumpdep -o /dev/null ./plugins/atos/cmd/acquit-plugin-atos 2>&1 | go run ./tools/reflectroots
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
)

const mark = " <ReflectMethod>"

func main() {
	roots, err := find(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "reflectroots:", err)
		os.Exit(2)
	}
	if len(roots) == 0 {
		fmt.Println("no reachable function calls reflect's Method or MethodByName")
		return
	}
	for _, r := range roots {
		if len(r.chain) > 0 && strings.HasPrefix(r.chain[0], "type:") {
			fmt.Println(r.name, "(kept as a method of a type: maybe only because of one above)")
		} else {
			fmt.Println(r.name)
		}
		for _, s := range r.chain {
			fmt.Println("    from", s)
		}
	}
}

// root is one reachable <ReflectMethod> function and what reached it,
// nearest first.
type root struct {
	name  string
	chain []string
}

// maxChain bounds a printed chain (the dump has no cycles along first
// references, but a malformed input might).
const maxChain = 64

// find parses "from -> to" lines, keeping the first reference to each
// symbol, and returns the marked functions in the order they appear.
func find(r io.Reader) ([]root, error) {
	parent := map[string]string{}
	var marked []string
	seen := map[string]bool{}
	note := func(sym string) string {
		name, isMarked := strings.CutSuffix(strings.TrimSpace(sym), mark)
		if i := strings.Index(name, " <"); i >= 0 { // other attributes (<UsedInIface>)
			name = name[:i]
		}
		if isMarked && !seen[name] {
			seen[name] = true
			marked = append(marked, name)
		}
		return name
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	lines := 0
	for sc.Scan() {
		from, to, ok := strings.Cut(sc.Text(), " -> ")
		if !ok {
			continue
		}
		lines++
		f, t := note(from), note(to)
		if _, ok := parent[t]; !ok && f != t {
			parent[t] = f
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if lines == 0 {
		return nil, fmt.Errorf("no dependency lines on stdin (go build -ldflags=-dumpdep writes them to stderr)")
	}
	out := make([]root, 0, len(marked))
	for _, m := range marked {
		rt := root{name: m}
		for s, ok := parent[m]; ok && s != "" && len(rt.chain) < maxChain; s, ok = parent[s] {
			rt.chain = append(rt.chain, s)
			if s == "main.main" { // the runtime's entry above it says nothing
				break
			}
		}
		out = append(out, rt)
	}
	return out, nil
}
