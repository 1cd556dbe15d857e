package sqlstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/acquit/acquit/daemon/store"
)

// RecordRaw stores one raw input in its own transaction.
func (s *DB) RecordRaw(ctx context.Context, in store.RawInput) (int64, error) {
	if err := checkName("raw source", in.Source); err != nil {
		return 0, fmt.Errorf("record raw: %w", err)
	}
	if len(in.Body) > s.MaxRawBody {
		return 0, fmt.Errorf("record raw from %s: body: %w: %d bytes > %d", in.Source, store.ErrTooLarge, len(in.Body), s.MaxRawBody)
	}
	sum := sha256.Sum256(in.Body)
	computed := hex.EncodeToString(sum[:])
	if in.SHA256 != "" && !strings.EqualFold(in.SHA256, computed) {
		return 0, fmt.Errorf("record raw from %s: %w: sha256 does not match body", in.Source, store.ErrInvalid)
	}
	headers, err := json.Marshal(in.Headers)
	if err != nil {
		return 0, fmt.Errorf("record raw from %s: headers: %w", in.Source, err)
	}
	if len(headers) > maxPayload {
		return 0, fmt.Errorf("record raw from %s: headers: %w", in.Source, store.ErrTooLarge)
	}
	if in.ReceivedAt.IsZero() {
		in.ReceivedAt = time.Now()
	}
	body := in.Body
	if body == nil {
		body = []byte{}
	}
	var id int64
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.txQueryRow(ctx, tx, `INSERT INTO raw_inputs
			(source, channel, remote_addr, method, path, headers, body, received_at, sha256)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			in.Source, truncate(in.Channel, maxName), truncate(in.RemoteAddr, maxName), truncate(in.Method, 32),
			truncate(in.Path, 4096), string(headers), body, toNS(in.ReceivedAt), computed).Scan(&id); err != nil {
			return err
		}
		for _, v := range in.Verdicts {
			if err := addVerdict(ctx, s, tx, id, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("record raw from %s: %w", in.Source, err)
	}
	return id, nil
}

// GetRaw returns one raw input with its verdicts.
func (s *DB) GetRaw(ctx context.Context, id int64) (*store.RawInput, error) {
	var (
		in      store.RawInput
		headers string
		at      int64
	)
	err := s.R.QueryRowContext(ctx, s.q(`SELECT id, source, channel, remote_addr, method, path, headers, body, received_at, sha256
		FROM raw_inputs WHERE id = ?`), id).Scan(&in.ID, &in.Source, &in.Channel, &in.RemoteAddr, &in.Method, &in.Path,
		&headers, &in.Body, &at, &in.SHA256)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("raw %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("raw %d: %w", id, err)
	}
	in.ReceivedAt = fromNS(at)
	if headers != "" && headers != "null" {
		if err := json.Unmarshal([]byte(headers), &in.Headers); err != nil {
			return nil, fmt.Errorf("raw %d: headers: %w", id, err)
		}
	}
	if in.Body == nil {
		in.Body = []byte{}
	}
	rows, err := s.R.QueryContext(ctx, s.q(`SELECT verified, code, message, subject, at FROM raw_verdicts WHERE raw_id = ? ORDER BY id`), id)
	if err != nil {
		return nil, fmt.Errorf("raw %d verdicts: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var v store.Verdict
		var ok int
		if err := rows.Scan(&ok, &v.Code, &v.Message, &v.Subject, &at); err != nil {
			return nil, fmt.Errorf("raw %d verdicts: %w", id, err)
		}
		v.Verified = ok != 0
		v.At = fromNS(at)
		in.Verdicts = append(in.Verdicts, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("raw %d verdicts: %w", id, err)
	}
	return &in, nil
}
