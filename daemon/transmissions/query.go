package transmissions

import (
	"context"
	"github.com/acquit/acquit/internal/unixms"
	"time"

	"github.com/acquit/acquit/daemon/store"
)

// Detail is a transmission with its transactions' statuses, its history and
// the acknowledgement entries matched to it.
type Detail struct {
	Transmission
	Rejected []TxStatus   `json:"transactions_with_status"`
	History  []HistoryRow `json:"history"`
	Acks     []AckEntry   `json:"acks"`
}

// HistoryRow is one state change.
type HistoryRow struct {
	From  string    `json:"from"`
	To    string    `json:"to"`
	Cause string    `json:"cause"`
	RawID int64     `json:"raw_id,omitempty"`
	At    time.Time `json:"at"`
}

// AckEntry is one line of an acknowledgement as stored.
type AckEntry struct {
	AckID          string    `json:"ack_id"`
	Seq            int64     `json:"seq"`
	Kind           string    `json:"kind"`
	TransmissionID string    `json:"transmission_id,omitempty"`
	Level          string    `json:"level"`
	Ref            string    `json:"ref,omitempty"`
	Status         string    `json:"status,omitempty"`
	ReasonCode     string    `json:"reason_code,omitempty"`
	ReasonText     string    `json:"reason_text,omitempty"`
	At             time.Time `json:"at,omitzero"`
}

// Describe returns a transmission with everything known about it.
func (s *Service) Describe(ctx context.Context, id string) (*Detail, error) {
	t, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	d := &Detail{Transmission: *t}
	err = s.d.Store.View(ctx, func(tx store.Tx) error {
		var err error
		if d.Rejected, err = s.txs(ctx, tx, id, true); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT e.ack_id, e.seq, a.kind, e.transmission_id, e.level, e.ref, e.status, e.reason_code, e.reason_text, e.at_ms
			FROM ack_entries e JOIN acks a ON a.id = e.ack_id WHERE e.transmission_id = ? ORDER BY a.received_ms, e.ack_id, e.seq`, id)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var e AckEntry
			var at int64
			if err := rows.Scan(&e.AckID, &e.Seq, &e.Kind, &e.TransmissionID, &e.Level, &e.Ref, &e.Status, &e.ReasonCode, &e.ReasonText, &at); err != nil {
				return err
			}
			e.At = unixms.Time(at)
			d.Acks = append(d.Acks, e)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	d.History, err = s.history(ctx, id)
	return d, err
}

func (s *Service) history(ctx context.Context, id string) ([]HistoryRow, error) {
	var out []HistoryRow
	err := s.d.Store.View(ctx, func(tx store.Tx) error {
		hs, err := store.ReadHistory(ctx, tx, "transmission", id)
		out = out[:0]
		for _, h := range hs {
			out = append(out, HistoryRow{From: h.From, To: h.To, Cause: h.Cause, RawID: h.RawID, At: h.At})
		}
		return err
	})
	return out, err
}
