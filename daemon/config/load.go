package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"

	"gopkg.in/yaml.v3"
)

// MaxFileBytes bounds the size of a configuration file.
const MaxFileBytes = 1 << 20

// Options tunes Load for tests and tools.
type Options struct {
	// Dir resolves relative paths (default: the working directory).
	Dir string
	// LookupEnv reads environment variables (default os.LookupEnv).
	LookupEnv func(string) (string, bool)
	// Hostname gives the default instance name (default os.Hostname).
	Hostname func() (string, error)
	// SkipPathChecks skips the checks that files exist (plugins, scripts)
	// and plugin checksums, e.g. to check a config meant for another
	// machine. Secrets are still read.
	SkipPathChecks bool
	// ExtraJobs are job names accepted in schedules besides "<plugin>.<job>"
	// and "lua" (jobs built into the daemon).
	ExtraJobs []string
}

// Load reads, decodes and validates the configuration file at path. On
// failure the error is an *Errors listing every problem found.
func Load(path string) (*Config, error) { return LoadWith(path, Options{}) }

// LoadWith is Load with options.
func LoadWith(path string, opts Options) (*Config, error) {
	if opts.LookupEnv == nil {
		opts.LookupEnv = os.LookupEnv
	}
	if opts.Hostname == nil {
		opts.Hostname = os.Hostname
	}
	if opts.Dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, &Errors{List: []Error{{File: path, Msg: fmt.Sprintf("working directory: %v", err)}}}
		}
		opts.Dir = wd
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, &Errors{List: []Error{{File: path, Msg: describeFSError(err)}}}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, &Errors{List: []Error{{File: path, Msg: fmt.Sprintf("read: %v", err)}}}
	}
	if len(data) > MaxFileBytes {
		return nil, &Errors{List: []Error{{File: path, Msg: fmt.Sprintf("file is larger than %d bytes", MaxFileBytes)}}}
	}
	cfg, err := Parse(path, data, opts)
	if err != nil {
		return nil, err
	}
	if abs, err := filepath.Abs(path); err == nil {
		cfg.File = abs
	}
	return cfg, nil
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// Parse decodes and validates configuration text; name is used in error
// positions. opts.Dir must be set if relative paths are used.
func Parse(name string, data []byte, opts Options) (*Config, error) {
	if opts.LookupEnv == nil {
		opts.LookupEnv = os.LookupEnv
	}
	if opts.Hostname == nil {
		opts.Hostname = os.Hostname
	}
	errs := &Errors{}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		errs.List = append(errs.List, yamlError(name, err))
		return nil, errs
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		errs.add(name, extra.Line, "only one YAML document is allowed")
		return nil, errs
	} else if !errors.Is(err, io.EOF) {
		errs.List = append(errs.List, yamlError(name, err))
		return nil, errs
	}
	cfg := defaults(opts.LookupEnv, opts.Hostname)
	d := &decoder{file: name, opts: opts, errs: errs, lines: map[string]int{"": 1}, failed: map[string]bool{}}
	if len(doc.Content) > 0 {
		root := doc.Content[0]
		if root.Kind != yaml.MappingNode && !isNull(root) {
			errs.add(name, root.Line, "the document must be a mapping, not %s", kindName(root))
			return nil, errs
		}
		d.decode(root, reflect.ValueOf(cfg).Elem(), "", 0)
	}
	if !d.bomb {
		d.validate(cfg)
	}
	if errs.total > 0 {
		errs.finish(name)
		return nil, errs
	}
	return cfg, nil
}

func yamlError(name string, err error) Error {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Error{File: name, Line: line, Msg: m[2]}
	}
	return Error{File: name, Msg: msg}
}

// sortErrors orders errors by line, keeping the order of equal lines.
func sortErrors(l []Error) {
	slices.SortStableFunc(l, func(a, b Error) int { return a.Line - b.Line })
}
