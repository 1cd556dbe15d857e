package plugintest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/acquit/acquit/sdk"
)

// FileHost is an sdk.Host persisted to one JSON file, rewritten atomically
// (temp file, fsync, rename) on every change, so a process killed with
// SIGKILL leaves exactly the state of its last completed call, like the
// daemon's store. For crash tests across processes that use it one at a
// time (a killed process, then the one resuming): the lock is per process.
// Like MemHost, it leaves key and size checks to the wire layer.
type FileHost struct {
	mu   sync.Mutex
	path string
}

type fileState struct {
	Vals map[string][]byte `json:"vals"`
	Vers map[string]int64  `json:"vers"`
	Seqs map[string]int64  `json:"seqs"`
}

var _ sdk.Host = (*FileHost)(nil)

// OpenFileHost returns a FileHost stored at path (created on first write).
func OpenFileHost(path string) *FileHost { return &FileHost{path: path} }

func (h *FileHost) load() (*fileState, error) {
	st := &fileState{Vals: map[string][]byte{}, Vers: map[string]int64{}, Seqs: map[string]int64{}}
	b, err := os.ReadFile(h.path)
	if os.IsNotExist(err) {
		return st, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("filehost %s: %w", h.path, err)
	}
	return st, nil
}

func (h *FileHost) save(st *fileState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(h.path), ".state-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), h.path)
}

// StateGet implements sdk.Host.
func (h *FileHost) StateGet(_ context.Context, key string) ([]byte, int64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st, err := h.load()
	if err != nil {
		return nil, 0, err
	}
	v, ok := st.Vals[key]
	if !ok {
		return nil, 0, nil
	}
	return v, st.Vers[key], nil
}

// StatePut implements sdk.Host.
func (h *FileHost) StatePut(_ context.Context, key string, value []byte, version int64) (int64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st, err := h.load()
	if err != nil {
		return 0, err
	}
	if st.Vers[key] != version {
		return 0, sdk.ErrConflict
	}
	st.Vals[key] = value
	st.Vers[key]++
	return st.Vers[key], h.save(st)
}

// NextSequence implements sdk.Host.
func (h *FileHost) NextSequence(_ context.Context, name string) (int64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st, err := h.load()
	if err != nil {
		return 0, err
	}
	st.Seqs[name]++
	return st.Seqs[name], h.save(st)
}
