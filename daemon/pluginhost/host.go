package pluginhost

import (
	"context"
	"errors"
	"fmt"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/sdk"
)

// storeHost is the sdk.Host offered to one plugin: the daemon's
// store.PluginState scoped to the plugin's configured name.
type storeHost struct {
	state  store.PluginState
	plugin string
}

var _ sdk.Host = (*storeHost)(nil)

// StateGet implements sdk.Host.
func (h *storeHost) StateGet(ctx context.Context, key string) ([]byte, int64, error) {
	v, ver, err := h.state.StateGet(ctx, h.plugin, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("plugin %s state get %q: %w", h.plugin, key, err)
	}
	return v, ver, nil
}

// StatePut implements sdk.Host; store.ErrConflict becomes sdk.ErrConflict.
func (h *storeHost) StatePut(ctx context.Context, key string, value []byte, version int64) (int64, error) {
	ver, err := h.state.StatePut(ctx, h.plugin, key, value, version)
	if errors.Is(err, store.ErrConflict) || errors.Is(err, sdk.ErrConflict) {
		return 0, fmt.Errorf("plugin %s state put %q at version %d: %w", h.plugin, key, version, sdk.ErrConflict)
	}
	if err != nil {
		return 0, fmt.Errorf("plugin %s state put %q: %w", h.plugin, key, err)
	}
	return ver, nil
}

// NextSequence implements sdk.Host.
func (h *storeHost) NextSequence(ctx context.Context, name string) (int64, error) {
	v, err := h.state.NextSequence(ctx, h.plugin, name)
	if err != nil {
		return 0, fmt.Errorf("plugin %s sequence %q: %w", h.plugin, name, err)
	}
	return v, nil
}
