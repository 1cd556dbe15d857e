package plugintest

import (
	"bytes"
	"context"
	"sync"

	"github.com/acquit/acquit/sdk"
)

// MemHost is an in-memory sdk.Host with the versioning of the daemon's
// store-backed one (versions start at 1, 0 means absent, StatePut with a
// stale version is sdk.ErrConflict, sequences start at 1). It does not
// check key names and sizes (sdk.MaxStateKeyLen, MaxStateValueLen) itself:
// offered to a plugin in Configure through ServeGateway or ServeTransport,
// it is reached through the same wire layer (pluginrpc.HostGRPCServer)
// that checks them in the daemon. It is safe for concurrent use.
type MemHost struct {
	mu     sync.Mutex
	values map[string][]byte
	vers   map[string]int64
	seqs   map[string]int64
}

var _ sdk.Host = (*MemHost)(nil)

// NewMemHost returns an empty MemHost.
func NewMemHost() *MemHost {
	return &MemHost{values: map[string][]byte{}, vers: map[string]int64{}, seqs: map[string]int64{}}
}

// StateGet implements sdk.Host.
func (h *MemHost) StateGet(_ context.Context, key string) ([]byte, int64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.values[key]
	if !ok {
		return nil, 0, nil
	}
	return bytes.Clone(v), h.vers[key], nil
}

// StatePut implements sdk.Host.
func (h *MemHost) StatePut(_ context.Context, key string, value []byte, version int64) (int64, error) {
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
func (h *MemHost) NextSequence(_ context.Context, name string) (int64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seqs[name]++
	return h.seqs[name], nil
}
