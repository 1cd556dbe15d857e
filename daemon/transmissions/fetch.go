package transmissions

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/sdk"
)

// FetchAcks is the schedule job `ebics.fetch_acks`: for the bank named in
// params["bank"] (every configured bank when empty) it downloads each
// acknowledgement kind (params["kinds"], comma-separated, default the
// bank's AckKinds), stores each document raw, confirms it to the bank only
// once stored, then parses, matches and applies it. "No data" is normal.
// params["from"], params["to"] (YYYY-MM-DD) ask for a date range.
func (s *Service) FetchAcks(ctx context.Context, params map[string]string) (string, error) {
	var banks []Bank
	if name := params["bank"]; name != "" {
		b, ok := s.banks[name]
		if !ok {
			return "", fmt.Errorf("fetch acks: %w %q", ErrUnknownBank, name)
		}
		banks = append(banks, b)
	} else {
		for _, b := range s.banks {
			banks = append(banks, b)
		}
		sort.Slice(banks, func(i, j int) bool { return banks[i].Name < banks[j].Name })
	}
	var from, to time.Time
	for k, dst := range map[string]*time.Time{"from": &from, "to": &to} {
		if v := params[k]; v != "" {
			t, err := time.Parse("2006-01-02", v)
			if err != nil {
				return "", fmt.Errorf("fetch acks: %s: want YYYY-MM-DD: %w", k, err)
			}
			*dst = t
		}
	}
	var parts []string
	var errs []error
	for _, b := range banks {
		kinds := b.AckKinds
		if v := params["kinds"]; v != "" {
			kinds = strings.Split(v, ",")
		}
		for _, kind := range kinds {
			kind = strings.TrimSpace(kind)
			st, err := s.fetchKind(ctx, b, kind, from, to)
			parts = append(parts, fmt.Sprintf("%s/%s: %s", b.Name, kind, st))
			if err != nil {
				errs = append(errs, fmt.Errorf("%s/%s: %w", b.Name, kind, err))
			}
		}
	}
	if _, err := s.CheckDeadlines(ctx); err != nil {
		errs = append(errs, err)
	}
	return strings.Join(parts, "; "), errors.Join(errs...)
}

type fetchStats struct {
	docs, dup, entries, unmatched, bad int
	noData                             bool
}

func (f fetchStats) String() string {
	if f.noData {
		return "no data"
	}
	return fmt.Sprintf("%d new, %d duplicate, %d bad, %d entries, %d unmatched", f.docs, f.dup, f.bad, f.entries, f.unmatched)
}

// MaxDocsPerFetch bounds the documents of one kind downloaded in one run
// (a bank delivers one document per download; acquit asks again until
// "no data").
const MaxDocsPerFetch = 200

func (s *Service) fetchKind(ctx context.Context, b Bank, kind string, from, to time.Time) (fetchStats, error) {
	var st fetchStats
	tr, err := s.d.Transport(b.Plugin)
	if err != nil {
		return st, err
	}
	seen := map[string]bool{} // a document offered again in this run (receipt refused): stop
	for round := 0; round < MaxDocsPerFetch; round++ {
		res, err := tr.Download(ctx, sdk.DownloadRequest{Bank: b.Name, Function: kind, From: from, To: to})
		if err != nil {
			return st, fmt.Errorf("download: %w", err)
		}
		if res.NoData || len(res.Documents) == 0 {
			st.noData = round == 0
			return st, nil
		}
		again := false
		for _, doc := range res.Documents {
			r, err := s.Ingest(ctx, b.Name, kind, doc)
			if err != nil {
				// Not stored: tell the bank so it delivers the document again.
				_ = tr.Confirm(ctx, b.Name, doc.DownloadID, false)
				return st, fmt.Errorf("ingest %s: %w", doc.Name, err)
			}
			if err := tr.Confirm(ctx, b.Name, doc.DownloadID, true); err != nil {
				// Stored already: a redelivery is deduplicated by content.
				s.d.Logger.Warn().Err(err).Str("bank", b.Name).Str("kind", kind).Msg("receipt not accepted; the document may come again")
			}
			if seen[r.AckID] {
				again = true
			}
			seen[r.AckID] = true
			switch {
			case r.Duplicate:
				st.dup++
			case r.ParseError != "":
				st.bad++
			default:
				st.docs++
			}
			st.entries += r.Entries
			st.unmatched += r.Unmatched
		}
		// A date-range download returns the same documents each time, and
		// a bank that did not take the receipt offers the same one again.
		if again || !from.IsZero() || !to.IsZero() {
			return st, nil
		}
	}
	return st, nil
}

// IngestResult says what one downloaded document did.
type IngestResult struct {
	AckID      string
	RawID      int64
	Duplicate  bool
	ParseError string
	Entries    int
	Unmatched  int
	Changed    []string // transmission ids whose state changed
}

// Ingest stores a downloaded acknowledgement raw, then (once per content)
// parses it, matches its entries to transmissions and applies them, all in
// one transaction with the events they raise.
func (s *Service) Ingest(ctx context.Context, bank, kind string, doc sdk.Document) (*IngestResult, error) {
	sumB := sha256.Sum256(doc.Content)
	sum := hex.EncodeToString(sumB[:])
	rawID, err := s.d.Store.RecordRaw(ctx, store.RawInput{Source: "bank:" + bank, Channel: "download:" + kind,
		Method: "DOWNLOAD", Path: doc.Name, Body: doc.Content, ReceivedAt: s.d.Now(), SHA256: sum,
		Headers: map[string][]string{"format": {doc.Format}, "download_id": {doc.DownloadID}}})
	if err != nil {
		return nil, fmt.Errorf("record raw: %w", err)
	}
	res := &IngestResult{RawID: rawID}
	err = s.d.Store.InTx(ctx, func(tx store.Tx) error {
		var existing string
		err := tx.QueryRow(ctx, `SELECT id FROM acks WHERE bank = ? AND kind = ? AND sha256 = ?`, bank, kind, sum).Scan(&existing)
		if err == nil {
			res.Duplicate, res.AckID = true, existing
			return tx.AddVerdict(ctx, rawID, store.Verdict{Verified: true, Code: "duplicate", Message: "already ingested as " + existing, At: s.d.Now()})
		}
		if notFound(err) != store.ErrNotFound {
			return err
		}
		res.AckID = newID("A")
		if _, err := tx.Exec(ctx, `INSERT INTO acks (id, bank, kind, format, name, raw_id, sha256, received_ms) VALUES (?,?,?,?,?,?,?,?)`,
			res.AckID, bank, kind, doc.Format, doc.Name, rawID, sum, s.d.Now().UnixMilli()); err != nil {
			return err
		}
		return s.apply(ctx, tx, bank, kind, rawID, res, doc)
	})
	if err != nil {
		return nil, err
	}
	result := "new"
	if res.Duplicate {
		result = "duplicate"
	} else if res.ParseError != "" {
		result = "bad"
	}
	s.m.acks.WithLabelValues(bank, kind, result).Inc()
	return res, nil
}
