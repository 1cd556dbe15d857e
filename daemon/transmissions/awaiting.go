package transmissions

import (
	"context"
	"fmt"
	"github.com/acquit/acquit/internal/unixms"
	"time"

	"github.com/acquit/acquit/daemon/store"
)

// Awaiting sums up the transmissions of one bank that the bank has taken
// (submitted, received, signature verified) but not yet given its final
// word on.
type Awaiting struct {
	Count int64
	// OldestSubmitted is the submission time of the oldest of them.
	OldestSubmitted time.Time
}

// AwaitingAcks returns, per bank, the transmissions awaiting an
// acknowledgement; one indexed query (transmissions_state).
func (s *Service) AwaitingAcks(ctx context.Context) (map[string]Awaiting, error) {
	out := map[string]Awaiting{}
	err := s.d.Store.View(ctx, func(tx store.Tx) error {
		clear(out)
		rows, err := tx.Query(ctx, `SELECT bank, COUNT(*), MIN(submitted_ms) FROM transmissions
			WHERE state IN (?, ?, ?) GROUP BY bank`, string(StateSubmitted), string(StateReceived), string(StateSignatureVerified))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var bank string
			var n, oldest int64
			if err := rows.Scan(&bank, &n, &oldest); err != nil {
				return err
			}
			out[bank] = Awaiting{Count: n, OldestSubmitted: unixms.Time(oldest)}
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("transmissions awaiting acknowledgement: %w", err)
	}
	return out, nil
}
