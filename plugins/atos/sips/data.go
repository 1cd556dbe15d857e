package sips

import (
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"
)

// Limits of the Data decoder.
const (
	// MaxDataLen is the largest Data accepted, in bytes (after base64
	// decoding). Real responses are well under 4 KiB.
	MaxDataLen = 32 << 10
	// MaxFields is the largest number of fields accepted in one Data.
	MaxFields = 256
	// maxKeyLen bounds one field name.
	maxKeyLen = 128
)

// Fields is a decoded Data: field name (dotted for nested fields) to raw
// value (comma-separated for lists).
type Fields map[string]string

// Get returns the value of key, or "".
func (f Fields) Get(key string) string { return f[key] }

// List returns the elements of a list field, nil when absent or empty.
func (f Fields) List(key string) []string {
	v := f[key]
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

// validKey reports whether k is a Sips field name: letters, digits and '_'
// in dot-separated parts, each starting with a letter.
func validKey(k string) bool {
	if k == "" || len(k) > maxKeyLen {
		return false
	}
	start := true
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c >= '0' && c <= '9', c == '_':
			if start {
				return false
			}
		case c == '.':
			if start {
				return false
			}
			start = true
			continue
		default:
			return false
		}
		start = false
	}
	return !start
}

// hasControl reports whether s holds an ASCII control character.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// ValueProblem says why v cannot be carried in a Sips field value ("" when
// it can): not UTF-8, a '|' (Sips Data has no escaping: it would end the
// field, or forge another one in the responses, which Sips writes as Data
// in every mode), or a control character.
func ValueProblem(v string) string {
	switch {
	case !utf8.ValidString(v):
		return "is not UTF-8"
	case strings.IndexByte(v, '|') >= 0:
		return "contains '|', which Sips cannot carry"
	case hasControl(v):
		return "contains a control character"
	}
	return ""
}

// checkValue validates one value for encoding.
func checkValue(key, v string) error {
	if p := ValueProblem(v); p != "" {
		return fmt.Errorf("sips data: value of %s %s", key, p)
	}
	return nil
}

// EncodeData joins fields into a Data string, keys in sorted order (Sips
// does not care about order; sorting makes the output reproducible). It
// refuses malformed keys and values Sips cannot carry.
func EncodeData(fields map[string]string) (string, error) {
	if len(fields) == 0 {
		return "", fmt.Errorf("sips data: no fields")
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		if !validKey(k) {
			return "", fmt.Errorf("sips data: invalid field name %q", k)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		v := fields[k]
		if err := checkValue(k, v); err != nil {
			return "", err
		}
		if i > 0 {
			b.WriteByte('|')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(v)
	}
	return b.String(), nil
}

// ListValue joins list elements with ','. It refuses an element holding
// ',' or '|' (Sips has no escaping) or a control character.
func ListValue(items ...string) (string, error) {
	for _, it := range items {
		if strings.ContainsAny(it, ",|") || hasControl(it) || !utf8.ValidString(it) {
			return "", fmt.Errorf("sips data: list element %q cannot be carried", it)
		}
	}
	return strings.Join(items, ","), nil
}

// ParseData decodes a Data string strictly. Errors are *sdk.RejectError:
// too_large (over MaxDataLen or MaxFields), bad_encoding (not UTF-8) or
// malformed (empty, empty field, no '=', bad key, duplicate key, control
// characters).
func ParseData(data string) (Fields, error) {
	if len(data) > MaxDataLen {
		return nil, reject(RejectTooLarge, "Data is %d bytes, limit %d", len(data), MaxDataLen)
	}
	if data == "" {
		return nil, reject(RejectMalformed, "Data is empty")
	}
	if !utf8.ValidString(data) {
		return nil, reject(RejectBadEncoding, "Data is not valid UTF-8")
	}
	if hasControl(data) {
		return nil, reject(RejectMalformed, "Data contains a control character")
	}
	n := strings.Count(data, "|") + 1
	if n > MaxFields {
		return nil, reject(RejectTooLarge, "Data has %d fields, limit %d", n, MaxFields)
	}
	f := make(Fields, n)
	rest := data
	for i := 0; ; i++ {
		seg := rest
		idx := strings.IndexByte(rest, '|')
		if idx >= 0 {
			seg = rest[:idx]
		}
		if seg == "" {
			return nil, reject(RejectMalformed, "Data field %d is empty", i+1)
		}
		eq := strings.IndexByte(seg, '=')
		if eq < 0 {
			return nil, reject(RejectMalformed, "Data field %d has no '='", i+1)
		}
		k, v := seg[:eq], seg[eq+1:]
		if !validKey(k) {
			return nil, reject(RejectMalformed, "Data field %d has an invalid name %q", i+1, clip(k, 40))
		}
		if _, dup := f[k]; dup {
			return nil, reject(RejectMalformed, "Data has field %s twice", k)
		}
		f[k] = v
		if idx < 0 {
			break
		}
		rest = rest[idx+1:]
	}
	return f, nil
}

// clip shortens s for an error message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
