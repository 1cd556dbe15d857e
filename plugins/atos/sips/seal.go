package sips

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// SealAlgorithm is how a seal is computed.
type SealAlgorithm string

// The seal algorithms.
const (
	// HMACSHA256 is HMAC-SHA-256(message, secretKey), lowercase hex.
	HMACSHA256 SealAlgorithm = "HMAC-SHA-256"
	// SHA256 is the legacy SHA-256(message + secretKey), lowercase hex.
	SHA256 SealAlgorithm = "SHA-256"
)

// ParseSealAlgorithm accepts "HMAC-SHA-256" and "SHA-256" (case
// insensitive; "" means HMAC-SHA-256).
func ParseSealAlgorithm(s string) (SealAlgorithm, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "", "HMAC-SHA-256", "HMAC-SHA256":
		return HMACSHA256, nil
	case "SHA-256", "SHA256":
		return SHA256, nil
	}
	return "", fmt.Errorf("sips: unknown seal algorithm %q (HMAC-SHA-256 or SHA-256)", s)
}

// ComputeSeal returns the lowercase hex seal of msg under key.
func ComputeSeal(alg SealAlgorithm, msg, key string) string {
	var sum []byte
	if alg == SHA256 {
		h := sha256.New()
		io.WriteString(h, msg)
		io.WriteString(h, key)
		sum = h.Sum(nil)
	} else {
		m := hmac.New(sha256.New, []byte(key))
		io.WriteString(m, msg)
		sum = m.Sum(nil)
	}
	return hex.EncodeToString(sum)
}

// CheckSeal reports whether got is the seal of msg under key, comparing in
// constant time. Hex case is ignored; any other malformation fails.
func CheckSeal(alg SealAlgorithm, msg, key, got string) bool {
	if len(got) != sha256.Size*2 {
		return false
	}
	want := ComputeSeal(alg, msg, key)
	return hmac.Equal([]byte(want), []byte(strings.ToLower(got)))
}

// jsonSealExcluded lists the top-level fields left out of a JSON seal.
var jsonSealExcluded = map[string]bool{"keyVersion": true, "seal": true, "sealAlgorithm": true}

// MaxJSONDepth bounds nesting in JSON messages.
const MaxJSONDepth = 16

// FlattenJSON returns the string a JSON seal is computed over: the leaf
// values of the object in raw, fields in alphabetical order of their names
// (recursively), arrays in order, without the top-level keyVersion, seal
// and sealAlgorithm. It also returns the top-level string and number
// fields as text (nested fields dotted, arrays comma-joined) for callers
// that read the message. Duplicate member names, nesting deeper than
// MaxJSONDepth and trailing data are refused as malformed.
func FlattenJSON(raw []byte) (string, Fields, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	v, err := readValue(dec, 0)
	if err != nil {
		return "", nil, reject(RejectMalformed, "json: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", nil, reject(RejectMalformed, "json: trailing data after the object")
	}
	obj, ok := v.(jsonObject)
	if !ok {
		return "", nil, reject(RejectMalformed, "json: not an object")
	}
	var b strings.Builder
	for _, k := range obj.sortedKeys() {
		if jsonSealExcluded[k] {
			continue
		}
		writeLeaves(&b, obj.m[k])
	}
	fields := Fields{}
	for k, val := range obj.m {
		collectFields(fields, k, val)
	}
	return b.String(), fields, nil
}

// SealJSON computes the JSON seal of raw under key (always HMAC-SHA-256
// unless alg says SHA256).
func SealJSON(alg SealAlgorithm, raw []byte, key string) (string, error) {
	s, _, err := FlattenJSON(raw)
	if err != nil {
		return "", err
	}
	return ComputeSeal(alg, s, key), nil
}

type jsonObject struct{ m map[string]any }

func (o jsonObject) sortedKeys() []string {
	keys := make([]string, 0, len(o.m))
	for k := range o.m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

var errDepth = errors.New("nesting too deep")

// readValue reads one JSON value from dec, keeping object member names
// unique and numbers as json.Number.
func readValue(dec *json.Decoder, depth int) (any, error) {
	if depth > MaxJSONDepth {
		return nil, errDepth
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			obj := jsonObject{m: map[string]any{}}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, ok := kt.(string)
				if !ok {
					return nil, fmt.Errorf("object key is not a string")
				}
				if _, dup := obj.m[k]; dup {
					return nil, fmt.Errorf("member %q appears twice", k)
				}
				v, err := readValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				obj.m[k] = v
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return obj, nil
		case '[':
			var arr []any
			for dec.More() {
				v, err := readValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				arr = append(arr, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			if arr == nil {
				arr = []any{}
			}
			return arr, nil
		}
		return nil, fmt.Errorf("unexpected %v", t)
	default:
		return t, nil // string, json.Number, bool, nil
	}
}

func leafText(v any) (string, bool) {
	switch t := v.(type) {
	case string:
		return t, true
	case json.Number:
		return string(t), true
	case bool:
		if t {
			return "true", true
		}
		return "false", true
	case nil:
		return "", true
	}
	return "", false
}

func writeLeaves(b *strings.Builder, v any) {
	switch t := v.(type) {
	case jsonObject:
		for _, k := range t.sortedKeys() {
			writeLeaves(b, t.m[k])
		}
	case []any:
		for _, e := range t {
			writeLeaves(b, e)
		}
	default:
		s, _ := leafText(t)
		b.WriteString(s)
	}
}

func collectFields(f Fields, prefix string, v any) {
	switch t := v.(type) {
	case jsonObject:
		for k, e := range t.m {
			collectFields(f, prefix+"."+k, e)
		}
	case []any:
		parts := make([]string, 0, len(t))
		for _, e := range t {
			if s, ok := leafText(e); ok {
				parts = append(parts, s)
			}
		}
		f[prefix] = strings.Join(parts, ",")
	default:
		s, _ := leafText(t)
		f[prefix] = s
	}
}

// MarshalSealed adds keyVersion, sealAlgorithm (when not HMAC-SHA-256) and
// the seal to msg and returns the JSON to send. msg values must be
// strings, numbers, bools, []any/[]string or map[string]any.
func MarshalSealed(msg map[string]any, alg SealAlgorithm, keyVersion, key string) ([]byte, error) {
	out := make(map[string]any, len(msg)+3)
	for k, v := range msg {
		out[k] = v
	}
	out["keyVersion"] = keyVersion
	if alg == SHA256 {
		out["sealAlgorithm"] = string(SHA256)
	}
	delete(out, "seal")
	raw, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("sips json: %w", err)
	}
	seal, err := SealJSON(alg, raw, key)
	if err != nil {
		return nil, fmt.Errorf("sips json: %w", err)
	}
	out["seal"] = seal
	raw, err = json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("sips json: %w", err)
	}
	return raw, nil
}
