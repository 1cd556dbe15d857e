package hooks

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/acquit/acquit/daemon/store"
)

// memKV is a small in-test store.KV (the SQLite store replaces it once
// daemon/store/sqlite exists).
type memKV struct {
	mu sync.Mutex
	m  map[string]memEntry
}

type memEntry struct {
	v   string
	exp time.Time
}

func newMemKV() *memKV { return &memKV{m: map[string]memEntry{}} }

func (k *memKV) KVGet(ctx context.Context, ns, key string) (string, bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	e, ok := k.m[ns+"\x00"+key]
	if !ok || (!e.exp.IsZero() && time.Now().After(e.exp)) {
		return "", false, nil
	}
	return e.v, true, nil
}

func (k *memKV) KVSet(ctx context.Context, ns, key, value string, ttl time.Duration) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	e := memEntry{v: value}
	if ttl > 0 {
		e.exp = time.Now().Add(ttl)
	}
	k.m[ns+"\x00"+key] = e
	return nil
}

func (k *memKV) KVDelete(ctx context.Context, ns, key string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.m, ns+"\x00"+key)
	return nil
}

func (k *memKV) KVIncr(ctx context.Context, ns, key string, delta int64) (int64, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	e := k.m[ns+"\x00"+key]
	var n int64
	if e.v != "" {
		var err error
		n, err = strconv.ParseInt(e.v, 10, 64)
		if err != nil {
			return 0, store.ErrNotInteger
		}
	}
	n += delta
	k.m[ns+"\x00"+key] = memEntry{v: strconv.FormatInt(n, 10), exp: e.exp}
	return n, nil
}

// syncBuf is a goroutine-safe log sink.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// writeScripts creates a scripts folder with the given files.
func writeScripts(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// loopbackAllowed lets the http module reach the tests' httptest servers.
var loopbackAllowed = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// newTestEngine builds an engine over files; mod adjusts the options.
func newTestEngine(t testing.TB, files map[string]string, bindings []Binding, mod func(*Options)) (*Engine, *syncBuf) {
	t.Helper()
	logs := &syncBuf{}
	opts := Options{
		Dir:      writeScripts(t, files),
		Bindings: bindings,
		KV:       newMemKV(),
		Logger:   zerolog.New(logs),
		Timeout:  5 * time.Second,
		// The tests' servers are httptest servers on loopback.
		HTTPAllow: loopbackAllowed,
	}
	if mod != nil {
		mod(&opts)
	}
	e, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e, logs
}

func mustKind(t *testing.T, err, kind error) *HookError {
	t.Helper()
	if err == nil {
		t.Fatalf("expected an error of kind %v, got nil", kind)
	}
	var he *HookError
	if !errors.As(err, &he) {
		t.Fatalf("expected *HookError, got %T: %v", err, err)
	}
	if !errors.Is(err, kind) {
		t.Fatalf("expected kind %v, got %v: %v", kind, he.Kind, err)
	}
	return he
}
