// Package memhost is the in-memory sdk.Host of the plugin test kit
// (plugintest.MemHost), here so that pluginrpc's own tests, which
// plugintest imports, can use it too.
package memhost

import (
	"bytes"
	"context"
	"sync"

	"github.com/acquit/acquit/sdk"
)

// Host is plugintest.MemHost, documented there. It is safe for
// concurrent use.
type Host struct {
	mu     sync.Mutex
	values map[string][]byte
	vers   map[string]int64
	seqs   map[string]int64
}

var _ sdk.Host = (*Host)(nil)

// New returns an empty Host.
func New() *Host {
	return &Host{values: map[string][]byte{}, vers: map[string]int64{}, seqs: map[string]int64{}}
}

// StateGet implements sdk.Host.
func (h *Host) StateGet(_ context.Context, key string) ([]byte, int64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.values[key]
	if !ok {
		return nil, 0, nil
	}
	return bytes.Clone(v), h.vers[key], nil
}

// StatePut implements sdk.Host.
func (h *Host) StatePut(_ context.Context, key string, value []byte, version int64) (int64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.vers[key] != version {
		return 0, sdk.ErrConflict
	}
	h.vers[key]++
	h.values[key] = bytes.Clone(value)
	return h.vers[key], nil
}

// NextSequence implements sdk.Host.
func (h *Host) NextSequence(_ context.Context, name string) (int64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seqs[name]++
	return h.seqs[name], nil
}
