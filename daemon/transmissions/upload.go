package transmissions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/sdk"
)

// ErrBusy is returned when another worker or instance holds the upload.
var ErrBusy = errors.New("upload in progress elsewhere")

// leaseOwner names this process as an upload lease holder: the instance
// name, then a per-process nonce. Leases of the same instance held by
// another (dead) process are taken over at once after a restart; leases of
// other instances only once expired.
func (s *Service) leaseOwner(instance string) string {
	return instance + "/" + s.nonce
}

// inflight is one upload running in this process. done is closed when it
// ends, after t and err hold the outcome of Send; claimed says the lease was
// taken (an upload really ran), so the outcome is that upload's.
type inflight struct {
	done    chan struct{}
	claimed bool
	t       *Transmission
	err     error
}

// claim takes the upload lease of a queued transmission for this process.
// Within the process, s.sending keeps one upload per transmission; the
// caller ends the returned inflight with s.finish.
func (s *Service) claim(ctx context.Context, id, instance string, lease time.Duration) (*Transmission, *inflight, error) {
	fl := &inflight{done: make(chan struct{})}
	if _, busy := s.sending.LoadOrStore(id, fl); busy {
		return nil, nil, ErrBusy
	}
	owner := s.leaseOwner(instance)
	var t *Transmission
	err := s.d.Store.InTx(ctx, func(tx store.Tx) error {
		now := s.d.Now().UnixMilli()
		n, err := tx.Exec(ctx, `UPDATE transmissions SET lease_owner = ?, lease_until_ms = ?, upload_attempts = upload_attempts + 1
			WHERE id = ? AND state = ? AND (lease_until_ms < ? OR lease_owner = '' OR lease_owner = ? OR
			(lease_owner LIKE ? AND lease_owner <> ?))`,
			owner, now+lease.Milliseconds(), id, string(StateQueued), now, owner, instance+"/%", owner)
		if err != nil {
			return err
		}
		if n != 1 {
			return ErrBusy
		}
		t, err = loadTransmission(ctx, tx, id)
		return err
	})
	if err != nil {
		s.finish(id, fl, nil, err)
		return nil, nil, err
	}
	fl.claimed = true
	return t, fl, nil
}

// finish records the outcome of an inflight upload, lets another upload of
// the transmission start in this process and wakes the callers waiting for it.
func (s *Service) finish(id string, fl *inflight, t *Transmission, err error) {
	fl.t, fl.err = t, err
	s.sending.CompareAndDelete(id, fl)
	close(fl.done)
}

