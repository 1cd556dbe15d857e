// Package acks parses the acknowledgements banks send back after an upload
// (PSR pain.002 payment status reports, HAC pain.002 customer protocols and
// PTK plain-text protocols), and matches and merges them into the state of
// the transmission they acknowledge. Everything here is pure Go with no I/O
// besides the io.Reader handed in: the EBICS client downloads, the
// transmissions package stores.
//
// Every input is treated as hostile: DOCTYPE and entity declarations are
// refused before anything is expanded, element depth, token size and total
// size are capped, and every failure is a *ParseError whose Kind is one of
// the sentinel errors below (test with errors.Is).
package acks

import (
	"errors"
	"fmt"
)

// Sentinel error kinds. A *ParseError unwraps to exactly one of them.
var (
	// ErrDTD: the document carries a DOCTYPE or an entity declaration
	// (XXE, billion laughs); it is refused before anything is expanded.
	ErrDTD = errors.New("DOCTYPE or entity declaration refused")
	// ErrTooDeep: element nesting deeper than Limits.MaxDepth.
	ErrTooDeep = errors.New("element nesting too deep")
	// ErrTokenTooLarge: a text, attribute, comment or tag longer than
	// Limits.MaxTokenBytes.
	ErrTokenTooLarge = errors.New("token too large")
	// ErrTooLarge: the input is longer than Limits.MaxBytes (or a ZIP entry
	// inflates beyond it).
	ErrTooLarge = errors.New("input too large")
	// ErrNotPain002: well-formed XML whose root is not a pain.002 document.
	ErrNotPain002 = errors.New("not a pain.002 document")
	// ErrMalformed: not well-formed XML, bad encoding, or a structure the
	// parser cannot make sense of (several groups, empty document...).
	ErrMalformed = errors.New("malformed document")
	// ErrTooMany: more repeated elements (reasons, AddtlInf, identifiers,
	// collected transactions, ZIP entries) than the limits allow.
	ErrTooMany = errors.New("too many elements")
	// ErrContainer: a broken or hostile ZIP container (bad archive,
	// encrypted or unsupported entry, nested archive, path tricks).
	ErrContainer = errors.New("bad acknowledgement container")
	// ErrPTK: a PTK profile that cannot be used (bad pattern, missing
	// named group) or a PTK text that is not text.
	ErrPTK = errors.New("bad PTK protocol")
)

// ParseError describes why an acknowledgement was refused.
type ParseError struct {
	Kind   error  // one of the Err* sentinels
	Format string // "psr", "hac", "ptk", "zip"
	Entry  string // ZIP entry name, when inside a container
	Offset int64  // byte offset in the (decompressed) input, when known
	Detail string // human-readable detail, never the raw hostile input
	Err    error  // underlying error, if any
}

// Error implements error.
func (e *ParseError) Error() string {
	s := "acks " + e.Format
	if e.Entry != "" {
		s += " entry " + e.Entry
	}
	s += fmt.Sprintf(" at byte %d: %v", e.Offset, e.Kind)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap lets errors.Is match both the kind and the underlying error.
func (e *ParseError) Unwrap() []error {
	if e.Err != nil {
		return []error{e.Kind, e.Err}
	}
	return []error{e.Kind}
}

// Limits caps what a parser accepts. Zero fields take the defaults of
// DefaultLimits.
type Limits struct {
	MaxBytes      int64 // total input (after decompression); default 1 GiB
	MaxDepth      int   // element nesting; default 48
	MaxTokenBytes int   // one text/attribute/tag; default 64 KiB
	MaxRepeat     int   // reasons / AddtlInf / Othr per owner; default 256
	MaxCollect    int   // transactions kept by ReadPSR; default 200,000
	MaxZipEntries int   // entries in a ZIP container; default 1,000
}

// DefaultLimits are the limits used for zero fields.
var DefaultLimits = Limits{
	MaxBytes:      1 << 30,
	MaxDepth:      48,
	MaxTokenBytes: 64 << 10,
	MaxRepeat:     256,
	MaxCollect:    200_000,
	MaxZipEntries: 1000,
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	if l.MaxBytes > 0 {
		d.MaxBytes = l.MaxBytes
	}
	if l.MaxDepth > 0 {
		d.MaxDepth = l.MaxDepth
	}
	if l.MaxTokenBytes > 0 {
		d.MaxTokenBytes = l.MaxTokenBytes
	}
	if l.MaxRepeat > 0 {
		d.MaxRepeat = l.MaxRepeat
	}
	if l.MaxCollect > 0 {
		d.MaxCollect = l.MaxCollect
	}
	if l.MaxZipEntries > 0 {
		d.MaxZipEntries = l.MaxZipEntries
	}
	return d
}
