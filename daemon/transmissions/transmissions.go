// Package transmissions tracks every file acquit sends to a bank until the
// bank's final word on it: submitted -> received -> signature verified ->
// accepted | partially accepted | rejected, or unacknowledged when no final
// acknowledgement comes before the bank's deadline. Acknowledgements (PSR,
// HAC, PTK) are downloaded on a schedule, stored raw, parsed, matched to
// transmissions and merged, never blindly overwritten; each change raises an
// event for the Lua hooks in the same transaction.
package transmissions

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/acquit/acquit/internal/unixms"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/internal/painfile"
	"github.com/acquit/acquit/sdk"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations returns the package's schema (numbers 200-299, files under
// migrations/; times in Unix milliseconds, internal/unixms). Nothing
// applies it on import: whoever opens the store passes it
// (store.WithMigrations), as the daemon's composition root (daemon/server)
// does. A function, not a variable: no importer can swap the set.
func Migrations() store.MigrationSet {
	return store.MigrationSet{Name: "transmissions", FS: mustSub(migrationFiles, "migrations"), Min: 200, Max: 299}
}

func mustSub(fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err) // dir is a constant embedded above
	}
	return sub
}

// State is where a transmission is.
type State string

// Transmission states.
const (
	StateQueued            State = "queued"    // recorded, upload not finished
	StateSubmitted         State = "submitted" // the bank took the upload
	StateReceived          State = "received"  // the bank confirmed receipt (HAC FILE_UPLOAD, PTK)
	StateSignatureVerified State = "signature_verified"
	StateAccepted          State = "accepted"
	StatePartial           State = "partially_accepted"
	StateRejected          State = "rejected"
	StateUnacknowledged    State = "unacknowledged"
	StateFailed            State = "failed" // the upload itself was refused
)

// rank orders the non-final states: an acknowledgement never moves a
// transmission back.
var rank = map[State]int{
	StateQueued: 0, StateSubmitted: 1, StateReceived: 2, StateSignatureVerified: 3, StateUnacknowledged: 3,
	StateAccepted: 4, StatePartial: 5, StateRejected: 6, StateFailed: 6,
}

// States lists every transmission state, in the order a transmission moves.
var States = []State{StateQueued, StateSubmitted, StateReceived, StateSignatureVerified, StateAccepted,
	StatePartial, StateRejected, StateUnacknowledged, StateFailed}

// ErrUnknownState is returned by List for a state filter that names no state.
var ErrUnknownState = errors.New("unknown transmission state")

// Known reports whether s is one of States.
func (s State) Known() bool {
	_, ok := rank[s]
	return ok
}

// Final reports whether the bank has given its final word.
func (s State) Final() bool {
	return s == StateAccepted || s == StatePartial || s == StateRejected || s == StateFailed
}

// Bank is the per-bank tracking configuration.
type Bank struct {
	Name        string
	Plugin      string        // transport plugin name
	AckDeadline time.Duration // after submission; 0 = 24h
	// AckKinds are the acknowledgement functions to download ("psr",
	// "hac", "ptk"), as the bank profile offers them.
	AckKinds []string
	// PTKProfile names the PTK line patterns of the bank (see daemon/acks).
	PTKProfile string
	// OutboxDir, when set, is watched for files to send (BANK/*.xml).
	OutboxDir string
	// Function is the business function used for files from the outbox
	// folder ("sct" by default).
	Function string
}

// Deps are the service's collaborators.
type Deps struct {
	Store     store.Store
	Transport func(plugin string) (sdk.BankTransport, error)
	Banks     []Bank
	SpoolDir  string // durable copies of the files to send; downloads/ holds documents being downloaded
	// MaxDocumentSize is the largest downloaded document stored
	// (0: DefaultMaxDocumentSize).
	MaxDocumentSize int64
	Logger          zerolog.Logger
	Registerer      prometheus.Registerer
	Now             func() time.Time
}

// Service is the transmission tracker.
type Service struct {
	d         Deps
	downloads string // SpoolDir/downloads: one 0700 directory per download call
	maxDoc    int64
	banks     map[string]Bank
	m         metrics
	nonce     string   // this process, in upload lease owners
	sending   sync.Map // transmission id -> *inflight upload in this process
	// afterStore, set by tests, runs once a downloaded document is
	// stored, before it is parsed.
	afterStore func()
}

