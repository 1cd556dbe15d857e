package sqlstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"time"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/internal/unixms"
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
		var err error
		if id, err = s.insertID(ctx, tx, `INSERT INTO raw_inputs
			(source, channel, remote_addr, method, path, headers, body, received_at, sha256)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, "id",
			in.Source, truncate(in.Channel, maxName), truncate(in.RemoteAddr, maxName), truncate(in.Method, 32),
			truncate(in.Path, 4096), string(headers), body, unixms.From(in.ReceivedAt), computed); err != nil {
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
	var chunked int64
	err := s.R.QueryRowContext(ctx, s.q(`SELECT id, source, channel, remote_addr, method, path, headers, body, received_at, sha256, chunked_size
		FROM raw_inputs WHERE id = ?`), id).Scan(&in.ID, &in.Source, &in.Channel, &in.RemoteAddr, &in.Method, &in.Path,
		&headers, &in.Body, &at, &in.SHA256, &chunked)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("raw %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("raw %d: %w", id, err)
	}
	in.ReceivedAt = unixms.Time(at)
	if headers != "" && headers != "null" {
		if err := json.Unmarshal([]byte(headers), &in.Headers); err != nil {
			return nil, fmt.Errorf("raw %d: headers: %w", id, err)
		}
	}
	if in.Body == nil {
		in.Body = []byte{}
	}
	in.Size = int64(len(in.Body))
	if chunked >= 0 {
		in.Chunked, in.Size = true, chunked
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
		v.At = unixms.Time(at)
		in.Verdicts = append(in.Verdicts, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("raw %d verdicts: %w", id, err)
	}
	return &in, nil
}

// RecordRawStream stores one raw input whose body is read from body, in
// raw_chunks rows of store.RawChunkSize, in one transaction with the
// raw_inputs row. The row is written first with the announced SHA-256 and
// size (raw_inputs is append-only), so the body is checked as it streams:
// more bytes than announced stop at once, fewer or another digest roll the
// whole transaction back.
func (s *DB) RecordRawStream(ctx context.Context, in store.RawInput, body io.Reader) (int64, error) {
	if err := checkName("raw source", in.Source); err != nil {
		return 0, fmt.Errorf("record raw stream: %w", err)
	}
	if len(in.Body) != 0 || body == nil {
		return 0, fmt.Errorf("record raw stream from %s: %w: the body is the reader, not RawInput.Body", in.Source, store.ErrInvalid)
	}
	want := strings.ToLower(in.SHA256)
	if !isSHA256Hex(want) || in.Size < 0 {
		return 0, fmt.Errorf("record raw stream from %s: %w: sha256 %q and size %d must be announced", in.Source, store.ErrInvalid, truncate(in.SHA256, 80), in.Size)
	}
	headers, err := json.Marshal(in.Headers)
	if err != nil {
		return 0, fmt.Errorf("record raw stream from %s: headers: %w", in.Source, err)
	}
	if len(headers) > maxPayload {
		return 0, fmt.Errorf("record raw stream from %s: headers: %w", in.Source, store.ErrTooLarge)
	}
	if in.ReceivedAt.IsZero() {
		in.ReceivedAt = time.Now()
	}
	var id int64
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.txQueryRow(ctx, tx, `INSERT INTO raw_inputs
			(source, channel, remote_addr, method, path, headers, body, received_at, sha256, chunked_size)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			in.Source, truncate(in.Channel, maxName), truncate(in.RemoteAddr, maxName), truncate(in.Method, 32),
			truncate(in.Path, 4096), string(headers), []byte{}, unixms.From(in.ReceivedAt), want, in.Size).Scan(&id); err != nil {
			return err
		}
		h := sha256.New()
		if err := s.writeChunks(ctx, tx, id, body, in.Size, h); err != nil {
			return err
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != want {
			return fmt.Errorf("%w: body has sha256 %s, %s was announced", store.ErrInvalid, got, want)
		}
		for _, v := range in.Verdicts {
			if err := addVerdict(ctx, s, tx, id, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("record raw stream from %s: %w", in.Source, err)
	}
	return id, nil
}

// writeChunks copies exactly size bytes of body into raw_chunks rows of
// raw input id, hashing them into h.
func (s *DB) writeChunks(ctx context.Context, tx *sql.Tx, id int64, body io.Reader, size int64, h hash.Hash) error {
	buf := make([]byte, store.RawChunkSize)
	var total int64
	for seq := 1; ; seq++ {
		// One byte more than announced is enough to refuse the body.
		want := int64(len(buf))
		if left := size - total + 1; left < want {
			want = left
		}
		n, err := io.ReadFull(body, buf[:want])
		if int64(n)+total > size {
			return fmt.Errorf("%w: body longer than the %d bytes announced", store.ErrInvalid, size)
		}
		if n > 0 {
			total += int64(n)
			h.Write(buf[:n])
			if _, err := s.txExec(ctx, tx, `INSERT INTO raw_chunks (raw_id, seq, data) VALUES (?, ?, ?)`, id, seq, buf[:n]); err != nil {
				return fmt.Errorf("chunk %d: %w", seq, err)
			}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read body: %w", err)
		}
	}
	if total != size {
		return fmt.Errorf("%w: body has %d bytes, %d were announced", store.ErrInvalid, total, size)
	}
	return nil
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// OpenRawBody streams the body of raw input id: the body column, or its
// raw_chunks rows one at a time.
func (s *DB) OpenRawBody(ctx context.Context, id int64) (io.ReadCloser, int64, error) {
	var (
		chunked int64
		body    []byte
	)
	err := s.R.QueryRowContext(ctx, s.q(`SELECT chunked_size, CASE WHEN chunked_size < 0 THEN body END FROM raw_inputs WHERE id = ?`), id).
		Scan(&chunked, &body)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, 0, fmt.Errorf("raw %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("raw %d: %w", id, err)
	}
	if chunked < 0 {
		return io.NopCloser(bytes.NewReader(body)), int64(len(body)), nil
	}
	return &chunkReader{ctx: ctx, s: s, id: id, left: chunked}, chunked, nil
}

// chunkReader reads the raw_chunks rows of one raw input in order.
type chunkReader struct {
	ctx  context.Context
	s    *DB
	id   int64
	seq  int
	cur  []byte
	left int64 // bytes not yet returned
}

// Read implements io.Reader.
func (c *chunkReader) Read(p []byte) (int, error) {
	for len(c.cur) == 0 {
		if c.left <= 0 {
			return 0, io.EOF
		}
		c.seq++
		var data []byte
		err := c.s.R.QueryRowContext(c.ctx, c.s.q(`SELECT data FROM raw_chunks WHERE raw_id = ? AND seq = ?`), c.id, c.seq).Scan(&data)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, fmt.Errorf("raw %d: chunk %d missing, %d bytes short: %w", c.id, c.seq, c.left, io.ErrUnexpectedEOF)
		}
		if err != nil {
			return 0, fmt.Errorf("raw %d chunk %d: %w", c.id, c.seq, err)
		}
		if int64(len(data)) > c.left {
			return 0, fmt.Errorf("raw %d: chunks longer than the recorded size", c.id)
		}
		c.cur = data
	}
	n := copy(p, c.cur)
	c.cur = c.cur[n:]
	c.left -= int64(n)
	return n, nil
}

// Close implements io.Closer.
func (c *chunkReader) Close() error { c.cur = nil; return nil }
