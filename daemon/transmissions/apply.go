package transmissions

import (
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/sdk"
)

// Effect is what an acknowledgement entry says about its transmission.
type Effect string

// Effects, from weakest to strongest.
const (
	EffectNone     Effect = ""
	EffectReceived Effect = "received"
	EffectSigOK    Effect = "signature_verified"
	EffectAccepted Effect = "accepted"
	EffectPartial  Effect = "partially_accepted"
	EffectRejected Effect = "rejected"
)

// MaxRejectedInEvent bounds the rejected transactions listed in one
// event's payload (a rejected file of 100,000 transfers would not fit an
// event); rejected_count and rejected_amount always cover them all, and
// `acquit transmissions show` lists every one.
const MaxRejectedInEvent = 500

// finding is one acknowledgement entry, normalised across PSR, HAC and PTK.
type finding struct {
	Level      string // group, pmtinf, tx, hac, ptk
	Ref        string
	Status     string
	ReasonCode string
	ReasonText string
	At         time.Time
	Effect     Effect
	// Match keys.
	MsgID, PmtInfID, EndToEndID string
	OrderID, PartnerID          string
	Amount, Currency            string
}

// apply matches the entries parsed from doc (fs, or the parse error perr)
// and applies them inside tx.
func (s *Service) apply(ctx context.Context, tx store.Tx, bank, kind string, rawID int64, res *IngestResult, doc sdk.Document, fs []finding, perr error) error {
	if perr != nil {
		res.ParseError = perr.Error()
		s.m.rejected.WithLabelValues(bank, "parse").Inc()
		s.d.Logger.Warn().Err(perr).Str("bank", bank).Str("kind", kind).Str("ack", res.AckID).Msg("acknowledgement could not be parsed; stored raw")
		if _, err := tx.Exec(ctx, `UPDATE acks SET parse_error = ? WHERE id = ?`, res.ParseError, res.AckID); err != nil {
			return err
		}
		if err := tx.AddVerdict(ctx, rawID, store.Verdict{Verified: false, Code: "malformed", Message: res.ParseError, At: s.d.Now()}); err != nil {
			return err
		}
		payload, _ := json.Marshal(map[string]any{"ack_id": res.AckID, "bank": bank, "kind": kind, "name": doc.Name,
			"raw_id": rawID, "reason": "unparseable: " + res.ParseError})
		_, err := tx.Emit(ctx, store.NewEvent{Type: "ack.unmatched", Subject: "ack:" + res.AckID, Payload: payload})
		return err
	}
	// Match and record every entry. A report of many transactions names
	// the same few messages and payment groups over and over: each lookup
	// runs once per document (matching reads only; nothing changes the
	// transmissions until applyTo below), and the entries are inserted in
	// multi-row statements. A 20 MiB PSR of 120 000 transactions took one
	// SELECT or two and an INSERT per entry (about half a minute on a busy
	// two-core machine, past the admin client's timeout).
	byTransmission := map[string][]finding{}
	var order []string
	var unmatched []finding
	unmatchedN := 0
	memo := map[string]*Transmission{}
	rows := make([]any, 0, entryBatch*entryCols)
	flush := func() error {
		if len(rows) == 0 {
			return nil
		}
		n := len(rows) / entryCols
		q := `INSERT INTO ack_entries (ack_id, seq, transmission_id, level, ref, status, reason_code, reason_text, at_ms, summary) VALUES ` +
			strings.TrimSuffix(strings.Repeat("(?,?,?,?,?,?,?,?,?,?),", n), ",")
		_, err := tx.Exec(ctx, q, rows...)
		rows = rows[:0]
		return err
	}
	for i, f := range fs {
		t, err := s.match(ctx, tx, bank, f, memo)
		if err != nil {
			return err
		}
		tid := ""
		if t != nil {
			tid = t.ID
			if _, ok := byTransmission[tid]; !ok {
				order = append(order, tid)
			}
			byTransmission[tid] = append(byTransmission[tid], f)
		} else {
			// Only the listed ones are kept (the event names at most
			// MaxRejectedInEvent); the rest are counted.
			if len(unmatched) < MaxRejectedInEvent {
				unmatched = append(unmatched, f)
			}
			unmatchedN++
		}
		sum, _ := json.Marshal(f)
		var at int64
		if !f.At.IsZero() {
			at = f.At.UnixMilli()
		}
		rows = append(rows, res.AckID, i+1, tid, f.Level, f.Ref, f.Status, f.ReasonCode, f.ReasonText, at, string(sum))
		if len(rows) == entryBatch*entryCols {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	res.Entries, res.Unmatched = len(fs), unmatchedN
	if _, err := tx.Exec(ctx, `UPDATE acks SET entries = ?, unmatched = ? WHERE id = ?`, len(fs), unmatchedN, res.AckID); err != nil {
		return err
	}
	subject := ""
	if len(order) == 1 {
		subject = order[0]
	}
	if err := tx.AddVerdict(ctx, rawID, store.Verdict{Verified: true, Code: "ok",
		Message: fmt.Sprintf("%d entries, %d unmatched", len(fs), unmatchedN), Subject: subject, At: s.d.Now()}); err != nil {
		return err
	}
	for _, tid := range order {
		changed, err := s.applyTo(ctx, tx, tid, rawID, res.AckID, kind, byTransmission[tid])
		if err != nil {
			return err
		}
		if changed {
			res.Changed = append(res.Changed, tid)
		}
	}
	if unmatchedN > 0 {
		s.m.unmatched.Add(float64(unmatchedN))
		s.d.Logger.Warn().Str("bank", bank).Str("kind", kind).Str("ack", res.AckID).Int("entries", unmatchedN).
			Msg("acknowledgement entries match no transmission")
		listed := unmatched
		payload, _ := json.Marshal(map[string]any{"ack_id": res.AckID, "bank": bank, "kind": kind, "name": doc.Name,
			"raw_id": rawID, "entries": listed, "unmatched_count": unmatchedN, "entries_truncated": len(listed) < unmatchedN})
		if _, err := tx.Emit(ctx, store.NewEvent{Type: "ack.unmatched", Subject: "ack:" + res.AckID, Payload: payload}); err != nil {
			return err
		}
	}
	return nil
}

// maxMatchMemo bounds the lookups match remembers for one document: the
// few message and payment-group ids come first and repeat; a report of
// many rejected transactions would otherwise keep one key per EndToEndId.
const maxMatchMemo = 4096

// entryBatch rows of entryCols values go in one INSERT INTO ack_entries
// (1 000 values: far below the placeholder limits of SQLite and PostgreSQL).
const entryBatch, entryCols = 100, 10

// match finds the transmission an entry is about: PSR by original MsgId,
// PmtInfId or EndToEndId; HAC and PTK by OrderID (+ partner) within a time
// window, preferring the most recent submission (OrderIDs are four
// characters and reused). memo keeps the answer of each lookup (nil
// included) for the other entries of the same document.
func (s *Service) match(ctx context.Context, tx store.Tx, bank string, f finding, memo map[string]*Transmission) (*Transmission, error) {
	q := func(where string, args ...any) (*Transmission, error) {
		key := where + "\x00" + fmt.Sprint(args...)
		if t, ok := memo[key]; ok {
			return t, nil
		}
		t, err := scanTransmission(tx.QueryRow(ctx, `SELECT `+txCols+` FROM transmissions WHERE bank = ? AND `+where+
			` ORDER BY submitted_ms DESC, created_ms DESC LIMIT 1`, append([]any{bank}, args...)...))
		if notFound(err) == store.ErrNotFound {
			t, err = nil, nil
		}
		if err == nil && len(memo) < maxMatchMemo {
			memo[key] = t
		}
		return t, err
	}
	if f.MsgID != "" {
		if t, err := q(`msg_id = ?`, f.MsgID); t != nil || err != nil {
			return t, err
		}
	}
	if f.PmtInfID != "" || f.EndToEndID != "" {
		col, v := "pmt_inf_id", f.PmtInfID
		if v == "" {
			col, v = "end_to_end_id", f.EndToEndID
		}
		if t, err := q(`id IN (SELECT transmission_id FROM transmission_txs WHERE `+col+` = ?)`, v); t != nil || err != nil {
			return t, err
		}
	}
	if f.OrderID != "" {
		window := 30 * 24 * time.Hour
		at := f.At
		if at.IsZero() {
			at = s.d.Now()
		}
		lo, hi := at.Add(-window).UnixMilli(), at.Add(time.Hour).UnixMilli()
		if f.PartnerID != "" {
			if t, err := q(`order_id = ? AND (partner_id = ? OR partner_id = '') AND submitted_ms BETWEEN ? AND ?`, f.OrderID, f.PartnerID, lo, hi); t != nil || err != nil {
				return t, err
			}
			return nil, nil
		}
		return q(`order_id = ? AND submitted_ms BETWEEN ? AND ?`, f.OrderID, lo, hi)
	}
	return nil, nil
}

// applyTo merges the entries of one acknowledgement into one transmission.
func (s *Service) applyTo(ctx context.Context, tx store.Tx, id string, rawID int64, ackID, kind string, fs []finding) (bool, error) {
	t, err := loadTransmission(ctx, tx, id)
	if err != nil {
		return false, err
	}
	rejectedBefore, err := s.countRejected(ctx, tx, id)
	if err != nil {
		return false, err
	}
	// Transaction-level statuses first: they decide accepted vs partial.
	effect := EffectNone
	for _, f := range fs {
		switch f.Level {
		case "tx":
			if err := s.setTxStatus(ctx, tx, id, `end_to_end_id = ?`, f.EndToEndID, f); err != nil {
				return false, err
			}
		case "pmtinf":
			if f.Effect == EffectRejected {
				if err := s.setTxStatus(ctx, tx, id, `pmt_inf_id = ?`, f.PmtInfID, f); err != nil {
					return false, err
				}
			}
		case "group":
			if f.Effect == EffectRejected {
				if err := s.setTxStatus(ctx, tx, id, `1 = ?`, 1, f); err != nil {
					return false, err
				}
			}
		}
		if f.Level == "group" || f.Level == "hac" || f.Level == "ptk" {
			effect = stronger(effect, f.Effect)
		}
	}
	// Count what the bank refused so far (across every acknowledgement).
	var total int64
	rejected, err := s.countRejected(ctx, tx, id)
	if err != nil {
		return false, err
	}
	if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM transmission_txs WHERE transmission_id = ?`, id).Scan(&total); err != nil {
		return false, err
	}
	if rejected > 0 {
		if total > 0 && rejected == total {
			effect = stronger(effect, EffectRejected)
		} else {
			effect = stronger(effect, EffectPartial)
		}
	}
	if effect == EffectAccepted && rejected > 0 {
		effect = EffectPartial
	}
	to, ev := next(t.State, effect)
	update := false
	if to == t.State {
		// Same state, but this acknowledgement names rejected transactions
		// the earlier one did not (a HAC rejected the file, the PSR now
		// says which transactions and why): the hooks hear it again.
		if (t.State != StateRejected && t.State != StatePartial) || rejected <= rejectedBefore {
			return false, nil
		}
		ev, update = eventFor(t.State), true
	}
	payload := map[string]any{"ack_id": ackID, "kind": kind, "raw_id": rawID, "update": update}
	if to == StatePartial || to == StateRejected {
		rej, err := s.txs(ctx, tx, id, true)
		if err != nil {
			return false, err
		}
		var list []TxStatus
		count := 0
		sum := new(big.Rat)
		for _, x := range rej {
			if x.Status != "RJCT" {
				continue
			}
			count++
			if a, ok := new(big.Rat).SetString(x.Amount); ok {
				sum.Add(sum, a)
			}
			if len(list) < MaxRejectedInEvent {
				list = append(list, x)
			}
		}
		payload["rejected_transactions"] = list
		payload["rejected_count"] = count
		payload["rejected_amount"] = sum.FloatString(2)
		payload["rejected_list_truncated"] = count > len(list)
		var reasons []map[string]string
		for _, f := range fs {
			if f.Effect == EffectRejected && (f.Level == "group" || f.Level == "pmtinf" || f.Level == "hac" || f.Level == "ptk") {
				reasons = append(reasons, map[string]string{"level": f.Level, "ref": f.Ref, "code": f.ReasonCode, "text": f.ReasonText})
			}
		}
		payload["reasons"] = reasons
	}
	if update {
		if err := s.emitUpdate(ctx, tx, t, "ack:"+kind, rawID, ev, payload); err != nil {
			return false, err
		}
		return true, nil
	}
	if err := s.transition(ctx, tx, t, to, "ack:"+kind, rawID, ev, payload, nil); err != nil {
		return false, err
	}
	return true, nil
}

func (s *Service) countRejected(ctx context.Context, tx store.Tx, id string) (int64, error) {
	var n int64
	err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM transmission_txs WHERE transmission_id = ? AND status = 'RJCT'`, id).Scan(&n)
	return n, err
}

// emitUpdate raises an event for new details of an unchanged state, with
// a history row saying so.
func (s *Service) emitUpdate(ctx context.Context, tx store.Tx, t *Transmission, cause string, rawID int64, evType string, payload map[string]any) error {
	details, _ := json.Marshal(map[string]any{"event": evType, "update": true})
	if err := tx.RecordHistory(ctx, store.History{Entity: "transmission", ID: t.ID, From: string(t.State), To: string(t.State),
		Cause: cause, RawID: rawID, Details: details, At: s.d.Now()}); err != nil {
		return err
	}
	payload["transmission"] = t
	payload["previous_state"] = t.State
	b, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	_, err = tx.Emit(ctx, store.NewEvent{Type: evType, Subject: "transmission:" + t.ID, Payload: b})
	return err
}

// setTxStatus records a transaction status unless it would weaken a
// rejection already recorded.
func (s *Service) setTxStatus(ctx context.Context, tx store.Tx, id, where string, v any, f finding) error {
	status := f.Status
	if f.Effect == EffectRejected {
		status = "RJCT"
	}
	_, err := tx.Exec(ctx, `UPDATE transmission_txs SET status = ?, reason_code = ?, reason_text = ?
		WHERE transmission_id = ? AND `+where+` AND status <> 'RJCT'`, status, f.ReasonCode, f.ReasonText, id, v)
	return err
}

var effectRank = map[Effect]int{EffectNone: 0, EffectReceived: 1, EffectSigOK: 2, EffectAccepted: 3, EffectPartial: 4, EffectRejected: 5}

func stronger(a, b Effect) Effect {
	if effectRank[b] > effectRank[a] {
		return b
	}
	return a
}

// next merges an effect into a state: forward only; a later positive never
// undoes a partial or total rejection; a rejection after acceptance wins.
func next(cur State, e Effect) (State, string) {
	var to State
	switch e {
	case EffectReceived:
		to = StateReceived
	case EffectSigOK:
		to = StateSignatureVerified
	case EffectAccepted:
		to = StateAccepted
	case EffectPartial:
		to = StatePartial
	case EffectRejected:
		to = StateRejected
	default:
		return cur, ""
	}
	if cur == StateUnacknowledged && !to.Final() {
		return cur, "" // still waiting for the final word; the alarm stands
	}
	if cur == StateFailed || rank[to] <= rank[cur] && cur != StateUnacknowledged {
		return cur, ""
	}
	return to, eventFor(to)
}

func eventFor(s State) string {
	switch s {
	case StateReceived, StateSignatureVerified:
		return "" // progress, recorded in history; no hook event
	}
	return "transmission." + string(s)
}

// relink matches, once a transmission's OrderID is known, the HAC and PTK
// entries that named that OrderID before acquit knew it (fetched while a
// resumed upload was finishing) and applies them. They were reported as
// ack.unmatched then; now they are linked and counted.
func (s *Service) relink(ctx context.Context, t *Transmission) error {
	if t.OrderID == "" {
		return nil
	}
	type pending struct {
		ackID, kind string
		rawID       int64
		seq         int64
		f           finding
	}
	var found []pending
	err := s.d.Store.InTx(ctx, func(tx store.Tx) error {
		rows, err := tx.Query(ctx, `SELECT e.ack_id, a.kind, a.raw_id, e.seq, e.summary FROM ack_entries e JOIN acks a ON a.id = e.ack_id
			WHERE e.transmission_id = '' AND a.bank = ? AND e.level IN ('hac', 'ptk') AND e.ref = ? AND a.received_ms >= ?
			ORDER BY a.received_ms, e.ack_id, e.seq`, t.Bank, t.OrderID, t.CreatedAt.Add(-time.Hour).UnixMilli())
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var p pending
			var sum string
			if err := rows.Scan(&p.ackID, &p.kind, &p.rawID, &p.seq, &sum); err != nil {
				return err
			}
			if json.Unmarshal([]byte(sum), &p.f) != nil {
				continue
			}
			if p.f.PartnerID != "" && t.PartnerID != "" && p.f.PartnerID != t.PartnerID {
				continue
			}
			found = append(found, p)
		}
		return rows.Err()
	})
	if err != nil || len(found) == 0 {
		return err
	}
	return s.d.Store.InTx(ctx, func(tx store.Tx) error {
		byAck := map[string][]finding{}
		var order []pending
		for _, p := range found {
			if _, err := tx.Exec(ctx, `UPDATE ack_entries SET transmission_id = ? WHERE ack_id = ? AND seq = ? AND transmission_id = ''`,
				t.ID, p.ackID, p.seq); err != nil {
				return err
			}
			if _, ok := byAck[p.ackID]; !ok {
				order = append(order, p)
			}
			byAck[p.ackID] = append(byAck[p.ackID], p.f)
		}
		for _, p := range order {
			if _, err := tx.Exec(ctx, `UPDATE acks SET unmatched = unmatched - ? WHERE id = ?`, len(byAck[p.ackID]), p.ackID); err != nil {
				return err
			}
			if _, err := s.applyTo(ctx, tx, t.ID, p.rawID, p.ackID, p.kind, byAck[p.ackID]); err != nil {
				return err
			}
		}
		s.d.Logger.Info().Str("transmission", t.ID).Str("order_id", t.OrderID).Int("entries", len(found)).
			Msg("acknowledgement entries that came before the order id was recorded are now matched")
		return nil
	})
}
