package config

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"
)

// LoadAdmin reads only listen.admin (addr and token) from the configuration
// file at path. The CLI's admin commands use it so that an operator needs
// the admin token, not every secret of the daemon's configuration (bank
// keys, database password), to talk to a running daemon.
func LoadAdmin(path string, opts Options) (*Admin, error) {
	if opts.LookupEnv == nil {
		opts.LookupEnv = os.LookupEnv
	}
	if opts.Dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, err
		}
		opts.Dir = wd
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %s", path, describeFSError(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: read: %w", path, err)
	}
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("%s: file is larger than %d bytes", path, MaxFileBytes)
	}
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		return nil, yamlError(path, err)
	}
	d := &decoder{file: path, opts: opts, errs: &Errors{}, lines: map[string]int{}, failed: map[string]bool{}}
	admin := child(child(root(&doc), "listen"), "admin")
	out := &Admin{}
	if n := child(admin, "addr"); n != nil && n.Kind == yaml.ScalarNode {
		v, err := expandEnv(n.Value, opts.LookupEnv)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: listen.admin.addr: %w", filepath.Base(path), n.Line, err)
		}
		out.Addr = v
	}
	if n := child(admin, "token"); n != nil && n.Kind == yaml.ScalarNode {
		v, err := expandEnv(n.Value, opts.LookupEnv)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: listen.admin.token: %w", filepath.Base(path), n.Line, err)
		}
		if isSecretTag(n.Tag) {
			s, err := d.resolveSecret(n.Tag, v)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: listen.admin.token: %w", filepath.Base(path), n.Line, err)
			}
			out.Token = s
		} else {
			out.Token = NewSecret(v, "config file")
		}
	}
	if out.Addr == "" {
		out.Addr = defaults(opts.LookupEnv, os.Hostname).Listen.Admin.Addr
	}
	if !out.Token.IsSet() {
		return nil, fmt.Errorf("%s: listen.admin.token is not set", path)
	}
	return out, nil
}

func root(doc *yaml.Node) *yaml.Node {
	if doc == nil || len(doc.Content) == 0 {
		return nil
	}
	return resolveAlias(doc.Content[0])
}

// child returns the value of key in mapping n (nil when absent).
func child(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return resolveAlias(n.Content[i+1])
		}
	}
	return nil
}
