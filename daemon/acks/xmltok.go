package acks

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
)

// tokKind is the kind of token the tokenizer returns.
type tokKind uint8

const (
	tokEOF   tokKind = iota // end of input
	tokStart                // start tag (an empty element is a start then an end)
	tokEnd                  // end tag
	tokText                 // character data (text, entity-decoded, or a CDATA section)
)

// rawAttr is one attribute of the current start tag. The slices point
// into the tokenizer's buffers and are valid until the next call.
type rawAttr struct {
	prefix, local, value []byte
}

// tokError is a refusal found by the tokenizer: an error kind (ErrDTD,
// ErrMalformed, ErrTokenTooLarge) and a short detail that never quotes
// the input at length.
type tokError struct {
	kind   error
	detail string
}

func (e *tokError) Error() string { return e.detail }

func malformed(format string, args ...any) *tokError {
	return &tokError{kind: ErrMalformed, detail: fmt.Sprintf(format, args...)}
}

// tokenizer is a strict, non-validating XML 1.0 pull tokenizer for
// acknowledgements. It replaces encoding/xml on this path because it
// allocates nothing per token (names, text and attributes are slices of
// its own buffers) and it is hardened by construction:
//   - any <!...> other than a comment or a CDATA section (DOCTYPE, ENTITY,
//     ELEMENT...) is refused with ErrDTD, so no entity is ever declared;
//   - only the five predefined entities and character references are
//     decoded; any other reference is ErrMalformed;
//   - every token (tag, text, comment, CDATA section, processing
//     instruction) is bounded by maxTok bytes (ErrTokenTooLarge), so the
//     buffer never grows past maxTok plus a little;
//   - text and attribute values must be valid UTF-8 made of XML
//     characters; names must be well formed; attribute values quoted and
//     unique; the XML declaration only at the very start.
//
// The element structure (matching end tags, one root, depth) is checked
// by xmlStream above it.
type tokenizer struct {
	src    io.Reader
	buf    []byte
	pos    int   // next unread byte in buf
	end    int   // end of the data in buf
	off    int64 // input offset of buf[0]
	eof    bool
	rerr   error // a read error other than io.EOF
	maxTok int
	maxBuf int

	started    bool // a token or byte has been consumed (declaration no longer allowed)
	pendingEnd bool // an empty element's end tag is due

	// The current token.
	prefix, local []byte
	attrs         []rawAttr
	text          []byte
	scratch       []byte // decoded text and attribute values (cap fixed: never reallocated)
}

func newTokenizer(src io.Reader, maxTok int) *tokenizer {
	maxBuf := maxTok + 4096
	size := min(64<<10, maxBuf)
	return &tokenizer{src: src, buf: make([]byte, size), maxTok: maxTok, maxBuf: maxBuf,
		scratch: make([]byte, 0, maxTok+64), attrs: make([]rawAttr, 0, 8)}
}

// offset is the input offset of the next unread byte (after charset
// decoding, if any).
func (t *tokenizer) offset() int64 { return t.off + int64(t.pos) }

// fill reads more input, compacting and (up to maxBuf) growing the buffer.
// It reports whether new bytes arrived.
func (t *tokenizer) fill() bool {
	if t.eof || t.rerr != nil {
		return false
	}
	if t.pos > 0 {
		copy(t.buf, t.buf[t.pos:t.end])
		t.off += int64(t.pos)
		t.end -= t.pos
		t.pos = 0
	}
	if t.end == len(t.buf) {
		if len(t.buf) >= t.maxBuf {
			return false
		}
		nb := make([]byte, min(2*len(t.buf), t.maxBuf))
		copy(nb, t.buf[:t.end])
		t.buf = nb
	}
	for tries := 0; tries < 100; tries++ {
		n, err := t.src.Read(t.buf[t.end:])
		t.end += n
		if err != nil {
			if errors.Is(err, io.EOF) {
				t.eof = true
			} else {
				t.rerr = err
			}
			return n > 0
		}
		if n > 0 {
			return true
		}
	}
	t.rerr = io.ErrNoProgress
	return false
}

