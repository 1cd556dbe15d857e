package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/internal/unixms"
)

// StateGet returns a plugin's value and version; missing is (nil, 0, nil).
func (s *DB) StateGet(ctx context.Context, plugin, key string) ([]byte, int64, error) {
	if err := checkName("plugin", plugin); err != nil {
		return nil, 0, fmt.Errorf("state get: %w", err)
	}
	if err := checkName("state key", key); err != nil {
		return nil, 0, fmt.Errorf("state get %s: %w", plugin, err)
	}
	var v []byte
	var ver int64
	err := s.R.QueryRowContext(ctx, s.q(`SELECT value, version FROM plugin_state WHERE plugin = ? AND k = ?`), plugin, key).Scan(&v, &ver)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("state get %s/%s: %w", plugin, key, err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, ver, nil
}

// StatePut stores value if the current version equals version (0: must not
// exist) and returns the new version; store.ErrConflict otherwise.
func (s *DB) StatePut(ctx context.Context, plugin, key string, value []byte, version int64) (int64, error) {
	if err := checkName("plugin", plugin); err != nil {
		return 0, fmt.Errorf("state put: %w", err)
	}
	if err := checkName("state key", key); err != nil {
		return 0, fmt.Errorf("state put %s: %w", plugin, err)
	}
	if version < 0 {
		return 0, fmt.Errorf("state put %s/%s: %w: version %d", plugin, key, store.ErrInvalid, version)
	}
	if len(value) > maxStateVal {
		return 0, fmt.Errorf("state put %s/%s: %w: %d bytes", plugin, key, store.ErrTooLarge, len(value))
	}
	if value == nil {
		value = []byte{}
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if version == 0 {
			_, err := s.txExec(ctx, tx, `INSERT INTO plugin_state (plugin, k, value, version, updated_at) VALUES (?, ?, ?, 1, ?)`,
				plugin, key, value, unixms.From(time.Now()))
			return s.conflict(err)
		}
		res, err := s.txExec(ctx, tx, `UPDATE plugin_state SET value = ?, version = version + 1, updated_at = ?
			WHERE plugin = ? AND k = ? AND version = ?`, value, unixms.From(time.Now()), plugin, key, version)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: version %d is not current", store.ErrConflict, version)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("state put %s/%s: %w", plugin, key, err)
	}
	return version + 1, nil
}

// NextSequence returns the next value (from 1) of a named counter.
func (s *DB) NextSequence(ctx context.Context, plugin, name string) (int64, error) {
	if err := checkName("plugin", plugin); err != nil {
		return 0, fmt.Errorf("next sequence: %w", err)
	}
	if err := checkName("sequence name", name); err != nil {
		return 0, fmt.Errorf("next sequence %s: %w", plugin, err)
	}
	var v int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		return s.txQueryRow(ctx, tx, `INSERT INTO sequences (plugin, name, value) VALUES (?, ?, 1)
			ON CONFLICT (plugin, name) DO UPDATE SET value = sequences.value + 1 RETURNING value`, plugin, name).Scan(&v)
	})
	if err != nil {
		return 0, fmt.Errorf("next sequence %s/%s: %w", plugin, name, err)
	}
	return v, nil
}
