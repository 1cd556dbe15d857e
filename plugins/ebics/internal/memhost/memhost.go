// Package memhost is an in-memory sdk.Host for tests, until the daemon's
// Host is served over gRPC. It can snapshot its state to simulate a crash
// (the daemon's store keeps exactly what was committed).
package memhost

import (
	"context"
	"sync"

	"github.com/acquit/acquit/sdk"
)

// Host is an in-memory sdk.Host.
type Host struct {
	mu   sync.Mutex
	vals map[string][]byte
	vers map[string]int64
	seqs map[string]int64
	// Puts counts StatePut calls.
	Puts int
}

var _ sdk.Host = (*Host)(nil)

// New returns an empty host.
func New() *Host {
	return &Host{vals: map[string][]byte{}, vers: map[string]int64{}, seqs: map[string]int64{}}
}

// StateGet implements sdk.Host.
func (h *Host) StateGet(_ context.Context, key string) ([]byte, int64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.vals[key]
	if !ok {
		return nil, 0, nil
	}
	return append([]byte(nil), v...), h.vers[key], nil
}

// StatePut implements sdk.Host.
func (h *Host) StatePut(_ context.Context, key string, value []byte, version int64) (int64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.vers[key] != version {
		return 0, sdk.ErrConflict
	}
	h.Puts++
	h.vals[key] = append([]byte(nil), value...)
	h.vers[key]++
	return h.vers[key], nil
}

// NextSequence implements sdk.Host.
func (h *Host) NextSequence(_ context.Context, name string) (int64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seqs[name]++
	return h.seqs[name], nil
}

// Keys lists the stored keys.
func (h *Host) Keys() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for k := range h.vals {
		out = append(out, k)
	}
	return out
}