// ensure makes at least n bytes available from pos, unless the input ends.
func (t *tokenizer) ensure(n int) bool {
	for t.end-t.pos < n {
		if !t.fill() {
			return false
		}
	}
	return true
}

// index returns the offset from pos of the first c at or after from,
// reading as needed; -1 at the end of the input. A token longer than
// maxTok is refused.
func (t *tokenizer) index(from int, c byte) (int, error) {
	for {
		if i := bytes.IndexByte(t.buf[t.pos+from:t.end], c); i >= 0 {
			if from+i > t.maxTok+16 {
				return 0, &tokError{kind: ErrTokenTooLarge, detail: "token longer than the limit"}
			}
			return from + i, nil
		}
		from = t.end - t.pos
		if from > t.maxTok+16 {
			return 0, &tokError{kind: ErrTokenTooLarge, detail: "token longer than the limit"}
		}
		if !t.fill() {
			if t.rerr != nil {
				return 0, t.rerr
			}
			return -1, nil
		}
	}
}

// indexSeq is index for a delimiter sequence (such as "-->").
func (t *tokenizer) indexSeq(from int, seq string) (int, error) {
	for {
		i, err := t.index(from, seq[0])
		if err != nil || i < 0 {
			return i, err
		}
		if !t.ensure(i + len(seq)) {
			if t.rerr != nil {
				return 0, t.rerr
			}
			return -1, nil
		}
		if string(t.buf[t.pos+i:t.pos+i+len(seq)]) == seq {
			return i, nil
		}
		from = i + 1
	}
}

// tagEnd returns the offset from pos of the '>' closing the tag that
// starts at pos, skipping quoted attribute values.
func (t *tokenizer) tagEnd() (int, error) {
	var quote byte
	i := 1
	for {
		for ; t.pos+i < t.end; i++ {
			c := t.buf[t.pos+i]
			switch {
			case quote != 0:
				if c == quote {
					quote = 0
				} else if c == '<' {
					return 0, malformed("'<' in an attribute value")
				}
			case c == '"' || c == '\'':
				quote = c
			case c == '>':
				return i, nil
			case c == '<':
				return 0, malformed("'<' inside a tag")
			}
		}
		if i > t.maxTok+16 {
			return 0, &tokError{kind: ErrTokenTooLarge, detail: "tag longer than the limit"}
		}
		if !t.fill() {
			if t.rerr != nil {
				return 0, t.rerr
			}
			return 0, malformed("unexpected end of document inside a tag")
		}
	}
}

// next reads the next start tag, end tag or text; comments and processing
// instructions are skipped. At the end of the input it returns tokEOF.
func (t *tokenizer) next() (tokKind, error) {
	if t.pendingEnd {
		t.pendingEnd = false
		return tokEnd, nil
	}
	for {
		if t.pos >= t.end && !t.fill() {
			if t.rerr != nil {
				return tokEOF, t.rerr
			}
			return tokEOF, nil
		}
		if !t.started {
			t.started = true
			// A UTF-8 byte order mark is not content.
			if t.ensure(3) && bytes.HasPrefix(t.buf[t.pos:t.end], []byte("\xef\xbb\xbf")) {
				t.pos += 3
			}
			if t.ensure(6) && bytes.HasPrefix(t.buf[t.pos:t.end], []byte("<?xml")) && isSpace(t.buf[t.pos+5]) {
				if err := t.declaration(); err != nil {
					return tokEOF, err
				}
			}
			continue
		}
		if t.buf[t.pos] != '<' {
			return t.charData()
		}
		if !t.ensure(2) {
			return tokEOF, malformed("unexpected end of document after '<'")
		}
		switch t.buf[t.pos+1] {
		case '/':
			return t.endTag()
		case '?':
			if err := t.procInst(); err != nil {
				return tokEOF, err
			}
		case '!':
			kind, skip, err := t.bang()
			if err != nil || !skip {
				return kind, err
			}
		default:
			return t.startTag()
		}
	}
}

