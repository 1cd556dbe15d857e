package config

import (
	"fmt"
	"math"
	"net/netip"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// maxNodes bounds the number of YAML nodes visited (aliases included), so
// an alias bomb cannot exhaust memory.
const maxNodes = 100000

// maxDepth bounds nesting.
const maxDepth = 64

// decoder turns a yaml.Node tree into Go values, strictly, recording the
// line of every value it decodes.
type decoder struct {
	file  string
	opts  Options
	errs  *Errors
	lines map[string]int // "schedules[0].cron" -> line of the value
	// failed marks paths whose decoding reported an error, so validation
	// does not report them again (e.g. "is required" after a missing
	// secret file).
	failed map[string]bool
	nodes  int
	bomb   bool
}

func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	d.errs.add(d.file, line, format, args...)
}

// abs resolves a relative path against Options.Dir.
func (d *decoder) abs(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(d.opts.Dir, p)
}

// line returns the line of path, or of its closest recorded parent.
func (d *decoder) line(path string) int {
	for {
		if l, ok := d.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return d.lines[""]
		}
		path = path[:i]
	}
}

var (
	durationType = reflect.TypeOf(time.Duration(0))
	sizeType     = reflect.TypeOf(Size(0))
	secretType   = reflect.TypeOf(Secret{})
	settingsType = reflect.TypeOf(Settings{})
	prefixType   = reflect.TypeOf(netip.Prefix{})
	anyMapType   = reflect.TypeOf(map[string]any{})
)

type defaulter interface{ setDefaults() }

// resolveAlias follows alias nodes.
func resolveAlias(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < maxDepth; i++ {
		n = n.Alias
	}
	return n
}

// visit counts a node; it reports false once the budget is spent.
func (d *decoder) visit(n *yaml.Node, depth int) bool {
	if d.bomb {
		return false
	}
	d.nodes++
	if d.nodes > maxNodes || depth > maxDepth {
		d.bomb = true
		d.errorf(n, "document too large or too deeply nested (more than %d nodes or %d levels; alias bomb?)", maxNodes, maxDepth)
		return false
	}
	return true
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return "a scalar"
	}
	return "an alias"
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// checkTag refuses custom tags on values that are not secrets.
func (d *decoder) checkTag(n *yaml.Node) bool {
	if isSecretTag(n.Tag) {
		d.errorf(n, "%s is only allowed for secret values (tokens, keys, passwords, dsn, plugin settings)", n.Tag)
		return false
	}
	if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		d.errorf(n, "unknown tag %s", n.Tag)
		return false
	}
	return true
}

// scalar returns a scalar's value with ${ENV} expanded.
func (d *decoder) scalar(n *yaml.Node, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, "%s must be a scalar, not %s", what, kindName(n))
		return "", false
	}
	if !d.checkTag(n) {
		return "", false
	}
	s, err := expandEnv(n.Value, d.opts.LookupEnv)
	if err != nil {
		d.errorf(n, "%v", err)
		return "", false
	}
	return s, true
}