type metrics struct {
	transitions *prometheus.CounterVec
	uploads     *prometheus.CounterVec
	acks        *prometheus.CounterVec
	unmatched   prometheus.Counter
	rejected    *prometheus.CounterVec
	waiters     prometheus.Gauge
	unsent      *prometheus.CounterVec
}

// New builds the service.
func New(d Deps) (*Service, error) {
	if d.Now == nil {
		d.Now = time.Now
	}
	var nb [6]byte
	_, _ = rand.Read(nb[:])
	s := &Service{d: d, banks: map[string]Bank{}, nonce: fmt.Sprintf("%d-%s", os.Getpid(), hex.EncodeToString(nb[:]))}
	for _, b := range d.Banks {
		if b.AckDeadline <= 0 {
			b.AckDeadline = 24 * time.Hour
		}
		if b.Function == "" {
			b.Function = "sct"
		}
		s.banks[b.Name] = b
	}
	if d.SpoolDir == "" {
		return nil, errors.New("transmissions: SpoolDir is required")
	}
	if err := os.MkdirAll(d.SpoolDir, 0o750); err != nil {
		return nil, fmt.Errorf("transmissions: spool: %w", err)
	}
	s.maxDoc = cmp.Or(d.MaxDocumentSize, DefaultMaxDocumentSize)
	s.downloads = filepath.Join(d.SpoolDir, "downloads")
	if err := os.MkdirAll(s.downloads, 0o700); err != nil {
		return nil, fmt.Errorf("transmissions: download spool: %w", err)
	}
	if err := os.Chmod(s.downloads, 0o700); err != nil {
		return nil, fmt.Errorf("transmissions: download spool: %w", err)
	}
	s.sweepDownloads()
	s.m = metrics{
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "acquit_transmission_transitions_total", Help: "Transmission state changes by bank and new state."}, []string{"bank", "state"}),
		uploads:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "acquit_transmission_uploads_total", Help: "Upload attempts by bank and result."}, []string{"bank", "result"}),
		acks:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "acquit_acks_downloaded_total", Help: "Acknowledgement documents by bank, kind and result (new, duplicate, bad, refused)."}, []string{"bank", "kind", "result"}),
		unmatched:   prometheus.NewCounter(prometheus.CounterOpts{Name: "acquit_acks_unmatched_total", Help: "Acknowledgement entries that matched no transmission."}),
		rejected:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "acquit_acks_rejected_input_total", Help: "Downloaded documents refused as hostile or malformed, by reason."}, []string{"bank", "reason"}),
		waiters:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "acquit_transmission_upload_waiters", Help: "Callers waiting for an upload in progress by another uploader (wait=true)."}),
		unsent:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "acquit_transmission_unsent_total", Help: "Transmissions still not taken by the bank at their ack_deadline after submission to acquit (transmission.unsent)."}, []string{"bank"}),
	}
	if d.Registerer != nil {
		for _, c := range []prometheus.Collector{s.m.transitions, s.m.uploads, s.m.acks, s.m.unmatched, s.m.rejected, s.m.waiters, s.m.unsent} {
			if err := d.Registerer.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

// Transmission is one file sent to a bank.
type Transmission struct {
	ID             string          `json:"id"`
	Bank           string          `json:"bank"`
	Function       string          `json:"function"`
	FileName       string          `json:"file_name"`
	SpoolPath      string          `json:"spool_path"`
	SHA256         string          `json:"sha256"`
	Size           int64           `json:"size"`
	Kind           string          `json:"kind"`
	MsgID          string          `json:"msg_id"`
	NbOfTxs        int64           `json:"nb_of_txs"`
	CtrlSum        string          `json:"ctrl_sum"`
	State          State           `json:"state"`
	OrderID        string          `json:"order_id,omitempty"`
	TransactionID  string          `json:"transaction_id,omitempty"`
	PartnerID      string          `json:"partner_id,omitempty"`
	UploadAttempts int64           `json:"upload_attempts"`
	LastError      string          `json:"last_error,omitempty"`
	Details        json.RawMessage `json:"details,omitempty"`
	CreatedAt      time.Time       `json:"created_at"`
	SubmittedAt    time.Time       `json:"submitted_at,omitzero"`
	DeadlineAt     time.Time       `json:"deadline_at,omitzero"`
	UpdatedAt      time.Time       `json:"updated_at"`
	Version        int64           `json:"version"`
	// Currency is the currency of every transaction of the file ("" when
	// they differ or the file has none), recorded at submission.
	Currency string `json:"currency,omitempty"`
}

const txCols = `id, bank, function, file_name, spool_path, sha256, size, kind, msg_id, nb_of_txs, ctrl_sum, state,
	order_id, transaction_id, partner_id, upload_attempts, last_error, details, created_ms, submitted_ms, deadline_ms, updated_ms, version, currency`

func scanTransmission(r store.Row) (*Transmission, error) {
	var t Transmission
	var details string
	var c, sub, dl, up int64
	if err := r.Scan(&t.ID, &t.Bank, &t.Function, &t.FileName, &t.SpoolPath, &t.SHA256, &t.Size, &t.Kind, &t.MsgID,
		&t.NbOfTxs, &t.CtrlSum, &t.State, &t.OrderID, &t.TransactionID, &t.PartnerID, &t.UploadAttempts, &t.LastError,
		&details, &c, &sub, &dl, &up, &t.Version, &t.Currency); err != nil {
		return nil, err
	}
	t.Details = json.RawMessage(details)
	t.CreatedAt, t.SubmittedAt, t.DeadlineAt, t.UpdatedAt = unixms.Time(c), unixms.Time(sub), unixms.Time(dl), unixms.Time(up)
	return &t, nil
}

func newID(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + time.Now().UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b[:])
}

// ErrUnknownBank is returned for a bank not in the configuration.
var ErrUnknownBank = errors.New("unknown bank")

// SubmitResult tells whether Submit created a transmission or found the
// same file already recorded.
type SubmitResult struct {
	Transmission *Transmission
	Existing     bool
}

// Submit records a file to send to bank. It reads the file ONCE: each
// block is copied durably into the spool, hashed and parsed for its
// identifiers (MsgId, PmtInfIds, EndToEndIds and amounts) by a goroutine
// reading the same stream; the transactions go to the store in batches as
// they are parsed (staged under the new transmission's id, invisible until
// the transmission row commits last), so memory does not grow with the
// file. The same content submitted again for the same bank returns the
// existing transmission: a file is never sent twice, however often it is
// dropped.
func (s *Service) Submit(ctx context.Context, bankName, function, path string) (*SubmitResult, error) {
	bank, ok := s.banks[bankName]
	if !ok {
		return nil, fmt.Errorf("submit %s: %w %q", filepath.Base(path), ErrUnknownBank, bankName)
	}
	if function == "" {
		function = bank.Function
	}
	s.purgeStaging(ctx)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("submit: %w", err)
	}
	defer f.Close()
	tmp, err := os.CreateTemp(s.d.SpoolDir, ".incoming-*")
	if err != nil {
		return nil, fmt.Errorf("submit: spool: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	id := newID("T")
	if err := s.d.Store.InTx(ctx, func(tx store.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO transmission_staging (id, bank, started_ms) VALUES (?, ?, ?)`, id, bankName, s.d.Now().UnixMilli())
		return err
	}); err != nil {
		return nil, fmt.Errorf("submit %s: %w", filepath.Base(path), err)
	}
	committed := false
	defer func() {
		if !committed {
			s.dropStaged(context.WithoutCancel(ctx), id)
		}
	}()
	h := sha256.New()
	pr, pw := io.Pipe()
	parsed := make(chan scanResult, 1)
	go func() {
		info, err := s.stageTxs(ctx, id, pr)
		if err != nil {
			pr.CloseWithError(err) // ends the copy at once
		} else {
			_, _ = io.Copy(io.Discard, pr) // whatever follows the document
		}
		parsed <- scanResult{info, err}
	}()
	size, cerr := io.CopyBuffer(io.MultiWriter(tmp, h, pw), struct{ io.Reader }{f}, make([]byte, 256<<10))
	pw.CloseWithError(cerr)
	res := <-parsed
	if res.err != nil {
		return nil, fmt.Errorf("submit %s: %w", filepath.Base(path), res.err)
	}
	if cerr != nil {
		return nil, fmt.Errorf("submit %s: copy: %w", path, cerr)
	}
	if err := tmp.Sync(); err != nil {
		return nil, fmt.Errorf("submit: fsync: %w", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if existing, err := s.bySHA(ctx, bankName, sum); err == nil {
		return &SubmitResult{Transmission: existing, Existing: true}, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	info := res.info
	spool := filepath.Join(s.d.SpoolDir, id+".xml")
	if err := os.Rename(tmp.Name(), spool); err != nil {
		return nil, fmt.Errorf("submit: spool rename: %w", err)
	}
	if err := syncDir(s.d.SpoolDir); err != nil {
		return nil, err
	}
	now := s.d.Now()
	nb := info.Count
	t := &Transmission{ID: id, Bank: bankName, Function: function, FileName: filepath.Base(path), SpoolPath: spool,
		SHA256: sum, Size: size, Kind: info.Kind, MsgID: info.MsgID, NbOfTxs: nb, CtrlSum: info.CtrlSum,
		State: StateQueued, CreatedAt: now, UpdatedAt: now, Version: 1, Details: json.RawMessage("{}"), Currency: info.Currency}
	err = s.d.Store.InTx(ctx, func(tx store.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO transmissions (`+txCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
			t.ID, t.Bank, t.Function, t.FileName, t.SpoolPath, t.SHA256, t.Size, t.Kind, t.MsgID, t.NbOfTxs, t.CtrlSum,
			string(t.State), "", "", "", 0, "", "{}", now.UnixMilli(), 0, 0, now.UnixMilli(), 1, t.Currency)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM transmission_staging WHERE id = ?`, id); err != nil {
			return err
		}
		return tx.RecordHistory(ctx, store.History{Entity: "transmission", ID: t.ID, From: "", To: string(StateQueued),
			Cause: "submit", At: now})
	})
	if err != nil {
		os.Remove(spool)
		// Lost a race with the same file submitted concurrently.
		if existing, err2 := s.bySHA(ctx, bankName, sum); err2 == nil {
			return &SubmitResult{Transmission: existing, Existing: true}, nil
		}
		return nil, fmt.Errorf("submit %s: %w", t.FileName, err)
	}
	committed = true
	s.d.Logger.Info().Str("transmission", t.ID).Str("bank", bankName).Str("msg_id", t.MsgID).Int64("txs", nb).
		Str("sha256", sum).Msg("transmission recorded")
	return &SubmitResult{Transmission: t}, nil
}

type scanResult struct {
	info *painfile.Info
	err  error
}

// Staged transactions are written stageBatch at a time, each batch in its
// own store transaction (so the single SQLite writer is never held for a
// whole file), in multi-row INSERTs of txRows rows (txRows*9 placeholders,
// below the limits of SQLite and PostgreSQL).
const stageBatch, txRows = 2000, 250

// stageTxs parses the document from r and writes its transactions to
// transmission_txs under id, batch by batch, while the parse goes on: the
// parser fills one batch while the previous one is written. At most two
// batches are held.
func (s *Service) stageTxs(ctx context.Context, id string, r io.Reader) (*painfile.Info, error) {
	batches := make(chan []painfile.Tx, 1)
	written := make(chan error, 1)
	go func() {
		var seq int64
		var err error
		for b := range batches {
			if err == nil {
				err = s.writeTxs(ctx, id, seq, b)
			}
			seq += int64(len(b))
		}
		written <- err
	}()
	cur := make([]painfile.Tx, 0, stageBatch)
	failed := func() error {
		select {
		case err := <-written:
			written <- err
			return err
		default:
			return nil
		}
	}
	info, err := painfile.Scan(r, func(x painfile.Tx) error {
		cur = append(cur, x)
		if len(cur) == stageBatch {
			if err := failed(); err != nil {
				return err
			}
			batches <- cur
			cur = make([]painfile.Tx, 0, stageBatch)
		}
		return nil
	}, false)
	if err == nil && len(cur) > 0 {
		batches <- cur
	}
	close(batches)
	if werr := <-written; err == nil && werr != nil {
		err = fmt.Errorf("store transactions: %w", werr)
	}
	return info, err
}

// writeTxs inserts one batch of staged transactions, numbered from seq+1.
func (s *Service) writeTxs(ctx context.Context, id string, seq int64, b []painfile.Tx) error {
	return s.d.Store.InTx(ctx, func(tx store.Tx) error {
		args := make([]any, 0, txRows*9)
		for len(b) > 0 {
			n := min(len(b), txRows)
			args = args[:0]
			for _, x := range b[:n] {
				seq++
				args = append(args, id, seq, x.PmtInfID, x.EndToEndID, x.InstrID, x.Amount, x.Currency, x.Name, x.IBAN)
			}
			q := `INSERT INTO transmission_txs (transmission_id, seq, pmt_inf_id, end_to_end_id, instr_id, amount, currency, name, iban) VALUES ` +
				strings.TrimSuffix(strings.Repeat("(?,?,?,?,?,?,?,?,?),", n), ",")
			if _, err := tx.Exec(ctx, q, args...); err != nil {
				return err
			}
			b = b[n:]
		}
		return nil
	})
}

// dropStaged removes the staged transactions of a submission that did not
// commit (refused, duplicate, failed).
func (s *Service) dropStaged(ctx context.Context, id string) {
	err := s.d.Store.InTx(ctx, func(tx store.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM transmission_txs WHERE transmission_id = ? AND transmission_id IN (SELECT id FROM transmission_staging)`, id); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM transmission_staging WHERE id = ?`, id)
		return err
	})
	if err != nil {
		s.d.Logger.Warn().Err(err).Str("staging", id).Msg("removing the staged transactions of an unfinished submission; purged later")
	}
}

// stagingTTL is how long an unfinished submission's staged transactions
// are kept: past it, the submission was interrupted (a crash).
const stagingTTL = 6 * time.Hour

// purgeStaging removes the staged transactions of submissions interrupted
// more than stagingTTL ago.
func (s *Service) purgeStaging(ctx context.Context) {
	var ids []string
	err := s.d.Store.InTx(ctx, func(tx store.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id FROM transmission_staging WHERE started_ms < ? LIMIT 100`, s.d.Now().Add(-stagingTTL).UnixMilli())
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return rows.Err()
	})
	if err != nil {
		s.d.Logger.Warn().Err(err).Msg("listing interrupted submissions")
		return
	}
	for _, id := range ids {
		s.d.Logger.Warn().Str("staging", id).Msg("purging the staged transactions of a submission interrupted before it was recorded")
		s.dropStaged(ctx, id)
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (s *Service) bySHA(ctx context.Context, bank, sum string) (*Transmission, error) {
	var t *Transmission
	err := s.d.Store.InTx(ctx, func(tx store.Tx) error {
		var err error
		t, err = scanTransmission(tx.QueryRow(ctx, `SELECT `+txCols+` FROM transmissions WHERE bank = ? AND sha256 = ?`, bank, sum))
		return err
	})
	return t, notFound(err)
}

func notFound(err error) error {
	if err != nil && (errors.Is(err, store.ErrNotFound) || strings.Contains(err.Error(), "no rows")) {
		return store.ErrNotFound
	}
	return err
}

// loadTransmission reads transmission id inside tx.
func loadTransmission(ctx context.Context, tx store.Tx, id string) (*Transmission, error) {
	return scanTransmission(tx.QueryRow(ctx, `SELECT `+txCols+` FROM transmissions WHERE id = ?`, id))
}

// Get returns one transmission.
func (s *Service) Get(ctx context.Context, id string) (*Transmission, error) {
	var t *Transmission
	err := s.d.Store.View(ctx, func(tx store.Tx) error {
		var err error
		t, err = loadTransmission(ctx, tx, id)
		return err
	})
	return t, notFound(err)
}

// List returns transmissions, newest first, optionally of one state.
func (s *Service) List(ctx context.Context, state string, limit int) ([]Transmission, error) {
	if limit <= 0 {
		limit = 100
	}
	if state != "" && !State(state).Known() {
		return nil, fmt.Errorf("%w %q (one of %s)", ErrUnknownState, state, joinStates())
	}
	var out []Transmission
	err := s.d.Store.View(ctx, func(tx store.Tx) error {
		q := `SELECT ` + txCols + ` FROM transmissions`
		args := []any{}
		if state != "" {
			q += ` WHERE state = ?`
			args = append(args, state)
		}
		q += ` ORDER BY created_ms DESC, id DESC LIMIT ?`
		args = append(args, limit)
		rows, err := tx.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			t, err := scanTransmission(rows)
			if err != nil {
				return err
			}
			out = append(out, *t)
		}
		return rows.Err()
	})
	return out, err
}