func (t *tokenizer) charData() (tokKind, error) {
	i, err := t.index(0, '<')
	if err != nil {
		return tokEOF, err
	}
	if i < 0 {
		i = t.end - t.pos
	}
	if i > t.maxTok {
		return tokEOF, &tokError{kind: ErrTokenTooLarge, detail: "text longer than the limit"}
	}
	raw := t.buf[t.pos : t.pos+i]
	t.scratch = t.scratch[:0]
	txt, err := t.decode(raw, false)
	if err != nil {
		return tokEOF, err
	}
	t.text = txt
	t.pos += i
	return tokText, nil
}

// decode validates raw text (or an attribute value) and resolves its
// references and line ends. Without any, raw itself is returned.
func (t *tokenizer) decode(raw []byte, attr bool) ([]byte, error) {
	if attr && bytes.IndexByte(raw, '<') >= 0 {
		return nil, malformed("'<' in an attribute value")
	}
	if !attr && bytes.Contains(raw, []byte("]]>")) {
		return nil, malformed("']]>' in text")
	}
	if !validChars(raw) {
		return nil, malformed("invalid character or encoding")
	}
	if bytes.IndexByte(raw, '&') < 0 && bytes.IndexByte(raw, '\r') < 0 {
		return raw, nil
	}
	start := len(t.scratch)
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch c {
		case '\r':
			t.scratch = append(t.scratch, '\n')
			if i+1 < len(raw) && raw[i+1] == '\n' {
				i++
			}
		case '&':
			j := bytes.IndexByte(raw[i:], ';')
			if j < 0 || j > 12 {
				return nil, malformed("unterminated entity reference")
			}
			ref := raw[i+1 : i+j]
			r, ok := entity(ref)
			if !ok {
				return nil, malformed("undeclared entity reference")
			}
			t.scratch = utf8.AppendRune(t.scratch, r)
			i += j
		default:
			t.scratch = append(t.scratch, c)
		}
	}
	return t.scratch[start:], nil
}

// entity resolves a predefined entity or a character reference.
func entity(ref []byte) (rune, bool) {
	switch string(ref) {
	case "lt":
		return '<', true
	case "gt":
		return '>', true
	case "amp":
		return '&', true
	case "apos":
		return '\'', true
	case "quot":
		return '"', true
	}
	if len(ref) < 2 || ref[0] != '#' {
		return 0, false
	}
	base, digits := 10, ref[1:]
	if digits[0] == 'x' {
		base, digits = 16, digits[1:]
	}
	if len(digits) == 0 || digits[0] == '+' || digits[0] == '-' {
		return 0, false
	}
	n, err := strconv.ParseUint(string(digits), base, 32)
	if err != nil || !isXMLChar(rune(n)) {
		return 0, false
	}
	return rune(n), true
}

func isXMLChar(r rune) bool {
	return r == '\t' || r == '\n' || r == '\r' || r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}

// validChars reports whether b is UTF-8 made of XML characters only.
func validChars(b []byte) bool {
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 || !isXMLChar(r) {
			return false
		}
		i += n
	}
	return true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// nameByte classifies the bytes of names: 1 may start a name (letters,
// '_', any byte of a multi-byte UTF-8 sequence), 2 may only follow
// (digits, '-', '.').
var nameByte = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_', c >= utf8.RuneSelf:
			t[c] = 1
		case c >= '0' && c <= '9', c == '-', c == '.':
			t[c] = 2
		}
	}
	return t
}()

