package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/internal/unixms"
)

func checkKV(ns, key string) error {
	if err := checkName("kv namespace", ns); err != nil {
		return err
	}
	return checkName("kv key", key)
}

// KVGet returns an unexpired value.
func (s *DB) KVGet(ctx context.Context, ns, key string) (string, bool, error) {
	if err := checkKV(ns, key); err != nil {
		return "", false, fmt.Errorf("kv get: %w", err)
	}
	var v string
	err := s.R.QueryRowContext(ctx, s.q(`SELECT value FROM kv WHERE ns = ? AND k = ? AND (expires_at = 0 OR expires_at > ?)`),
		ns, key, unixms.From(time.Now())).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("kv get %s/%s: %w", ns, key, err)
	}
	return v, true, nil
}

// KVSet stores a value; ttl 0 keeps it forever.
func (s *DB) KVSet(ctx context.Context, ns, key, value string, ttl time.Duration) error {
	if err := checkKV(ns, key); err != nil {
		return fmt.Errorf("kv set: %w", err)
	}
	if ttl < 0 {
		return fmt.Errorf("kv set %s/%s: %w: negative ttl", ns, key, store.ErrInvalid)
	}
	if len(value) > maxKVValue {
		return fmt.Errorf("kv set %s/%s: %w: %d bytes", ns, key, store.ErrTooLarge, len(value))
	}
	if !utf8.ValidString(value) {
		return fmt.Errorf("kv set %s/%s: %w: value is not UTF-8", ns, key, store.ErrInvalid)
	}
	var exp int64
	if ttl > 0 {
		exp = unixms.Ceil(time.Now().Add(ttl))
	}
	sweep := s.kvSets.Add(1)%kvSweepEvery == 0
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := s.txExec(ctx, tx, `INSERT INTO kv (ns, k, value, expires_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (ns, k) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at`, ns, key, value, exp)
		if err == nil && sweep {
			// Expired entries are invisible already; now and then delete them.
			_, err = s.txExec(ctx, tx, `DELETE FROM kv WHERE expires_at <> 0 AND expires_at <= ?`, unixms.From(time.Now()))
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("kv set %s/%s: %w", ns, key, err)
	}
	return nil
}

// KVDelete removes a key (missing is not an error).
func (s *DB) KVDelete(ctx context.Context, ns, key string) error {
	if err := checkKV(ns, key); err != nil {
		return fmt.Errorf("kv delete: %w", err)
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := s.txExec(ctx, tx, `DELETE FROM kv WHERE ns = ? AND k = ?`, ns, key)
		return err
	})
	if err != nil {
		return fmt.Errorf("kv delete %s/%s: %w", ns, key, err)
	}
	return nil
}

// KVIncr adds delta to an integer value (missing or expired = 0). An
// unexpired value keeps its expiry.
func (s *DB) KVIncr(ctx context.Context, ns, key string, delta int64) (int64, error) {
	if err := checkKV(ns, key); err != nil {
		return 0, fmt.Errorf("kv incr: %w", err)
	}
	var out int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := s.txExec(ctx, tx, `INSERT INTO kv (ns, k, value, expires_at) VALUES (?, ?, '0', 0) ON CONFLICT (ns, k) DO NOTHING`, ns, key); err != nil {
			return err
		}
		var v string
		var exp int64
		if err := s.txQueryRow(ctx, tx, `SELECT value, expires_at FROM kv WHERE ns = ? AND k = ?`+s.D.RowLock, ns, key).Scan(&v, &exp); err != nil {
			return err
		}
		now := unixms.From(time.Now())
		var cur int64
		if exp != 0 && exp <= now {
			exp = 0
		} else {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return fmt.Errorf("%w: %q", store.ErrNotInteger, truncate(v, 40))
			}
			cur = n
		}
		if (delta > 0 && cur > math.MaxInt64-delta) || (delta < 0 && cur < math.MinInt64-delta) {
			return fmt.Errorf("%w: overflow", store.ErrInvalid)
		}
		out = cur + delta
		_, err := s.txExec(ctx, tx, `UPDATE kv SET value = ?, expires_at = ? WHERE ns = ? AND k = ?`, strconv.FormatInt(out, 10), exp, ns, key)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("kv incr %s/%s: %w", ns, key, err)
	}
	return out, nil
}
