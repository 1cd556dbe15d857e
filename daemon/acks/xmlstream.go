package acks

import (
	"bytes"
	"encoding/xml"
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

// xmlStream is a hardened token reader: it refuses directives (DOCTYPE,
// ENTITY), caps depth and token size, and keeps the stack of local element
// names.
type xmlStream struct {
	g      *guardReader
	d      *xml.Decoder
	lim    Limits
	stack  []string // local names of the open elements
	pfx    []string // their prefixes, to check end tags
	format string
	entry  string

	rootSeen bool
}

func newXMLStream(r io.Reader, lim Limits, format string) *xmlStream {
	g := &guardReader{r: r, maxTotal: lim.MaxBytes, maxRun: lim.MaxTokenBytes}
	d := xml.NewDecoder(g)
	d.Strict = true
	d.CharsetReader = charsetReader
	return &xmlStream{g: g, d: d, lim: lim, format: format, stack: make([]string, 0, 16)}
}

func (s *xmlStream) fail(kind error, detail string, err error) *ParseError {
	return &ParseError{Kind: kind, Format: s.format, Entry: s.entry, Offset: s.d.InputOffset(), Detail: detail, Err: err}
}

// next returns the next token (StartElement, EndElement or CharData;
// comments and processing instructions are skipped) or a *ParseError.
// At the end of the input it returns io.EOF. The stack is pushed on
// StartElement and popped after the EndElement has been returned.
//
// It reads raw tokens (no namespace translation, which costs about a third
// of the decoding time) and checks end tags itself. Only the root element's
// namespace is resolved (into Name.Space); inner elements are identified by
// local name, whatever their prefix.
func (s *xmlStream) next(popPending *bool) (xml.Token, error) {
	if *popPending {
		s.stack = s.stack[:len(s.stack)-1]
		s.pfx = s.pfx[:len(s.pfx)-1]
		*popPending = false
	}
	for {
		tok, err := s.d.RawToken()
		if err != nil {
			if s.g.err != nil {
				return nil, s.fail(s.g.err, "", nil)
			}
			if errors.Is(err, io.EOF) {
				if len(s.stack) > 0 {
					return nil, s.fail(ErrMalformed, "unexpected end of document", nil)
				}
				return nil, io.EOF
			}
			return nil, s.fail(ErrMalformed, "", err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return nil, s.fail(ErrDTD, "directive <!"+firstWord(t)+"...> refused", nil)
		case xml.Comment:
			if len(t) > s.lim.MaxTokenBytes {
				return nil, s.fail(ErrTokenTooLarge, "comment", nil)
			}
			continue
		case xml.ProcInst:
			if len(t.Inst) > s.lim.MaxTokenBytes {
				return nil, s.fail(ErrTokenTooLarge, "processing instruction", nil)
			}
			continue
		case xml.CharData:
			if len(t) > s.lim.MaxTokenBytes {
				return nil, s.fail(ErrTokenTooLarge, "text", nil)
			}
			if len(s.stack) == 0 && len(bytes.TrimSpace(t)) > 0 && !bytes.Equal(bytes.TrimSpace(t), []byte("\ufeff")) {
				return nil, s.fail(ErrMalformed, "text outside the root element", nil)
			}
			return t, nil
		case xml.StartElement:
			if len(s.stack) >= s.lim.MaxDepth {
				return nil, s.fail(ErrTooDeep, fmt.Sprintf("deeper than %d", s.lim.MaxDepth), nil)
			}
			if len(s.stack) == 0 && s.seenRoot() {
				return nil, s.fail(ErrMalformed, "second root element", nil)
			}
			for _, a := range t.Attr {
				if len(a.Value) > s.lim.MaxTokenBytes {
					return nil, s.fail(ErrTokenTooLarge, "attribute", nil)
				}
			}
			s.stack = append(s.stack, t.Name.Local)
			s.pfx = append(s.pfx, t.Name.Space)
			if !s.rootSeen {
				s.rootSeen = true
				ns, ok := rootNamespace(t)
				if !ok {
					return nil, s.fail(ErrMalformed, "undeclared namespace prefix on the root element", nil)
				}
				t.Name.Space = ns
			}
			return t, nil
		case xml.EndElement:
			n := len(s.stack)
			if n == 0 || s.stack[n-1] != t.Name.Local || s.pfx[n-1] != t.Name.Space {
				return nil, s.fail(ErrMalformed, "end tag does not match its start tag", nil)
			}
			*popPending = true
			return t, nil
		}
	}
}

func (s *xmlStream) seenRoot() bool { return s.rootSeen }

// rootNamespace resolves the namespace of a raw root element from its own
// declarations (a document's root can only use those).
func rootNamespace(t xml.StartElement) (string, bool) {
	prefix := t.Name.Space
	for _, a := range t.Attr {
		if prefix == "" && a.Name.Space == "" && a.Name.Local == "xmlns" {
			return a.Value, true
		}
		if prefix != "" && a.Name.Space == "xmlns" && a.Name.Local == prefix {
			return a.Value, true
		}
	}
	return "", prefix == ""
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