// decode decodes n into v (addressable), recording positions under path.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string, depth int) {
	n = resolveAlias(n)
	if n == nil || !d.visit(n, depth) {
		return
	}
	d.lines[path] = n.Line
	before := d.errs.total
	defer func() {
		if d.errs.total > before {
			d.failed[path] = true
		}
	}()
	what := path
	if what == "" {
		what = "the document"
	}
	t := v.Type()
	switch t {
	case secretType:
		if isNull(n) {
			return
		}
		if n.Kind != yaml.ScalarNode || !isSecretTag(n.Tag) {
			d.errorf(n, "%s is a secret: write it as !file /path, !credential name or !env NAME, never in the file", what)
			return
		}
		arg, err := expandEnv(n.Value, d.opts.LookupEnv)
		if err != nil {
			d.errorf(n, "%v", err)
			return
		}
		s, err := d.resolveSecret(n.Tag, arg)
		if err != nil {
			d.errorf(n, "%v", err)
			return
		}
		v.Set(reflect.ValueOf(s))
		return
	case settingsType:
		if isNull(n) {
			return
		}
		if n.Kind != yaml.MappingNode {
			d.errorf(n, "%s must be a mapping, not %s", what, kindName(n))
			return
		}
		tree, ok := d.freeform(n, path, depth).(map[string]any)
		if !ok {
			return
		}
		s, err := newSettings(tree)
		if err != nil {
			d.errorf(n, "%s: %v", what, err)
			return
		}
		v.Set(reflect.ValueOf(s))
		return
	case anyMapType:
		if isNull(n) {
			return
		}
		if n.Kind != yaml.MappingNode {
			d.errorf(n, "%s must be a mapping, not %s", what, kindName(n))
			return
		}
		if m, ok := d.freeform(n, path, depth).(map[string]any); ok {
			v.Set(reflect.ValueOf(m))
		}
		return
	}
	if isNull(n) {
		// An empty value keeps the default.
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if t == prefixType {
			s, ok := d.scalar(n, what)
			if !ok {
				return
			}
			p, err := parsePrefix(s)
			if err != nil {
				d.errorf(n, "%s: %v", what, err)
				return
			}
			v.Set(reflect.ValueOf(p))
			return
		}
		if isNull(n) {
			return
		}
		if n.Kind != yaml.MappingNode {
			d.errorf(n, "%s must be a mapping, not %s", what, kindName(n))
			return
		}
		if !d.checkTag(n) {
			return
		}
		d.decodeStruct(n, v, path, depth)
	case reflect.Slice:
		if isNull(n) {
			return
		}
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, "%s must be a list, not %s", what, kindName(n))
			return
		}
		out := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, c := range n.Content {
			el := out.Index(i)
			if df, ok := el.Addr().Interface().(defaulter); ok {
				df.setDefaults()
			}
			d.decode(c, el, fmt.Sprintf("%s[%d]", path, i), depth+1)
		}
		v.Set(out)
	case reflect.Map:
		if isNull(n) {
			return
		}
		if n.Kind != yaml.MappingNode {
			d.errorf(n, "%s must be a mapping, not %s", what, kindName(n))
			return
		}
		out := reflect.MakeMapWithSize(t, len(n.Content)/2)
		d.eachPair(n, depth, func(k string, kn, vn *yaml.Node) {
			el := reflect.New(t.Elem()).Elem()
			d.decode(vn, el, path+"."+k, depth+1)
			out.SetMapIndex(reflect.ValueOf(k), el)
		})
		v.Set(out)
	case reflect.String:
		s, ok := d.scalar(n, what)
		if ok {
			v.SetString(s)
		}
	case reflect.Bool:
		s, ok := d.scalar(n, what)
		if !ok {
			return
		}
		switch strings.ToLower(s) {
		case "true", "yes", "on":
			v.SetBool(true)
		case "false", "no", "off":
			v.SetBool(false)
		default:
			d.errorf(n, "%s: invalid boolean %q", what, s)
		}
	case reflect.Int, reflect.Int64, reflect.Int32:
		s, ok := d.scalar(n, what)
		if !ok {
			return
		}
		switch t {
		case durationType:
			dur, err := time.ParseDuration(strings.TrimSpace(s))
			if err != nil {
				d.errorf(n, "%s: invalid duration %q (want e.g. 5s, 10m, 72h)", what, s)
				return
			}
			v.SetInt(int64(dur))
		case sizeType:
			sz, err := ParseSize(s)
			if err != nil {
				d.errorf(n, "%s: %v", what, err)
				return
			}
			v.SetInt(int64(sz))
		default:
			i, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
			if err != nil || v.OverflowInt(i) {
				d.errorf(n, "%s: invalid integer %q", what, s)
				return
			}
			v.SetInt(i)
		}
	default:
		d.errorf(n, "%s: unsupported type %s (config package bug)", what, t)
	}
}