// name reads a (possibly prefixed) name at the start of b and returns its
// prefix, local part and length.
func name(b []byte) (prefix, local []byte, n int, err error) {
	colon := -1
	ascii := true
	for n < len(b) {
		c := b[n]
		if c == ':' {
			if colon >= 0 || n == 0 {
				return nil, nil, 0, malformed("bad name")
			}
			colon = n
			n++
			continue
		}
		k := nameByte[c]
		if k == 0 || k == 2 && (n == 0 || n == colon+1) {
			break
		}
		ascii = ascii && c < utf8.RuneSelf
		n++
	}
	if n == 0 || n == colon+1 || !ascii && !utf8.Valid(b[:n]) {
		return nil, nil, 0, malformed("bad name")
	}
	if colon < 0 {
		return nil, b[:n], n, nil
	}
	return b[:colon], b[colon+1 : n], n, nil
}

func (t *tokenizer) endTag() (tokKind, error) {
	i, err := t.index(2, '>')
	if err != nil {
		return tokEOF, err
	}
	if i < 0 {
		return tokEOF, malformed("unexpected end of document inside an end tag")
	}
	body := t.buf[t.pos+2 : t.pos+i]
	prefix, local, n, err := name(body)
	if err != nil {
		return tokEOF, err
	}
	for _, c := range body[n:] {
		if !isSpace(c) {
			return tokEOF, malformed("junk in an end tag")
		}
	}
	t.prefix, t.local = prefix, local
	t.pos += i + 1
	return tokEnd, nil
}

func (t *tokenizer) startTag() (tokKind, error) {
	i, err := t.tagEnd()
	if err != nil {
		return tokEOF, err
	}
	body := t.buf[t.pos+1 : t.pos+i]
	empty := len(body) > 0 && body[len(body)-1] == '/'
	if empty {
		body = body[:len(body)-1]
	}
	prefix, local, n, err := name(body)
	if err != nil {
		return tokEOF, err
	}
	t.prefix, t.local = prefix, local
	t.attrs = t.attrs[:0]
	t.scratch = t.scratch[:0]
	rest := body[n:]
	for {
		k := 0
		for k < len(rest) && isSpace(rest[k]) {
			k++
		}
		if k == len(rest) {
			break
		}
		if k == 0 {
			return tokEOF, malformed("attributes must be separated by spaces")
		}
		rest = rest[k:]
		ap, al, n, err := name(rest)
		if err != nil {
			return tokEOF, err
		}
		rest = rest[n:]
		for len(rest) > 0 && isSpace(rest[0]) {
			rest = rest[1:]
		}
		if len(rest) == 0 || rest[0] != '=' {
			return tokEOF, malformed("attribute without a value")
		}
		rest = rest[1:]
		for len(rest) > 0 && isSpace(rest[0]) {
			rest = rest[1:]
		}
		if len(rest) == 0 || rest[0] != '"' && rest[0] != '\'' {
			return tokEOF, malformed("unquoted attribute value")
		}
		q := bytes.IndexByte(rest[1:], rest[0])
		if q < 0 {
			return tokEOF, malformed("unterminated attribute value")
		}
		val, err := t.decode(rest[1:1+q], true)
		if err != nil {
			return tokEOF, err
		}
		rest = rest[q+2:]
		for _, a := range t.attrs {
			if bytes.Equal(a.prefix, ap) && bytes.Equal(a.local, al) {
				return tokEOF, malformed("duplicate attribute")
			}
		}
		t.attrs = append(t.attrs, rawAttr{prefix: ap, local: al, value: val})
	}
	t.pos += i + 1
	t.pendingEnd = empty
	return tokStart, nil
}

// procInst skips a processing instruction; the XML declaration is only
// allowed at the very start (handled by declaration).
func (t *tokenizer) procInst() error {
	i, err := t.indexSeq(2, "?>")
	if err != nil {
		return err
	}
	if i < 0 {
		return malformed("unexpected end of document inside a processing instruction")
	}
	_, target, _, err := name(t.buf[t.pos+2 : t.pos+i])
	if err != nil {
		return malformed("bad processing instruction target")
	}
	if len(target) == 3 && bytes.EqualFold(target, []byte("xml")) {
		return malformed("XML declaration not at the start")
	}
	t.pos += i + 2
	return nil
}

