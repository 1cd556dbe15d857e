package payments

// An interim store.Store over a real SQLite file, used until
// daemon/store/sqlite lands: it implements what the payments package uses
// (transactions, raw inputs with verdicts, history, events, sequences) with
// the same portable SQL rules. Methods payments never calls are left to the
// embedded nil interfaces.

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/acquit/acquit/daemon/store"
)

type liteStore struct {
	db  *sql.DB
	seq atomic.Int64
	store.KV
	store.Schedules
	store.Events      // only ListEvents is implemented below
	store.PluginState // only NextSequence is implemented below
}

const liteCoreSchema = `
CREATE TABLE raw_inputs (id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT, channel TEXT, remote_addr TEXT,
  method TEXT, path TEXT, headers TEXT, body BLOB, received_at BIGINT, sha256 TEXT);
CREATE TABLE raw_verdicts (raw_id BIGINT, verified INTEGER, code TEXT, message TEXT, subject TEXT, at BIGINT);
CREATE TABLE history (entity TEXT, id TEXT, from_state TEXT, to_state TEXT, cause TEXT, raw_id BIGINT, details TEXT, at BIGINT);
CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE, type TEXT, subject TEXT, payload TEXT, created_at BIGINT);
CREATE TABLE sequences (plugin TEXT, name TEXT, value BIGINT, PRIMARY KEY (plugin, name));
`

func openLiteStore(t testing.TB) *liteStore {
	t.Helper()
	path := filepath.Join(t.TempDir(), "acquit.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(20000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(4)
	if _, err := db.Exec(liteCoreSchema); err != nil {
		t.Fatal(err)
	}
	files, err := fs.Glob(Migrations, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	for _, f := range files {
		b, _ := fs.ReadFile(Migrations, f)
		if _, err := db.Exec(string(b)); err != nil {
			t.Fatalf("migration %s: %v", f, err)
		}
	}
	s := &liteStore{db: db}
	t.Cleanup(func() { db.Close() })
	return s
}

func (s *liteStore) InTx(ctx context.Context, fn func(tx store.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(&liteTx{tx: tx, s: s}); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (s *liteStore) RecordRaw(ctx context.Context, in store.RawInput) (int64, error) {
	h, _ := json.Marshal(in.Headers)
	res, err := s.db.ExecContext(ctx, `INSERT INTO raw_inputs (source, channel, remote_addr, method, path, headers, body, received_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, in.Source, in.Channel, in.RemoteAddr, in.Method, in.Path, string(h), in.Body, in.ReceivedAt.UnixMilli())
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

func (s *liteStore) GetRaw(ctx context.Context, id int64) (*store.RawInput, error) {
	var r store.RawInput
	var h string
	var at int64
	err := s.db.QueryRowContext(ctx, `SELECT id, source, channel, remote_addr, method, path, headers, body, received_at FROM raw_inputs WHERE id = ?`, id).
		Scan(&r.ID, &r.Source, &r.Channel, &r.RemoteAddr, &r.Method, &r.Path, &h, &r.Body, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	_ = json.Unmarshal([]byte(h), &r.Headers)
	r.ReceivedAt = time.UnixMilli(at)
	rows, err := s.db.QueryContext(ctx, `SELECT verified, code, message, subject, at FROM raw_verdicts WHERE raw_id = ? ORDER BY rowid`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var v store.Verdict
		var ver int
		var vat int64
		if err := rows.Scan(&ver, &v.Code, &v.Message, &v.Subject, &vat); err != nil {
			return nil, err
		}
		v.Verified, v.At = ver == 1, time.UnixMilli(vat)
		r.Verdicts = append(r.Verdicts, v)
	}
	return &r, rows.Err()
}

func (s *liteStore) NextSequence(ctx context.Context, plugin, name string) (int64, error) {
	var v int64
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO sequences (plugin, name, value) VALUES (?, ?, 0) ON CONFLICT DO NOTHING`, plugin, name); err != nil {
		return 0, err
	}
	if err := tx.QueryRowContext(ctx, `UPDATE sequences SET value = value + 1 WHERE plugin = ? AND name = ? RETURNING value`, plugin, name).Scan(&v); err != nil {
		return 0, err
	}
	return v, tx.Commit()
}

func (s *liteStore) ListEvents(ctx context.Context, f store.EventFilter) ([]store.Event, error) {
	q := `SELECT seq, id, type, subject, payload FROM events WHERE seq > ?`
	args := []any{f.AfterSeq}
	if f.Type != "" {
		q += ` AND type = ?`
		args = append(args, f.Type)
	}
	if f.Subject != "" {
		q += ` AND subject = ?`
		args = append(args, f.Subject)
	}
	q += ` ORDER BY seq`
	if f.Limit > 0 {
		q += fmt.Sprintf(` LIMIT %d`, f.Limit)
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Event
	for rows.Next() {
		var e store.Event
		var pl string
		if err := rows.Scan(&e.Seq, &e.ID, &e.Type, &e.Subject, &pl); err != nil {
			return nil, err
		}
		e.Payload = json.RawMessage(pl)
		out = append(out, e)
	}
	return out, rows.Err()
}

func (s *liteStore) Close() error   { return s.db.Close() }
func (s *liteStore) Driver() string { return "sqlite" }

type liteTx struct {
	tx *sql.Tx
	s  *liteStore
}

func (t *liteTx) Emit(ctx context.Context, ev store.NewEvent) (store.Event, error) {
	id := fmt.Sprintf("EV%012d", t.s.seq.Add(1))
	if _, err := t.tx.ExecContext(ctx, `INSERT INTO events (id, type, subject, payload, created_at) VALUES (?, ?, ?, ?, ?)`,
		id, ev.Type, ev.Subject, string(ev.Payload), time.Now().UnixMilli()); err != nil {
		return store.Event{}, err
	}
	return store.Event{ID: id, Type: ev.Type, Subject: ev.Subject, Payload: ev.Payload}, nil
}

func (t *liteTx) AddVerdict(ctx context.Context, rawID int64, v store.Verdict) error {
	ver := 0
	if v.Verified {
		ver = 1
	}
	_, err := t.tx.ExecContext(ctx, `INSERT INTO raw_verdicts (raw_id, verified, code, message, subject, at) VALUES (?, ?, ?, ?, ?, ?)`,
		rawID, ver, v.Code, v.Message, v.Subject, v.At.UnixMilli())
	return err
}

func (t *liteTx) RecordHistory(ctx context.Context, h store.History) error {
	det := string(h.Details)
	if det == "" {
		det = "{}"
	}
	_, err := t.tx.ExecContext(ctx, `INSERT INTO history (entity, id, from_state, to_state, cause, raw_id, details, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		h.Entity, h.ID, h.From, h.To, h.Cause, h.RawID, det, h.At.UnixMilli())
	return err
}

func (t *liteTx) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	res, err := t.tx.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (t *liteTx) QueryRow(ctx context.Context, q string, args ...any) store.Row {
	return t.tx.QueryRowContext(ctx, q, args...)
}

func (t *liteTx) Query(ctx context.Context, q string, args ...any) (store.Rows, error) {
	rows, err := t.tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return rows, nil
}

var _ store.Store = (*liteStore)(nil)

// countEvents counts events by type for a subject prefix.
func (s *liteStore) countEvents(t testing.TB, typ, subject string) int {
	t.Helper()
	var n int
	q := `SELECT COUNT(*) FROM events WHERE type LIKE ? AND subject LIKE ?`
	if err := s.db.QueryRow(q, typ, subject).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