// eachPair walks a mapping's key/value pairs, refusing non-scalar keys,
// duplicate keys and merge keys.
func (d *decoder) eachPair(n *yaml.Node, depth int, fn func(k string, kn, vn *yaml.Node)) {
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := resolveAlias(n.Content[i]), n.Content[i+1]
		if kn == nil || !d.visit(kn, depth+1) {
			return
		}
		if kn.Kind != yaml.ScalarNode {
			d.errorf(kn, "mapping keys must be scalars, not %s", kindName(kn))
			continue
		}
		if kn.Tag == "!!merge" {
			d.errorf(kn, "merge keys (<<) are not supported")
			continue
		}
		k := kn.Value
		if first, dup := seen[k]; dup {
			d.errorf(kn, "duplicate key %q (first at line %d)", k, first)
			continue
		}
		seen[k] = kn.Line
		fn(k, kn, vn)
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string, depth int) {
	t := v.Type()
	fields := make(map[string]int, t.NumField())
	var names []string
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("yaml")
		if tag == "" || tag == "-" {
			continue
		}
		fields[tag] = i
		names = append(names, tag)
	}
	d.eachPair(n, depth, func(k string, kn, vn *yaml.Node) {
		i, ok := fields[k]
		if !ok {
			where := ""
			if path != "" {
				where = " in " + path
			}
			d.errorf(kn, "unknown key %q%s (known: %s)", k, where, strings.Join(names, ", "))
			return
		}
		p := k
		if path != "" {
			p = path + "." + k
		}
		d.decode(vn, v.Field(i), p, depth+1)
	})
}

// freeform decodes any YAML value into string, int64, float64, bool, nil,
// []any, map[string]any, or Secret for the secret tags. Plain scalars that
// contained ${ENV} references are re-resolved after expansion, so
// `port: ${PORT}` gives a number.
func (d *decoder) freeform(n *yaml.Node, path string, depth int) any {
	n = resolveAlias(n)
	if n == nil || !d.visit(n, depth) {
		return nil
	}
	d.lines[path] = n.Line
	switch n.Kind {
	case yaml.MappingNode:
		if !d.checkTag(n) {
			return nil
		}
		m := make(map[string]any, len(n.Content)/2)
		d.eachPair(n, depth, func(k string, _, vn *yaml.Node) {
			m[k] = d.freeform(vn, path+"."+k, depth+1)
		})
		return m
	case yaml.SequenceNode:
		if !d.checkTag(n) {
			return nil
		}
		l := make([]any, 0, len(n.Content))
		for i, c := range n.Content {
			l = append(l, d.freeform(c, fmt.Sprintf("%s[%d]", path, i), depth+1))
		}
		return l
	case yaml.ScalarNode:
		if isSecretTag(n.Tag) {
			arg, err := expandEnv(n.Value, d.opts.LookupEnv)
			if err != nil {
				d.errorf(n, "%v", err)
				return nil
			}
			s, err := d.resolveSecret(n.Tag, arg)
			if err != nil {
				d.errorf(n, "%v", err)
				return nil
			}
			return s
		}
		if !d.checkTag(n) {
			return nil
		}
		s, err := expandEnv(n.Value, d.opts.LookupEnv)
		if err != nil {
			d.errorf(n, "%v", err)
			return nil
		}
		if n.Tag == "!!str" && (n.Style != 0 || s == n.Value) {
			return s
		}
		// Resolve a plain scalar (after expansion) as YAML would.
		tmp := &yaml.Node{Kind: yaml.ScalarNode, Value: s}
		if n.Tag != "!!str" {
			tmp.Tag = n.Tag
		}
		var x any
		if err := tmp.Decode(&x); err != nil {
			d.errorf(n, "%s: %v", path, err)
			return nil
		}
		switch t := x.(type) {
		case int:
			return int64(t)
		case uint64:
			if t > math.MaxInt64 {
				return float64(t)
			}
			return int64(t)
		}
		return x
	}
	return nil
}

// parsePrefix accepts "10.0.0.0/8" or a bare address.
func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("invalid network %q", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid network %q", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}
