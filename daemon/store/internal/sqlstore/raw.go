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
	err = s.inTxSync(ctx, in.DeferSync, func(tx *sql.Tx) error {
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
// raw_body_chunks rows of store.RawChunkSize, without holding the writer
// for the whole body (issue 12: about 1 s of SQLite's single writer per
// 90 MB in one transaction made payment callbacks wait that long):
//
//  1. a raw_bodies row is created, in a short transaction;
//  2. each chunk is written in its own short transaction (which also
//     touches the body, so that SweepRawBodies leaves it alone while it
//     is being written), hashing as it goes; more bytes than announced
//     stop at once;
//  3. once the size and the SHA-256 match what was announced, one short
//     transaction checks the chunks in the database and commits the
//     raw_inputs row naming the body, with its verdicts.
//
// Until step 3 commits, nothing names the body: it is not a stored
// document. On a mismatch or an error the chunks are deleted at once; after
// a kill -9 SweepRawBodies deletes them.
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
	var bodyID int64
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		now := unixms.From(time.Now())
		return s.txQueryRow(ctx, tx, `INSERT INTO raw_bodies (started_at, touched_at) VALUES (?, ?) RETURNING id`, now, now).Scan(&bodyID)
	})
	if err != nil {
		return 0, fmt.Errorf("record raw stream from %s: start body: %w", in.Source, err)
	}
	id, err := s.recordBody(ctx, in, body, bodyID, want, string(headers))
	if err != nil {
		// Not named by any raw input: delete it now rather than at the
		// next sweep (which deletes it if this fails too).
		if _, derr := s.deleteBody(context.WithoutCancel(ctx), bodyID); derr != nil {
			err = fmt.Errorf("%w (its chunks are left to the sweep: %v)", err, derr)
		}
		return 0, fmt.Errorf("record raw stream from %s: %w", in.Source, err)
	}
	return id, nil
}