func joinStates() string {
	names := make([]string, len(States))
	for i, st := range States {
		names[i] = string(st)
	}
	return strings.Join(names, ", ")
}

// TxStatus is one transaction of a transmission with its latest status.
type TxStatus struct {
	Seq        int64  `json:"seq"`
	PmtInfID   string `json:"pmt_inf_id"`
	EndToEndID string `json:"end_to_end_id"`
	Amount     string `json:"amount"`
	Currency   string `json:"currency"`
	Name       string `json:"name,omitempty"`
	Status     string `json:"status,omitempty"`
	ReasonCode string `json:"reason_code,omitempty"`
	ReasonText string `json:"reason_text,omitempty"`
}

func (s *Service) txs(ctx context.Context, tx store.Tx, id string, onlyStatus bool) ([]TxStatus, error) {
	q := `SELECT seq, pmt_inf_id, end_to_end_id, amount, currency, name, status, reason_code, reason_text FROM transmission_txs WHERE transmission_id = ?`
	if onlyStatus {
		q += ` AND status <> ''`
	}
	rows, err := tx.Query(ctx, q+` ORDER BY seq`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []TxStatus
	for rows.Next() {
		var x TxStatus
		if err := rows.Scan(&x.Seq, &x.PmtInfID, &x.EndToEndID, &x.Amount, &x.Currency, &x.Name, &x.Status, &x.ReasonCode, &x.ReasonText); err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, rows.Err()
}

// transition moves t to state inside tx (optimistic on version), records
// history and emits the event, if any.
func (s *Service) transition(ctx context.Context, tx store.Tx, t *Transmission, to State, cause string, rawID int64, evType string, payload map[string]any, set map[string]any) error {
	now := s.d.Now()
	q := `UPDATE transmissions SET state = ?, updated_ms = ?, version = version + 1`
	args := []any{string(to), now.UnixMilli()}
	for _, k := range []string{"order_id", "transaction_id", "partner_id", "submitted_ms", "deadline_ms", "last_error", "details", "upload_attempts"} {
		if v, ok := set[k]; ok {
			q += `, ` + k + ` = ?`
			args = append(args, v)
		}
	}
	q += ` WHERE id = ? AND version = ?`
	args = append(args, t.ID, t.Version)
	n, err := tx.Exec(ctx, q, args...)
	if err != nil {
		return err
	}
	if n != 1 {
		return fmt.Errorf("transmission %s changed concurrently: %w", t.ID, store.ErrConflict)
	}
	details, _ := json.Marshal(map[string]any{"event": evType})
	if err := tx.RecordHistory(ctx, store.History{Entity: "transmission", ID: t.ID, From: string(t.State), To: string(to),
		Cause: cause, RawID: rawID, Details: details, At: now}); err != nil {
		return err
	}
	from := t.State
	t.State, t.Version, t.UpdatedAt = to, t.Version+1, now
	if evType != "" {
		if payload == nil {
			payload = map[string]any{}
		}
		payload["transmission"] = t
		payload["previous_state"] = from
		b, err := json.Marshal(payload)
		if err != nil {
			return err
		}
		if _, err := tx.Emit(ctx, store.NewEvent{Type: evType, Subject: "transmission:" + t.ID, Payload: b}); err != nil {
			return err
		}
	}
	s.m.transitions.WithLabelValues(t.Bank, string(to)).Inc()
	return nil
}

// sweepDownloads removes download directories, and private copies of
// documents being ingested, left by a process that died during a download
// (not confirmed: the bank delivers those documents again). Only those
// older than a day go: another process on the same spool (a second
// instance) may be downloading now.
func (s *Service) sweepDownloads() {
	entries, err := os.ReadDir(s.downloads)
	if err != nil {
		return
	}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil || !(strings.HasPrefix(e.Name(), "fetch-") || strings.HasPrefix(e.Name(), ingestCopyPrefix)) ||
			time.Since(fi.ModTime()) < 24*time.Hour {
			continue
		}
		if err := os.RemoveAll(filepath.Join(s.downloads, e.Name())); err == nil {
			s.d.Logger.Info().Str("dir", e.Name()).Msg("removed a download directory left by an earlier process")
		}
	}
}
