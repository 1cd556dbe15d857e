// Command testsummary reads `go test -json` on stdin, prints the test output
// as plain `go test` would, and ends with the list of skipped tests (with
// their reasons) and one line "N passed, N failed, N skipped", so that a
// skip is never silent. It exits 1 when a test or a package failed.
//
//	go test -json ./... | go run ./tools/testsummary
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

func main() {
	if !summarize(os.Stdin, os.Stdout) {
		os.Exit(1)
	}
}

// summarize copies the output, appends the summary and reports whether
// everything passed.
func summarize(r io.Reader, w io.Writer) bool {
	in := bufio.NewScanner(r)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	out := bufio.NewWriter(w)
	defer out.Flush()
	var passed, failed, skipped int
	pkgFailed := false
	// The last output lines of each test, to give a skip's reason.
	lastOut := map[string][]string{}
	var skips []string
	for in.Scan() {
		line := in.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			// Not test2json (a build error line): pass it through.
			fmt.Fprintln(out, string(line))
			continue
		}
		key := e.Package + " " + e.Test
		switch e.Action {
		case "build-output":
			fmt.Fprint(out, e.Output)
			continue
		case "build-fail":
			pkgFailed = true
			continue
		case "output":
			fmt.Fprint(out, e.Output)
			if e.Test != "" {
				l := append(lastOut[key], strings.TrimSpace(e.Output))
				if len(l) > 4 {
					l = l[len(l)-4:]
				}
				lastOut[key] = l
			}
			continue
		case "pass":
			if e.Test != "" {
				passed++
			}
		case "fail":
			if e.Test != "" {
				failed++
			} else {
				pkgFailed = true
			}
		case "skip":
			if e.Test != "" {
				skipped++
				skips = append(skips, fmt.Sprintf("%s %s: %s", e.Package, e.Test, reason(lastOut[key])))
			}
		}
		if e.Test != "" && e.Action != "run" && e.Action != "pause" && e.Action != "cont" {
			delete(lastOut, key)
		}
	}
	sort.Strings(skips)
	if len(skips) > 0 {
		fmt.Fprintf(out, "\nskipped tests (%d):\n", len(skips))
		for _, s := range skips {
			fmt.Fprintln(out, "  "+s)
		}
	}
	fmt.Fprintf(out, "\n%d passed, %d failed, %d skipped\n", passed, failed, skipped)
	return failed == 0 && !pkgFailed
}

// reason picks the skip message from a test's last output lines.
func reason(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		l := lines[i]
		if l == "" || strings.HasPrefix(l, "--- SKIP") || strings.HasPrefix(l, "=== ") {
			continue
		}
		return l
	}
	return "(no reason given)"
}
