package transmissions

import (
	"context"
	"fmt"
	"github.com/acquit/acquit/internal/unixms"
	"time"

	"github.com/acquit/acquit/daemon/store"
)

// CountByState counts the transmissions in each state (states with none are
// absent).
func (s *Service) CountByState(ctx context.Context) (map[State]int64, error) {
	out := map[State]int64{}
	err := s.d.Store.View(ctx, func(tx store.Tx) error {
		byKey, err := store.CountGroups(ctx, tx, `SELECT state, COUNT(*) FROM transmissions GROUP BY state`)
		clear(out)
		for k, n := range byKey {
			out[State(k)] = n
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("count transmissions: %w", err)
	}
	return out, nil
}

// Ack is one acknowledgement document as downloaded and stored: its raw
// bytes are the raw input RawID.
type Ack struct {
	ID         string    `json:"id"`
	Bank       string    `json:"bank"`
	Kind       string    `json:"kind"`
	Format     string    `json:"format,omitempty"`
	Name       string    `json:"name,omitempty"`
	RawID      int64     `json:"raw_id"`
	SHA256     string    `json:"sha256"`
	ReceivedAt time.Time `json:"received_at"`
	ParseError string    `json:"parse_error,omitempty"`
	Entries    int64     `json:"entries"`
	Unmatched  int64     `json:"unmatched"`
}

const ackCols = `id, bank, kind, format, name, raw_id, sha256, received_ms, parse_error, entries, unmatched`

func scanAck(r store.Row) (*Ack, error) {
	var a Ack
	var received int64
	if err := r.Scan(&a.ID, &a.Bank, &a.Kind, &a.Format, &a.Name, &a.RawID, &a.SHA256, &received, &a.ParseError, &a.Entries, &a.Unmatched); err != nil {
		return nil, err
	}
	a.ReceivedAt = unixms.Time(received)
	return &a, nil
}

// AcksOf lists the acknowledgement documents with at least one entry
// matched to transmission id, in the order they were received.
func (s *Service) AcksOf(ctx context.Context, id string) ([]Ack, error) {
	var out []Ack
	err := s.d.Store.View(ctx, func(tx store.Tx) error {
		out = out[:0]
		rows, err := tx.Query(ctx, `SELECT `+ackCols+` FROM acks WHERE id IN (SELECT ack_id FROM ack_entries WHERE transmission_id = ?)
			ORDER BY received_ms, id`, id)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			a, err := scanAck(rows)
			if err != nil {
				return err
			}
			out = append(out, *a)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("acknowledgements of %s: %w", id, err)
	}
	return out, nil
}

// GetAck returns one acknowledgement document's record (error wrapping
// store.ErrNotFound when there is none).
func (s *Service) GetAck(ctx context.Context, ackID string) (*Ack, error) {
	var a *Ack
	err := s.d.Store.View(ctx, func(tx store.Tx) error {
		var err error
		a, err = scanAck(tx.QueryRow(ctx, `SELECT `+ackCols+` FROM acks WHERE id = ?`, ackID))
		return err
	})
	if err = notFound(err); err != nil {
		return nil, fmt.Errorf("acknowledgement %s: %w", ackID, err)
	}
	return a, nil
}
