// Package protocol holds what the EBICS client and the bank simulator share:
// hardened XML parsing, the X002 authentication signature, the A005/A006
// order signatures, E002 encryption, key hashes, compression, segmentation,
// the request/response messages of EBICS 2.5 (H004) and 3.0 (H005), and the
// return code table.
package protocol

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/beevik/etree"
)

// DefaultMaxXML is the default cap on the size of one EBICS message.
const DefaultMaxXML = 8 << 20

// XMLError is returned for XML input that is refused before or during
// parsing.
type XMLError struct {
	Kind   string // "doctype", "too_large", "malformed", "unexpected"
	Detail string
}

// Error implements error.
func (e *XMLError) Error() string { return fmt.Sprintf("ebics xml %s: %s", e.Kind, e.Detail) }

// Is lets errors.Is match an *XMLError by Kind against the sentinels.
func (e *XMLError) Is(target error) bool {
	t, ok := target.(*XMLError)
	return ok && t.Detail == "" && t.Kind == e.Kind
}

// Sentinels for errors.Is.
var (
	// ErrDoctype matches XML carrying a DOCTYPE or ENTITY declaration.
	ErrDoctype = &XMLError{Kind: "doctype"}
	// ErrTooLarge matches input above the configured size cap.
	ErrTooLarge = &XMLError{Kind: "too_large"}
	// ErrMalformed matches input that is not well-formed XML.
	ErrMalformed = &XMLError{Kind: "malformed"}
	// ErrUnexpected matches well-formed XML that is not the expected message.
	ErrUnexpected = &XMLError{Kind: "unexpected"}
)

func xmlErr(kind, format string, args ...any) error {
	return &XMLError{Kind: kind, Detail: fmt.Sprintf(format, args...)}
}

// ParseXML parses data into an etree document after refusing anything that
// could make a parser expand entities (DOCTYPE, ENTITY) and anything larger
// than max bytes (max <= 0 means DefaultMaxXML). Nothing is ever expanded.
func ParseXML(data []byte, max int) (*etree.Document, error) {
	if max <= 0 {
		max = DefaultMaxXML
	}
	if len(data) > max {
		return nil, xmlErr("too_large", "%d bytes, limit %d", len(data), max)
	}
	if bytes.Contains(data, []byte("<!")) {
		// Allow CDATA sections and comments only; DOCTYPE/ENTITY/ELEMENT/
		// ATTLIST declarations are refused outright.
		for i := 0; i < len(data); {
			j := bytes.Index(data[i:], []byte("<!"))
			if j < 0 {
				break
			}
			rest := data[i+j+2:]
			if !bytes.HasPrefix(rest, []byte("--")) && !bytes.HasPrefix(rest, []byte("[CDATA[")) {
				return nil, xmlErr("doctype", "markup declaration at byte %d refused", i+j)
			}
			i += j + 2
		}
	}
	doc := etree.NewDocument()
	doc.ReadSettings.Permissive = false
	if err := doc.ReadFromBytes(data); err != nil {
		return nil, xmlErr("malformed", "%v", err)
	}
	if doc.Root() == nil {
		return nil, xmlErr("malformed", "no root element")
	}
	if depth(doc.Root(), 0) > 64 {
		return nil, xmlErr("malformed", "elements nested too deep")
	}
	return doc, nil
}

func depth(e *etree.Element, d int) int {
	if d > 64 {
		return d
	}
	m := d
	for _, c := range e.ChildElements() {
		if x := depth(c, d+1); x > m {
			m = x
		}
	}
	return m
}

// IsXMLError reports whether err is an *XMLError.
func IsXMLError(err error) bool {
	var x *XMLError
	return errors.As(err, &x)
}
