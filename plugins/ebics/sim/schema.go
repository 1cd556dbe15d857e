package sim

// XSD validation of every request against the official EBICS schemas, as a
// bank's front end does before anything else (091010 EBICS_INVALID_XML).
// The validator is libxml2's (the xmllint command), an implementation
// acquit did not write; the schemas are the ones EBICS SCRL publishes
// (H004 = EBICS 2.5, H005 = EBICS 3.0, H000 = HEV).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// SchemaDirEnv names the environment variable that points at the folder
// holding the H004/ and H005/ schema folders (Config.SchemaDir "" looks
// there first).
const SchemaDirEnv = "EBICS_XSD_DIR"

// SchemaOff as Config.SchemaDir disables XSD validation.
const SchemaOff = "off"

// schemaRel is where the schemas sit relative to an ancestor of the
// working directory: the shared fixtures beside the repository.
var schemaRel = filepath.Join("shared", "fixtures", "ebics", "ebics-xsd")

// schemaValidator runs xmllint with the schema of a request's namespace:
// in the schema's long-running xmllint session (lintsession.go) when it is
// free, else in an xmllint run of the request's own.
type schemaValidator struct {
	xmllint string
	dir     string

	mu       sync.Mutex
	sessions map[string]*sessionSlot
	closed   bool
}

// sessionSlot holds the running xmllint session of a schema
// (lintsession.go); a request that finds it busy runs its own xmllint.
type sessionSlot struct {
	mu sync.Mutex
	s  *lintSession
}

// FindSchemaDir returns the schema folder to use for a Config.SchemaDir
// value: the value itself, else $EBICS_XSD_DIR, else the first
// shared/fixtures/ebics/ebics-xsd found in the working directory or one of
// its ancestors. It returns "" when nothing is found (or dir is "off").
func FindSchemaDir(dir string) string {
	switch {
	case dir == SchemaOff:
		return ""
	case dir != "":
		return dir
	case os.Getenv(SchemaDirEnv) != "":
		return os.Getenv(SchemaDirEnv)
	}
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	for d := wd; ; d = filepath.Dir(d) {
		c := filepath.Join(d, schemaRel)
		if _, err := os.Stat(filepath.Join(c, "H004", "ebics_H004.xsd")); err == nil {
			return c
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

// newSchemaValidator checks that xmllint and the schemas are there.
func newSchemaValidator(dir string) (*schemaValidator, error) {
	x, err := exec.LookPath("xmllint")
	if err != nil {
		return nil, fmt.Errorf("xmllint not installed (apt-get install libxml2-utils): %w", err)
	}
	for _, f := range []string{"H004/ebics_H004.xsd", "H005/ebics_H005.xsd", "H005/ebics_hev.xsd"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return nil, fmt.Errorf("schema %s: %w", f, err)
		}
	}
	return &schemaValidator{xmllint: x, dir: dir, sessions: map[string]*sessionSlot{}}, nil
}

// close ends the xmllint sessions.
func (v *schemaValidator) close() {
	v.mu.Lock()
	v.closed = true
	slots := v.sessions
	v.sessions = map[string]*sessionSlot{}
	v.mu.Unlock()
	for _, sl := range slots {
		sl.mu.Lock()
		if sl.s != nil {
			sl.s.end()
			sl.s = nil
		}
		sl.mu.Unlock()
	}
}

// sessionCheck validates body in the schema's xmllint session; used is
// false when no session could do it (busy, not startable, broken), and the
// caller then runs xmllint for this request alone.
func (v *schemaValidator) sessionCheck(schema string, body []byte, deadline time.Time) (ok bool, report string, used bool) {
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return false, "", false
	}
	sl := v.sessions[schema]
	if sl == nil {
		sl = &sessionSlot{}
		v.sessions[schema] = sl
	}
	v.mu.Unlock()
	if !sl.mu.TryLock() {
		return false, "", false
	}
	defer sl.mu.Unlock()
	if sl.s != nil && sl.s.full() {
		sl.s.end()
		sl.s = nil
	}
	if sl.s == nil {
		s, err := startSession(v.xmllint, filepath.Join(v.dir, schema))
		if err != nil {
			return false, "", false
		}
		sl.s = s
	}
	ok, lines, err := sl.s.check(body, deadline)
	if err != nil {
		sl.s.end()
		sl.s = nil
		return false, "", false
	}
	return ok, strings.Join(lines, "\n"), true
}

// errSchema is a request the schemas refuse.
type errSchema struct{ detail string }

func (e *errSchema) Error() string { return "not valid against the EBICS schema: " + e.detail }

// validate checks one message against the schema of its root namespace.
func (v *schemaValidator) validate(body []byte, root *xnode) error {
	var schema string
	switch ns := root.space(); ns {
	case "urn:org:ebics:H004":
		schema = "H004/ebics_H004.xsd"
	case "urn:org:ebics:H005":
		schema = "H005/ebics_H005.xsd"
	case "http://www.ebics.org/H000":
		schema = "H005/ebics_hev.xsd"
	default:
		return &errSchema{fmt.Sprintf("unknown namespace %q", ns)}
	}
	// Validated in the schema's xmllint session when it is free, else by
	// an xmllint run of its own: the same validator over the same bytes.
	deadline := time.Now().Add(30 * time.Second)
	if ok, report, used := v.sessionCheck(schema, body, deadline); used {
		if ok {
			return nil
		}
		return &errSchema{firstLines(report, 3)}
	}
	return v.runOwn(schema, body)
}

// runOwn validates body with an xmllint run of its own.
func (v *schemaValidator) runOwn(schema string, body []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, v.xmllint, "--noout", "--nonet", "--schema", filepath.Join(v.dir, schema), "-")
	cmd.Stdin = bytes.NewReader(body)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err == nil {
		return nil
	}
	// 1: not well-formed, 3: not valid. Anything else (4: the schema
	// itself is unusable, a timeout) is the bank's problem.
	var exit *exec.ExitError
	if errors.As(err, &exit) && (exit.ExitCode() == 1 || exit.ExitCode() == 3) {
		return &errSchema{firstLines(out.String(), 3)}
	}
	return fmt.Errorf("xmllint: %w: %s", err, firstLines(out.String(), 3))
}

// firstLines keeps the first n lines of xmllint's report (without the
// "-:" file prefix), for the ReportText and the log.
func firstLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[:n]
	}
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, "-:")
	}
	out := strings.Join(lines, "; ")
	if len(out) > 400 {
		out = out[:400]
	}
	return out
}
