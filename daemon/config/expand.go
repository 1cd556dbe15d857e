package config

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// expandEnv replaces ${VAR} and ${VAR:-default} in s. "$${" stands for a
// literal "${". A lone "$" is kept as is. An unset variable without a
// default, a malformed reference or an unterminated one is an error.
// ${VAR:-default} uses default when VAR is unset or empty.
func expandEnv(s string, lookup func(string) (string, bool)) (string, error) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c != '$' {
			b.WriteByte(c)
			i++
			continue
		}
		if strings.HasPrefix(s[i:], "$${") {
			b.WriteString("${")
			i += 3
			continue
		}
		if !strings.HasPrefix(s[i:], "${") {
			b.WriteByte(c)
			i++
			continue
		}
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			return "", fmt.Errorf("unterminated ${ in %s", strconv.Quote(s))
		}
		ref := s[i+2 : i+2+end]
		name, def, hasDef := strings.Cut(ref, ":-")
		if !validEnvName(name) {
			return "", fmt.Errorf("invalid environment variable reference ${%s}", ref)
		}
		v, ok := lookup(name)
		switch {
		case hasDef && v == "":
			v = def
		case !ok:
			return "", fmt.Errorf("environment variable %s is not set (use ${%s:-default} for a default)", name, name)
		}
		b.WriteString(v)
		i += 2 + end + 1
	}
	return b.String(), nil
}

func validEnvName(n string) bool {
	if n == "" {
		return false
	}
	for i, r := range n {
		if r != '_' && !(r < unicode.MaxASCII && (unicode.IsLetter(r) || (i > 0 && unicode.IsDigit(r)))) {
			return false
		}
	}
	return true
}