func (s *Service) release(ctx context.Context, id, instance, errText string) {
	_ = s.d.Store.InTx(ctx, func(tx store.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE transmissions SET lease_owner = '', lease_until_ms = 0, last_error = ? WHERE id = ? AND lease_owner = ?`,
			errText, id, s.leaseOwner(instance))
		return err
	})
}

// SendWait is Send for a caller that wants the outcome of the upload: when
// another uploader holds the transmission (the send loop of this process, or
// another process or instance holding the lease), it waits for that upload
// to end and reports its outcome (the transmission once submitted or
// refused, or that uploader's error) instead of ErrBusy. An expired lease is
// taken over and the upload done here. It gives up when ctx ends.
func (s *Service) SendWait(ctx context.Context, id, owner string, progress func(sent, total int64)) (*Transmission, error) {
	for {
		t, err := s.Send(ctx, id, owner, progress)
		if !errors.Is(err, ErrBusy) {
			return t, err
		}
		if v, ok := s.sending.Load(id); ok {
			fl := v.(*inflight)
			s.m.waiters.Inc()
			select {
			case <-fl.done:
			case <-ctx.Done():
			}
			s.m.waiters.Dec()
			if ctx.Err() != nil {
				return nil, fmt.Errorf("send %s: waiting for the upload in progress: %w", id, ctx.Err())
			}
			if fl.claimed {
				return fl.t, fl.err
			}
			continue // that caller did not get the lease either: look again
		}
		// Another process holds the lease: watch the row until it ends.
		done, t, err := s.watchLease(ctx, id)
		if done {
			return t, err
		}
	}
}

// watchLease follows a transmission whose upload lease another process
// holds. done is false when the lease turns out free or expired (the caller
// may take it); otherwise t and err are that upload's outcome.
func (s *Service) watchLease(ctx context.Context, id string) (done bool, t *Transmission, err error) {
	heldElsewhere := false // the lease was seen held by another process
	var poll *time.Ticker
	for {
		var state, leaseOwner, lastError string
		var leaseUntil int64
		err = s.d.Store.InTx(ctx, func(tx store.Tx) error {
			return tx.QueryRow(ctx, `SELECT state, lease_owner, lease_until_ms, last_error FROM transmissions WHERE id = ?`, id).
				Scan(&state, &leaseOwner, &leaseUntil, &lastError)
		})
		if err != nil {
			return true, nil, fmt.Errorf("send %s: waiting for the upload in progress: %w", id, err)
		}
		switch {
		case state != string(StateQueued):
			t, err = s.Get(ctx, id)
			return true, t, err
		case leaseOwner == "" && heldElsewhere:
			return true, nil, fmt.Errorf("send %s: upload by another uploader failed: %s", id, lastError)
		case leaseOwner == "" || leaseUntil < s.d.Now().UnixMilli():
			return false, nil, nil
		}
		heldElsewhere = true
		if poll == nil {
			poll = time.NewTicker(200 * time.Millisecond)
			defer poll.Stop()
			s.m.waiters.Inc()
			defer s.m.waiters.Dec()
		}
		select {
		case <-poll.C:
		case <-ctx.Done():
			return true, nil, fmt.Errorf("send %s: waiting for the upload in progress: %w", id, ctx.Err())
		}
	}
}

// Send uploads a queued transmission through its bank's transport plugin.
// It is safe to call again after a crash or from several instances: the
// lease keeps one uploader at a time and the plugin resumes or recovers the
// order by TransmissionID, never creating a second one. A refusal by the
// bank (a *sdk.RejectError) makes the transmission failed and raises
// transmission.rejected; any other error leaves it queued for a retry.
func (s *Service) Send(ctx context.Context, id, owner string, progress func(sent, total int64)) (_ *Transmission, err error) {
	t, fl, err := s.claim(ctx, id, owner, 30*time.Minute)
	if err == nil {
		defer func() {
			if err != nil {
				s.finish(id, fl, nil, err)
			} else {
				s.finish(id, fl, t, nil)
			}
		}()
	}
	if err != nil {
		if errors.Is(err, ErrBusy) {
			if cur, err2 := s.Get(ctx, id); err2 == nil && cur.State != StateQueued {
				return cur, nil // already sent
			}
		}
		return nil, fmt.Errorf("send %s: %w", id, err)
	}
	bank := s.banks[t.Bank]
	tr, err := s.d.Transport(bank.Plugin)
	if err != nil {
		s.release(ctx, id, owner, err.Error())
		return nil, fmt.Errorf("send %s: %w", id, err)
	}
	if progress == nil {
		progress = func(int64, int64) {}
	}
	log := s.d.Logger.With().Str("transmission", id).Str("bank", t.Bank).Logger()
	log.Info().Int64("attempt", t.UploadAttempts).Int64("size", t.Size).Msg("upload starting")
	// The identifiers read at submission go along, so the plugin need not
	// parse the file again (it reads it once, to hash and spool it).
	res, err := tr.Upload(ctx, sdk.UploadRequest{Bank: t.Bank, TransmissionID: t.ID, Function: t.Function,
		Path: t.SpoolPath, SHA256: t.SHA256, Size: t.Size,
		Params: map[string]string{"msg_id": t.MsgID, "nb_of_txs": strconv.FormatInt(t.NbOfTxs, 10), "ctrl_sum": t.CtrlSum}}, progress)
	if err != nil {
		var rej *sdk.RejectError
		if errors.As(err, &rej) {
			s.m.uploads.WithLabelValues(t.Bank, "refused").Inc()
			log.Warn().Str("code", rej.Code).Str("reason", rej.Message).Msg("bank refused the upload")
			err2 := s.d.Store.InTx(ctx, func(tx store.Tx) error {
				// Read again: the row may have changed during the upload
				// (transmission.unsent raised meanwhile).
				cur, err := loadTransmission(ctx, tx, id)
				if err != nil {
					return err
				}
				*t = *cur
				return s.transition(ctx, tx, t, StateFailed, "upload", 0, "transmission.rejected",
					map[string]any{"stage": "upload", "reason_code": rej.Code, "reason_text": rej.Message},
					map[string]any{"last_error": rej.Error()})
			})
			if err2 != nil {
				s.release(ctx, id, owner, err.Error())
				return nil, fmt.Errorf("send %s: record refusal: %w", id, err2)
			}
			s.release(ctx, id, owner, rej.Error())
			return t, nil
		}
		s.m.uploads.WithLabelValues(t.Bank, "error").Inc()
		log.Warn().Err(err).Msg("upload failed; will retry")
		s.release(ctx, id, owner, err.Error())
		return nil, fmt.Errorf("ebics upload %s: %w", id, err)
	}
	s.m.uploads.WithLabelValues(t.Bank, "ok").Inc()
	now := s.d.Now()
	// The plugin's details may list every transaction: acquit read those
	// from the file itself at submission, so only the short values are kept
	// (events must stay small whatever the file size).
	small := map[string]string{}
	for k, v := range res.Details {
		if len(v) <= 1024 {
			small[k] = v
		} else {
			small[k+"_bytes"] = fmt.Sprint(len(v))
		}
	}
	details := map[string]any{"segments": res.Segments, "resumed": res.Resumed, "return_code": res.ReturnCode,
		"return_text": res.ReturnText, "plugin": small}
	db, _ := json.Marshal(details)
	set := map[string]any{"order_id": res.OrderID, "transaction_id": res.TransactionID,
		"partner_id": res.Details["partner_id"], "submitted_ms": now.UnixMilli(),
		"deadline_ms": now.Add(bank.AckDeadline).UnixMilli(), "details": string(db), "last_error": ""}
	evPayload := map[string]any{"segments": res.Segments, "return_code": res.ReturnCode}
	err = s.d.Store.InTx(ctx, func(tx store.Tx) error {
		cur, err := loadTransmission(ctx, tx, id)
		if err != nil {
			return err
		}
		if cur.State == StateQueued {
			return s.transition(ctx, tx, cur, StateSubmitted, "upload", 0, "transmission.submitted", evPayload, set)
		}
		// An acknowledgement got here first (fetched while a resumed upload
		// was finishing): keep its state, record the submission beside it.
		deadline := set["deadline_ms"]
		if cur.DeadlineAt.After(time.Time{}) || cur.State.Final() {
			deadline = cur.DeadlineAt.UnixMilli()
		}
		set["deadline_ms"] = deadline
		return s.transition(ctx, tx, cur, cur.State, "upload recorded after acknowledgement", 0, "transmission.submitted", evPayload, set)
	})
	if err != nil {
		s.release(ctx, id, owner, err.Error())
		return nil, fmt.Errorf("send %s: record submission: %w", id, err)
	}
	if cur, err := s.Get(ctx, id); err == nil {
		t = cur
	} else {
		t.OrderID, t.TransactionID, t.SubmittedAt = res.OrderID, res.TransactionID, now
	}
	s.release(ctx, id, owner, "")
	if err := s.relink(ctx, t); err != nil {
		log.Warn().Err(err).Msg("matching earlier acknowledgement entries")
	} else if cur, err := s.Get(ctx, id); err == nil {
		t = cur
	}
	log.Info().Str("order_id", res.OrderID).Int("segments", res.Segments).Bool("resumed", res.Resumed).Msg("upload done")
	return t, nil
}

// SendPending uploads every queued transmission whose retry is due. Retry
// delays grow with the number of attempts (5 s doubling, at most 10 min).
func (s *Service) SendPending(ctx context.Context, owner string) (sent int, err error) {
	queued, err := s.List(ctx, string(StateQueued), 1000)
	if err != nil {
		return 0, err
	}
	now := s.d.Now()
	for _, t := range queued {
		if t.UploadAttempts > 0 {
			delay := 5 * time.Second << min(t.UploadAttempts-1, 7)
			if delay > 10*time.Minute {
				delay = 10 * time.Minute
			}
			if now.Sub(t.UpdatedAt) < delay && t.LastError != "" {
				continue
			}
		}
		if _, err := s.Send(ctx, t.ID, owner, nil); err == nil {
			sent++
		}
	}
	return sent, nil
}

// CheckDeadlines marks transmissions with no final acknowledgement past
// their bank's deadline as unacknowledged and raises
// transmission.unacknowledged (once per transmission), and raises
// transmission.unsent for those the bank never took (checkUnsent). It
// reports how many alarms it raised.
func (s *Service) CheckDeadlines(ctx context.Context) (int, error) {
	n, err := s.checkUnacknowledged(ctx)
	if err != nil {
		return n, err
	}
	m, err := s.checkUnsent(ctx)
	return n + m, err
}

// causeUnsent is the history cause of the transmission.unsent alarm; its
// history row is what keeps it from being raised twice.
const causeUnsent = "unsent"

// checkUnsent raises transmission.unsent, once, for each transmission
// still queued its bank's ack_deadline after it was submitted to acquit.
// The acknowledgement deadline starts when the bank takes the file; a
// file it never takes (the bank unreachable for days, an upload failing at
// every attempt) would otherwise wait without a word. The state stays
// queued and the uploads go on: sending late may still be wanted, and the
// operator decides.
func (s *Service) checkUnsent(ctx context.Context) (int, error) {
	// Only those not raised yet: this runs every few seconds, and a file
	// the bank has not taken for days must not cost a transaction each time.
	overdue, err := s.overdueQueued(ctx, 1000, true)
	if err != nil {
		return 0, err
	}
	n := 0
	for i := range overdue {
		t := &overdue[i]
		deadline := t.CreatedAt.Add(s.banks[t.Bank].AckDeadline)
		raised := false
		err := s.d.Store.InTx(ctx, func(tx store.Tx) error {
			// Again inside the transaction: another instance may have
			// raised it since the list was read.
			var one int
			err := tx.QueryRow(ctx, `SELECT 1 FROM history WHERE entity = 'transmission' AND entity_id = ? AND cause = ?`,
				t.ID, causeUnsent).Scan(&one)
			if err == nil {
				return nil // raised before
			}
			if !errors.Is(err, store.ErrNotFound) {
				return err
			}
			raised = true
			return s.transition(ctx, tx, t, StateQueued, causeUnsent, 0, "transmission.unsent",
				map[string]any{"deadline": deadline, "upload_attempts": t.UploadAttempts, "last_error": t.LastError}, nil)
		})
		if errors.Is(err, store.ErrConflict) {
			continue // an upload attempt changed it: next time
		}
		if err != nil {
			return n, fmt.Errorf("transmission %s: unsent alarm: %w", t.ID, err)
		}
		if !raised {
			continue
		}
		s.m.unsent.WithLabelValues(t.Bank).Inc()
		s.d.Logger.Warn().Str("transmission", t.ID).Str("bank", t.Bank).Str("file", t.FileName).Time("deadline", deadline).
			Int64("upload_attempts", t.UploadAttempts).Str("last_error", t.LastError).Msg("transmission still not taken by the bank at its deadline")
		n++
	}
	return n, nil
}

// Unsent lists, oldest first, at most limit transmissions still queued
// (never taken by the bank) their bank's ack_deadline after they were
// submitted to acquit: those transmission.unsent is about. Each bank is
// read oldest first, so however many newer files wait, the overdue ones
// are found.
func (s *Service) Unsent(ctx context.Context, limit int) ([]Transmission, error) {
	return s.overdueQueued(ctx, limit, false)
}

// overdueQueued is Unsent; notRaised leaves out the transmissions
// transmission.unsent was raised for (their history row, causeUnsent).
func (s *Service) overdueQueued(ctx context.Context, limit int, notRaised bool) ([]Transmission, error) {
	cond := ""
	if notRaised {
		cond = ` AND NOT EXISTS (SELECT 1 FROM history WHERE entity = 'transmission' AND entity_id = transmissions.id AND cause = '` +
			causeUnsent + `')`
	}
	now := s.d.Now()
	names := make([]string, 0, len(s.banks))
	for n := range s.banks {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []Transmission
	err := s.d.Store.View(ctx, func(tx store.Tx) error {
		for _, name := range names {
			cutoff := now.Add(-s.banks[name].AckDeadline).UnixMilli()
			rows, err := tx.Query(ctx, `SELECT `+txCols+` FROM transmissions WHERE state = ? AND bank = ? AND created_ms <= ?`+cond+`
				ORDER BY created_ms, id LIMIT ?`, string(StateQueued), name, cutoff, limit)
			if err != nil {
				return err
			}
			for rows.Next() {
				t, err := scanTransmission(rows)
				if err != nil {
					rows.Close()
					return err
				}
				out = append(out, *t)
			}
			err = rows.Err()
			rows.Close()
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// checkUnacknowledged is CheckDeadlines for transmissions the bank took.
func (s *Service) checkUnacknowledged(ctx context.Context) (int, error) {
	now := s.d.Now().UnixMilli()
	var due []Transmission
	err := s.d.Store.View(ctx, func(tx store.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+txCols+` FROM transmissions WHERE state IN (?, ?, ?) AND deadline_ms > 0 AND deadline_ms <= ?`,
			string(StateSubmitted), string(StateReceived), string(StateSignatureVerified), now)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			t, err := scanTransmission(rows)
			if err != nil {
				return err
			}
			due = append(due, *t)
		}
		return rows.Err()
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for i := range due {
		t := &due[i]
		err := s.d.Store.InTx(ctx, func(tx store.Tx) error {
			return s.transition(ctx, tx, t, StateUnacknowledged, "deadline", 0, "transmission.unacknowledged",
				map[string]any{"deadline": t.DeadlineAt, "last_state": t.State}, nil)
		})
		if errors.Is(err, store.ErrConflict) {
			continue // an acknowledgement got there first
		}
		if err != nil {
			return n, err
		}
		s.d.Logger.Warn().Str("transmission", t.ID).Str("bank", t.Bank).Str("order_id", t.OrderID).
			Time("deadline", t.DeadlineAt).Msg("no final acknowledgement before the deadline")
		n++
	}
	return n, nil
}

// ScanOutbox submits and sends the files dropped in each bank's outbox
// folder (OutboxDir/*.xml), then moves each to sent/ (name prefixed with
// the OrderID) or failed/ (with a .reason.txt beside it). Files still being
// written (modified less than settle ago) wait for the next scan. A file
// dropped twice, or found again after a crash, maps to the same transmission
// and is never sent twice.
func (s *Service) ScanOutbox(ctx context.Context, owner string, settle time.Duration) (int, error) {
	handled := 0
	names := make([]string, 0, len(s.banks))
	for n := range s.banks {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		b := s.banks[name]
		if b.OutboxDir == "" {
			continue
		}
		entries, err := os.ReadDir(b.OutboxDir)
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return handled, err
		}
		for _, e := range entries {
			if e.IsDir() || strings.HasPrefix(e.Name(), ".") || !strings.HasSuffix(strings.ToLower(e.Name()), ".xml") {
				continue
			}
			fi, err := e.Info()
			if err != nil || s.d.Now().Sub(fi.ModTime()) < settle {
				continue
			}
			path := filepath.Join(b.OutboxDir, e.Name())
			res, err := s.Submit(ctx, name, b.Function, path)
			if err != nil {
				s.d.Logger.Warn().Err(err).Str("file", path).Msg("outbox file refused")
				moveWithReason(filepath.Join(b.OutboxDir, "failed"), path, err.Error())
				handled++
				continue
			}
			t := res.Transmission
			if t.State == StateQueued {
				if sent, err := s.Send(ctx, t.ID, owner, nil); err == nil {
					t = sent
				} else {
					continue // retried on the next scan (the file stays)
				}
			}
			if t.State == StateFailed {
				moveWithReason(filepath.Join(b.OutboxDir, "failed"), path, t.LastError)
			} else if t.State != StateQueued {
				dst := filepath.Join(b.OutboxDir, "sent")
				_ = os.MkdirAll(dst, 0o750)
				prefix := t.OrderID
				if prefix == "" {
					prefix = t.ID
				}
				_ = os.Rename(path, filepath.Join(dst, prefix+"_"+e.Name()))
			}
			handled++
		}
	}
	return handled, nil
}

func moveWithReason(dir, path, reason string) {
	_ = os.MkdirAll(dir, 0o750)
	dst := filepath.Join(dir, filepath.Base(path))
	_ = os.Rename(path, dst)
	_ = os.WriteFile(dst+".reason.txt", []byte(reason+"\n"), 0o640)
}
