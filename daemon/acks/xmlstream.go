package acks

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/text/encoding/charmap"
)

// guardReader enforces the byte limits while the XML decoder reads: the
// total size, and the longest run of bytes without '<' or '>' (which bounds
// text and tag tokens before the decoder buffers them whole).
type guardReader struct {
	r        io.Reader
	total    int64
	run      int
	maxTotal int64
	maxRun   int
	err      error
}

// Read implements io.Reader, counting and checking the bytes it passes on.
func (g *guardReader) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	n, err := g.r.Read(p)
	if n > 0 {
		g.total += int64(n)
		if g.total > g.maxTotal {
			g.err = ErrTooLarge
			return 0, g.err
		}
		run := g.run
		for _, c := range p[:n] {
			if c == '<' || c == '>' {
				run = 0
				continue
			}
			run++
		}
		// A run may have peaked inside the chunk; check it precisely only
		// when the cheap bound says it could have.
		if g.run+n > g.maxRun {
			if peak := longestRun(g.run, p[:n]); peak > g.maxRun {
				g.err = ErrTokenTooLarge
				return 0, g.err
			}
		}
		g.run = run
	}
	return n, err
}

func longestRun(start int, p []byte) int {
	run, peak := start, start
	for _, c := range p {
		if c == '<' || c == '>' {
			run = 0
			continue
		}
		run++
		if run > peak {
			peak = run
		}
	}
	return peak
}

// charsetReader accepts the encodings banks actually use.
func charsetReader(label string, input io.Reader) (io.Reader, error) {
	switch strings.ToLower(strings.TrimSpace(label)) {
	case "utf-8", "utf8", "us-ascii", "ascii":
		return input, nil
	case "iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "iso_8859-1":
		return charmap.ISO8859_1.NewDecoder().Reader(input), nil
	case "iso-8859-15", "iso8859-15", "latin-9", "latin9":
		return charmap.ISO8859_15.NewDecoder().Reader(input), nil
	case "windows-1252", "cp1252":
		return charmap.Windows1252.NewDecoder().Reader(input), nil
	}
	return nil, fmt.Errorf("unsupported encoding %q", label)
}

// xmlStream is a hardened token reader over the tokenizer: it caps depth,
// checks that end tags match, that there is one root element and no text
// outside it, and keeps the stack of local element names (interned, so
// the names of a 100,000-transaction document are allocated once).
type xmlStream struct {
	g      *guardReader
	t      *tokenizer
	lim    Limits
	stack  []string // local names of the open elements
	pfx    []string // their prefixes, to check end tags
	names  map[string]string
	format string
	entry  string

	rootSeen bool
	rootNS   string // the root element's namespace
}

func newXMLStream(r io.Reader, lim Limits, format string) *xmlStream {
	g := &guardReader{r: r, maxTotal: lim.MaxBytes, maxRun: lim.MaxTokenBytes}
	return &xmlStream{g: g, t: newTokenizer(g, lim.MaxTokenBytes), lim: lim, format: format,
		stack: make([]string, 0, 16), pfx: make([]string, 0, 16), names: make(map[string]string, 64)}
}

func (s *xmlStream) fail(kind error, detail string, err error) *ParseError {
	return &ParseError{Kind: kind, Format: s.format, Entry: s.entry, Offset: s.t.offset(), Detail: detail, Err: err}
}

// maxInterned bounds the table of interned names (a hostile document
// with endless distinct names gets fresh strings past it).
const maxInterned = 1024

func (s *xmlStream) intern(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if v, ok := s.names[string(b)]; ok {
		return v
	}
	v := string(b)
	if len(s.names) < maxInterned {
		s.names[v] = v
	}
	return v
}

// next returns the next token kind (tokStart, tokEnd or tokText; comments
// and processing instructions are skipped) or a *ParseError. At the end of
// the input it returns tokEOF and a nil error. On tokStart the element is
// pushed (its local name is s.up(0)) and its attributes are s.t.attrs; on
// tokText the text is s.t.text; on tokEnd the stack still holds the
// element, popped at the next call.
//
// Elements are identified by local name whatever their prefix; only the
// root element's namespace is resolved (into s.rootNS).
func (s *xmlStream) next(popPending *bool) (tokKind, error) {
	if *popPending {
		s.stack = s.stack[:len(s.stack)-1]
		s.pfx = s.pfx[:len(s.pfx)-1]
		*popPending = false
	}
	kind, err := s.t.next()
	if err != nil {
		if s.g.err != nil {
			return tokEOF, s.fail(s.g.err, "", nil)
		}
		var te *tokError
		if errors.As(err, &te) {
			return tokEOF, s.fail(te.kind, te.detail, nil)
		}
		return tokEOF, s.fail(ErrMalformed, "", err)
	}
	switch kind {
	case tokEOF:
		if len(s.stack) > 0 {
			return tokEOF, s.fail(ErrMalformed, "unexpected end of document", nil)
		}
	case tokText:
		if len(s.stack) == 0 && len(bytes.TrimSpace(s.t.text)) > 0 {
			return tokEOF, s.fail(ErrMalformed, "text outside the root element", nil)
		}
	case tokStart:
		if len(s.stack) >= s.lim.MaxDepth {
			return tokEOF, s.fail(ErrTooDeep, fmt.Sprintf("deeper than %d", s.lim.MaxDepth), nil)
		}
		if len(s.stack) == 0 && s.rootSeen {
			return tokEOF, s.fail(ErrMalformed, "second root element", nil)
		}
		s.stack = append(s.stack, s.intern(s.t.local))
		s.pfx = append(s.pfx, s.intern(s.t.prefix))
		if !s.rootSeen {
			s.rootSeen = true
			ns, ok := rootNamespace(s.t.prefix, s.t.attrs)
			if !ok {
				return tokEOF, s.fail(ErrMalformed, "undeclared namespace prefix on the root element", nil)
			}
			s.rootNS = ns
		}
	case tokEnd:
		n := len(s.stack)
		if n == 0 || s.stack[n-1] != string(s.t.local) || s.pfx[n-1] != string(s.t.prefix) {
			return tokEOF, s.fail(ErrMalformed, "end tag does not match its start tag", nil)
		}
		*popPending = true
	}
	return kind, nil
}

// rootNamespace resolves the namespace of the root element from its own
// declarations (a document's root can only use those).
func rootNamespace(prefix []byte, attrs []rawAttr) (string, bool) {
	for _, a := range attrs {
		if len(prefix) == 0 && len(a.prefix) == 0 && string(a.local) == "xmlns" {
			return string(a.value), true
		}
		if len(prefix) > 0 && string(a.prefix) == "xmlns" && string(a.local) == string(prefix) {
			return string(a.value), true
		}
	}
	return "", len(prefix) == 0
}

func firstWord(b []byte) string {
	f := strings.Fields(string(b[:min(len(b), 20)]))
	if len(f) == 0 {
		return ""
	}
	w := f[0]
	if len(w) > 12 {
		w = w[:12]
	}
	return strings.Map(func(r rune) rune {
		if r < 'A' || r > 'z' {
			return '?'
		}
		return r
	}, w)
}

// parent returns the name n levels above the current element (0 = current).
func (s *xmlStream) up(n int) string {
	i := len(s.stack) - 1 - n
	if i < 0 {
		return ""
	}
	return s.stack[i]
}

// within reports whether name is on the stack.
func (s *xmlStream) within(name string) bool {
	for i := len(s.stack) - 1; i >= 0; i-- {
		if s.stack[i] == name {
			return true
		}
	}
	return false
}