// declaration reads the XML declaration: version 1.0 only, and the
// encoding, which switches the input to a charset decoder when it is not
// UTF-8.
func (t *tokenizer) declaration() error {
	i, err := t.indexSeq(2, "?>")
	if err != nil {
		return err
	}
	if i < 0 {
		return malformed("unexpected end of document inside the XML declaration")
	}
	body := t.buf[t.pos+5 : t.pos+i]
	if v, ok := pseudoAttr(body, "version"); ok && v != "1.0" {
		return malformed("unsupported XML version")
	}
	enc, hasEnc := pseudoAttr(body, "encoding")
	t.pos += i + 2
	if !hasEnc {
		return nil
	}
	dec, err := charsetReader(enc, t.src)
	if err != nil {
		return malformed("unsupported encoding")
	}
	if dec == t.src {
		return nil
	}
	// The rest of the buffer was read before the encoding was known: it
	// goes through the decoder too.
	rest := bytes.Clone(t.buf[t.pos:t.end])
	t.off += int64(t.pos)
	t.pos, t.end = 0, 0
	src := t.src
	dec, _ = charsetReader(enc, io.MultiReader(bytes.NewReader(rest), src))
	t.src = dec
	return nil
}

// pseudoAttr finds name="value" (or single quotes) in an XML declaration.
func pseudoAttr(body []byte, key string) (string, bool) {
	i := bytes.Index(body, []byte(key))
	if i < 0 {
		return "", false
	}
	rest := bytes.TrimLeft(body[i+len(key):], " \t\r\n")
	if len(rest) == 0 || rest[0] != '=' {
		return "", false
	}
	rest = bytes.TrimLeft(rest[1:], " \t\r\n")
	if len(rest) == 0 || rest[0] != '"' && rest[0] != '\'' {
		return "", false
	}
	j := bytes.IndexByte(rest[1:], rest[0])
	if j < 0 || j > 40 {
		return "", false
	}
	return string(rest[1 : 1+j]), true
}

// bang handles "<!": comments are skipped, CDATA sections are text,
// anything else (DOCTYPE, ENTITY...) is refused with ErrDTD.
func (t *tokenizer) bang() (kind tokKind, skip bool, err error) {
	t.ensure(9)
	b := t.buf[t.pos:t.end]
	switch {
	case bytes.HasPrefix(b, []byte("<!--")):
		i, err := t.indexSeq(4, "--")
		for err == nil && i >= 0 {
			if !t.ensure(i + 3) {
				return tokEOF, false, malformed("unexpected end of document inside a comment")
			}
			if t.buf[t.pos+i+2] != '>' {
				return tokEOF, false, malformed("'--' inside a comment")
			}
			if !validChars(t.buf[t.pos+4 : t.pos+i]) {
				return tokEOF, false, malformed("invalid character or encoding in a comment")
			}
			t.pos += i + 3
			return tokEOF, true, nil
		}
		if err != nil {
			return tokEOF, false, err
		}
		return tokEOF, false, malformed("unexpected end of document inside a comment")
	case bytes.HasPrefix(b, []byte("<![CDATA[")):
		i, err := t.indexSeq(9, "]]>")
		if err != nil {
			return tokEOF, false, err
		}
		if i < 0 {
			return tokEOF, false, malformed("unexpected end of document inside CDATA")
		}
		if i-9 > t.maxTok {
			return tokEOF, false, &tokError{kind: ErrTokenTooLarge, detail: "CDATA longer than the limit"}
		}
		raw := t.buf[t.pos+9 : t.pos+i]
		if !validChars(raw) {
			return tokEOF, false, malformed("invalid character or encoding in CDATA")
		}
		t.text = raw
		t.pos += i + 3
		return tokText, false, nil
	}
	return tokEOF, false, &tokError{kind: ErrDTD, detail: "directive <!" + firstWord(b[2:min(len(b), 22)]) + "...> refused"}
}