// recordBody writes the chunks of body bodyID, then commits the raw input
// naming it.
func (s *DB) recordBody(ctx context.Context, in store.RawInput, body io.Reader, bodyID int64, want, headers string) (int64, error) {
	h := sha256.New()
	chunks, err := s.writeChunks(ctx, bodyID, body, in.Size, h)
	if err != nil {
		return 0, err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return 0, fmt.Errorf("%w: body has sha256 %s, %s was announced", store.ErrInvalid, got, want)
	}
	var id int64
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		// The chunks as committed: a sweep that took the body for an
		// orphan (its writer stalled past store.RawBodyIdle) leaves fewer.
		var n, size int64
		if err := s.txQueryRow(ctx, tx, `SELECT COUNT(*), COALESCE(SUM(LENGTH(data)), 0) FROM raw_body_chunks WHERE body_id = ?`, bodyID).
			Scan(&n, &size); err != nil {
			return fmt.Errorf("check chunks: %w", err)
		}
		if n != int64(chunks) || size != in.Size {
			return fmt.Errorf("body %d: %d chunks of %d bytes in the database, %d of %d written (swept while written?)", bodyID, n, size, chunks, in.Size)
		}
		if err := s.txQueryRow(ctx, tx, `INSERT INTO raw_inputs
			(source, channel, remote_addr, method, path, headers, body, received_at, sha256, chunked_size, body_id)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			in.Source, truncate(in.Channel, maxName), truncate(in.RemoteAddr, maxName), truncate(in.Method, 32),
			truncate(in.Path, 4096), headers, []byte{}, unixms.From(in.ReceivedAt), want, in.Size, bodyID).Scan(&id); err != nil {
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
		return 0, fmt.Errorf("commit raw input: %w", err)
	}
	return id, nil
}

// writeChunks copies exactly size bytes of body into raw_body_chunks rows
// of body bodyID, one short transaction per chunk, hashing them into h,
// and returns how many chunks it wrote.
func (s *DB) writeChunks(ctx context.Context, bodyID int64, body io.Reader, size int64, h hash.Hash) (int, error) {
	buf := make([]byte, store.RawChunkSize)
	var total int64
	chunks := 0
	for seq := 1; ; seq++ {
		// One byte more than announced is enough to refuse the body.
		want := int64(len(buf))
		if left := size - total + 1; left < want {
			want = left
		}
		n, err := io.ReadFull(body, buf[:want])
		if int64(n)+total > size {
			return chunks, fmt.Errorf("%w: body longer than the %d bytes announced", store.ErrInvalid, size)
		}
		if n > 0 {
			total += int64(n)
			h.Write(buf[:n])
			data := buf[:n]
			if werr := s.inTx(ctx, func(tx *sql.Tx) error {
				if _, err := s.txExec(ctx, tx, `INSERT INTO raw_body_chunks (body_id, seq, data) VALUES (?, ?, ?)`, bodyID, seq, data); err != nil {
					return err
				}
				_, err := s.txExec(ctx, tx, `UPDATE raw_bodies SET touched_at = ? WHERE id = ?`, unixms.From(time.Now()), bodyID)
				return err
			}); werr != nil {
				return chunks, fmt.Errorf("chunk %d: %w", seq, werr)
			}
			chunks++
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return chunks, fmt.Errorf("read body: %w", err)
		}
	}
	if total != size {
		return chunks, fmt.Errorf("%w: body has %d bytes, %d were announced", store.ErrInvalid, total, size)
	}
	return chunks, nil
}

// sweepChunkBatch is how many chunks (of store.RawChunkSize) one
// transaction of deleteBody deletes: a few milliseconds of the writer.
const sweepChunkBatch = 8

// deleteBody deletes body bodyID and its chunks, a few chunks per
// transaction, unless a raw input names it (the triggers and the foreign
// key refuse that anyway). It reports whether the body is gone.
func (s *DB) deleteBody(ctx context.Context, bodyID int64) (bool, error) {
	for {
		n, err := s.execOwnTx(ctx, `DELETE FROM raw_body_chunks WHERE body_id = ? AND seq IN
			(SELECT seq FROM raw_body_chunks WHERE body_id = ? ORDER BY seq LIMIT ?)
			AND NOT EXISTS (SELECT 1 FROM raw_inputs WHERE body_id = ?)`, bodyID, bodyID, sweepChunkBatch, bodyID)
		if err != nil {
			return false, fmt.Errorf("delete body %d chunks: %w", bodyID, err)
		}
		if n < sweepChunkBatch {
			break
		}
	}
	gone, err := s.execOwnTx(ctx, `DELETE FROM raw_bodies WHERE id = ? AND NOT EXISTS (SELECT 1 FROM raw_inputs WHERE body_id = ?)`, bodyID, bodyID)
	if err != nil {
		return false, fmt.Errorf("delete body %d: %w", bodyID, err)
	}
	return gone == 1, nil
}

// execOwnTx runs one statement in a transaction of its own and returns the
// rows it affected.
func (s *DB) execOwnTx(ctx context.Context, query string, args ...any) (int64, error) {
	var n int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := s.txExec(ctx, tx, query, args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// SweepRawBodies deletes the bodies that no raw input names and that
// nobody wrote to since idleBefore (see store.Store), with their chunks,
// a few chunks per transaction, and returns how many it deleted.
func (s *DB) SweepRawBodies(ctx context.Context, idleBefore time.Time) (int, error) {
	rows, err := s.R.QueryContext(ctx, s.q(`SELECT b.id FROM raw_bodies b WHERE b.touched_at < ?
		AND NOT EXISTS (SELECT 1 FROM raw_inputs r WHERE r.body_id = b.id) ORDER BY b.id`), unixms.From(idleBefore))
	if err != nil {
		return 0, fmt.Errorf("sweep raw bodies: %w", err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, fmt.Errorf("sweep raw bodies: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("sweep raw bodies: %w", err)
	}
	n := 0
	for _, id := range ids {
		// Idle when listed; a writer that woke up in between finds its
		// chunks short at its commit and fails (the fetch is retried).
		gone, err := s.deleteBody(ctx, id)
		if err != nil {
			return n, fmt.Errorf("sweep raw bodies: %w", err)
		}
		if gone {
			n++
		}
	}
	return n, nil
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// OpenRawBody streams the body of raw input id: the body column, or its
// chunks one at a time (raw_body_chunks of its body_id, or the raw_chunks
// of an input stored before core migration 008).
func (s *DB) OpenRawBody(ctx context.Context, id int64) (io.ReadCloser, int64, error) {
	var (
		chunked int64
		bodyID  sql.NullInt64
		body    []byte
	)
	err := s.R.QueryRowContext(ctx, s.q(`SELECT chunked_size, body_id, CASE WHEN chunked_size < 0 THEN body END FROM raw_inputs WHERE id = ?`), id).
		Scan(&chunked, &bodyID, &body)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, 0, fmt.Errorf("raw %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("raw %d: %w", id, err)
	}
	if chunked < 0 {
		return io.NopCloser(bytes.NewReader(body)), int64(len(body)), nil
	}
	query := `SELECT data FROM raw_chunks WHERE raw_id = ? AND seq = ?`
	key := id
	if bodyID.Valid {
		query, key = `SELECT data FROM raw_body_chunks WHERE body_id = ? AND seq = ?`, bodyID.Int64
	}
	return &chunkReader{ctx: ctx, s: s, id: id, key: key, query: s.q(query), left: chunked}, chunked, nil
}

// chunkReader reads the raw_chunks rows of one raw input in order.
type chunkReader struct {
	ctx   context.Context
	s     *DB
	id    int64
	key   int64  // raw_id or body_id of the chunks
	query string // selects one chunk by key and seq
	seq   int
	cur   []byte
	left  int64 // bytes not yet returned
}

// Read implements io.Reader.
func (c *chunkReader) Read(p []byte) (int, error) {
	for len(c.cur) == 0 {
		if c.left <= 0 {
			return 0, io.EOF
		}
		c.seq++
		var data []byte
		err := c.s.R.QueryRowContext(c.ctx, c.query, c.key, c.seq).Scan(&data)
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
