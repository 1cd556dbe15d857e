package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// redacted is what a Secret shows instead of its value.
const redacted = "[redacted]"

// maxSecretBytes bounds the size of a secret file.
const maxSecretBytes = 1 << 20

// Secret is a value read from outside the YAML file (a file, a systemd
// credential or an environment variable). Printing it, logging it or
// marshalling it to JSON or YAML shows "[redacted]"; Reveal returns the value.
type Secret struct {
	value  string
	source string
}

// NewSecret wraps a value obtained elsewhere (tests, command-line flags) in a
// Secret; source describes where it came from (e.g. "flag --token").
func NewSecret(value, source string) Secret { return Secret{value: value, source: source} }

// Reveal returns the secret value. Call it only where the value is used
// (an Authorization check, a key derivation), never to log it.
func (s Secret) Reveal() string { return s.value }

// IsSet reports whether the secret holds a value.
func (s Secret) IsSet() bool { return s.value != "" }

// Source describes where the secret was read from ("file /etc/x",
// "credential admin-token", "env NAME"); it never contains the value.
func (s Secret) Source() string { return s.source }

// String returns "[redacted]" (or "" for an unset secret).
func (s Secret) String() string {
	if s.value == "" {
		return ""
	}
	return redacted
}

// GoString returns the same as String so %#v does not reveal the value.
func (s Secret) GoString() string { return s.String() }

// MarshalJSON encodes the secret as "[redacted]".
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// MarshalText encodes the secret as "[redacted]".
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// MarshalYAML encodes the secret as "[redacted]".
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// Secret tags understood in the YAML file.
const (
	tagFile       = "!file"
	tagCredential = "!credential"
	tagEnv        = "!env"
)

func isSecretTag(tag string) bool {
	return tag == tagFile || tag == tagCredential || tag == tagEnv
}

// resolveSecret reads the secret named by a tagged scalar. arg is the
// scalar's value after ${ENV} expansion.
func (d *decoder) resolveSecret(tag, arg string) (Secret, error) {
	arg = strings.TrimSpace(arg)
	switch tag {
	case tagFile:
		if arg == "" {
			return Secret{}, errors.New("!file needs a path")
		}
		p := d.abs(arg)
		v, err := readSecretFile(p)
		if err != nil {
			return Secret{}, fmt.Errorf("secret file %s: %s", p, describeFSError(err))
		}
		return Secret{value: v, source: "file " + p}, nil
	case tagCredential:
		if arg == "" || arg == "." || arg == ".." || strings.ContainsAny(arg, "/\\\x00") {
			return Secret{}, fmt.Errorf("credential %q: invalid name", arg)
		}
		dir, ok := d.opts.LookupEnv("CREDENTIALS_DIRECTORY")
		if !ok || dir == "" {
			return Secret{}, fmt.Errorf("credential %q: $CREDENTIALS_DIRECTORY is not set (use systemd LoadCredential=)", arg)
		}
		p := filepath.Join(dir, arg)
		v, err := readSecretFile(p)
		if err != nil {
			return Secret{}, fmt.Errorf("credential %q: %s: %s", arg, p, describeFSError(err))
		}
		return Secret{value: v, source: "credential " + arg}, nil
	case tagEnv:
		if arg == "" {
			return Secret{}, errors.New("!env needs a variable name")
		}
		v, ok := d.opts.LookupEnv(arg)
		if !ok {
			return Secret{}, fmt.Errorf("secret environment variable %s is not set", arg)
		}
		if v == "" {
			return Secret{}, fmt.Errorf("secret environment variable %s is empty", arg)
		}
		return Secret{value: v, source: "env " + arg}, nil
	}
	return Secret{}, fmt.Errorf("unknown secret tag %s", tag)
}

var errEmptySecret = errors.New("is empty")
var errSecretTooLarge = errors.New("is larger than 1 MiB")
var errNotRegular = errors.New("is not a regular file")

// readSecretFile reads a secret file, bounded in size, and trims one
// trailing newline (LF or CRLF).
func readSecretFile(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", errNotRegular
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSecretBytes+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxSecretBytes {
		return "", errSecretTooLarge
	}
	s := string(b)
	s = strings.TrimSuffix(s, "\n")
	s = strings.TrimSuffix(s, "\r")
	if s == "" {
		return "", errEmptySecret
	}
	return s, nil
}

// describeFSError turns a file error into a short message without the
// path repeated.
func describeFSError(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "no such file"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	case errors.Is(err, errEmptySecret), errors.Is(err, errSecretTooLarge), errors.Is(err, errNotRegular):
		return err.Error()
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
