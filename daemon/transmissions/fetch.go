package transmissions

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/sdk"
	"github.com/acquit/acquit/sdk/pluginrpc"
)

// FetchAcks is the schedule job `ebics.fetch_acks`: for the bank named in
// params["bank"] (every configured bank when empty) it downloads each
// acknowledgement kind (params["kinds"], comma-separated, default the
// bank's AckKinds), stores each document raw, confirms it to the bank only
// once stored, then parses, matches and applies it. "No data" is normal.
// params["from"], params["to"] (YYYY-MM-DD) ask for a date range.
func (s *Service) FetchAcks(ctx context.Context, params map[string]string) (string, error) {
	// A process killed during a download left its directory (up to
	// max_document_size in it): remove those a day old now, not only at
	// the next start.
	s.sweepDownloads()
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
	docs, dup, entries, unmatched, bad, tooLarge int
	noData                                       bool
}

func (f fetchStats) String() string {
	if f.noData {
		return "no data"
	}
	out := fmt.Sprintf("%d new, %d duplicate, %d bad, %d entries, %d unmatched", f.docs, f.dup, f.bad, f.entries, f.unmatched)
	if f.tooLarge > 0 {
		out += fmt.Sprintf(", %d too large (refused)", f.tooLarge)
	}
	return out
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
		again, done, err := s.fetchRound(ctx, tr, b, kind, from, to, round, seen, &st)
		if err != nil || done {
			return st, err
		}
		// A date-range download returns the same documents each time, and
		// a bank that did not take the receipt offers the same one again.
		if again || !from.IsZero() || !to.IsZero() {
			return st, nil
		}
	}
	return st, nil
}

// fetchRound downloads once into a spool directory of its own, which it
// removes once every document is stored (or refused).
func (s *Service) fetchRound(ctx context.Context, tr sdk.BankTransport, b Bank, kind string, from, to time.Time, round int,
	seen map[string]bool, st *fetchStats) (again, done bool, err error) {
	dir, err := os.MkdirTemp(s.downloads, "fetch-*") // mode 0700
	if err != nil {
		return false, true, fmt.Errorf("download spool: %w", err)
	}
	defer os.RemoveAll(dir)
	res, err := tr.Download(ctx, sdk.DownloadRequest{Bank: b.Name, Function: kind, From: from, To: to, SpoolDir: dir, MaxSize: s.maxDoc,
		ReportTooLarge: true})
	if err != nil {
		return false, true, fmt.Errorf("download: %w", err)
	}
	if res.NoData || len(res.Documents) == 0 {
		st.noData = round == 0
		return false, true, nil
	}
	for _, doc := range res.Documents {
		if doc.TooLarge {
			if err := s.refuseTooLarge(ctx, tr, b.Name, kind, doc); err != nil {
				// Not recorded: leave it to the bank (negative receipt).
				_ = tr.Confirm(ctx, b.Name, doc.DownloadID, false)
				return false, true, fmt.Errorf("document reported too large %s: %w", doc.Name, err)
			}
			st.tooLarge++
			if seen["too_large:"+doc.DownloadID] {
				again = true
			}
			seen["too_large:"+doc.DownloadID] = true
			continue
		}
		r, err := s.ingestIn(ctx, b.Name, kind, doc, dir)
		if err != nil {
			// Not stored: tell the bank so it delivers the document again.
			_ = tr.Confirm(ctx, b.Name, doc.DownloadID, false)
			return false, true, fmt.Errorf("ingest %s: %w", doc.Name, err)
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
	return again, false, nil
}

// refuseTooLarge records, counts and logs a document its plugin reported
// over max_document_size (sdk.Document.TooLarge), then confirms it to the
// bank positively. Its body was never stored: the raw input recorded is
// bodiless (headers: order type, size, limit, transaction) with the
// verdict "too_large", kept like any verified download. Verified is true
// on purpose: the document came over the plugin's authenticated channel
// (EBICS: responses signed by the bank's X002 key), only its size is
// refused (a "duplicate" is verified too), and raw retention keeps an
// input on a verified verdict twice over, in PruneRaw's query and in the
// delete triggers of each driver's migration 004. Keeping it on its code
// instead would need those triggers migrated to guard it as well, and a
// source test besides: unauthenticated webhooks are refused with
// "too_large" too, and must be pruned.
//
// The receipt is positive on purpose: a bank offers an unconfirmed
// document again and again, first, so a negative one would hold back
// every later document of that kind until the limit is raised (issue 12).
// After raising transmissions.max_document_size, fetch it again with a
// date range (ebics.fetch_acks with from/to).
func (s *Service) refuseTooLarge(ctx context.Context, tr sdk.BankTransport, bank, kind string, doc sdk.Document) error {
	if doc.Size <= s.maxDoc || doc.Path != "" || len(doc.Content) != 0 || doc.DownloadID == "" {
		return s.refuse(bank, kind, doc, pluginrpc.SpoolTooLarge, fmt.Errorf("reported too large with size %d (limit %d), path %q, %d bytes of content, download id %q: inconsistent",
			doc.Size, s.maxDoc, doc.Path, len(doc.Content), doc.DownloadID))
	}
	orderType := doc.Meta["order_type"]
	s.m.rejected.WithLabelValues(bank, pluginrpc.SpoolTooLarge).Inc()
	s.m.acks.WithLabelValues(bank, kind, "refused").Inc()
	msg := fmt.Sprintf("over transmissions.max_document_size (%d bytes): more than %d bytes; not stored, receipted; fetch it again with from/to once the limit is raised",
		s.maxDoc, doc.Size-1)
	rawID, err := s.d.Store.RecordRaw(ctx, store.RawInput{Source: "bank:" + bank, Channel: "download:" + kind,
		Method: "DOWNLOAD", Path: doc.Name, ReceivedAt: s.d.Now(),
		Headers: map[string][]string{"download_id": {doc.DownloadID}, "order_type": {orderType}, "order_id": {doc.Meta["order_id"]},
			"document_size_over": {strconv.FormatInt(doc.Size-1, 10)}, "max_document_size": {strconv.FormatInt(s.maxDoc, 10)}},
		Verdicts: []store.Verdict{{Verified: true, Code: "too_large", Message: msg, At: s.d.Now()}}})
	if err != nil {
		return fmt.Errorf("record the refusal of %s: %w", doc.Name, err)
	}
	s.d.Logger.Warn().Str("bank", bank).Str("kind", kind).Str("order_type", orderType).Str("download_id", doc.DownloadID).
		Str("name", doc.Name).Int64("size_over", doc.Size-1).Int64("limit", s.maxDoc).Int64("raw_id", rawID).
		Str("reason", pluginrpc.SpoolTooLarge).
		Msg("downloaded document refused: over max_document_size; not stored, receipted, recorded")
	if err := tr.Confirm(ctx, bank, doc.DownloadID, true); err != nil {
		s.d.Logger.Warn().Err(err).Str("bank", bank).Str("kind", kind).Msg("receipt of a refused document not accepted; it may come again")
	}
	return nil
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

// ErrDocumentRefused is returned for a downloaded document that is not
// what its plugin announced, or too large: nothing is stored, the download
// is confirmed negatively so the bank delivers it again.
var ErrDocumentRefused = errors.New("downloaded document refused")

// DefaultMaxDocumentSize is the largest downloaded document stored when
// Deps.MaxDocumentSize is 0.
const DefaultMaxDocumentSize = 2 << 30

// Ingest stores a downloaded acknowledgement raw, then (once per content)
// parses it, matches its entries to transmissions and applies them, all in
// one transaction with the events they raise. doc carries its Content (a
// document handed over by Path is taken only by FetchAcks, from the spool
// directory it made for the download).
func (s *Service) Ingest(ctx context.Context, bank, kind string, doc sdk.Document) (*IngestResult, error) {
	return s.ingestIn(ctx, bank, kind, doc, "")
}

// ingestIn checks a delivered document, from its spool file in dir or its
// content, and ingests it without holding it: the store takes it in
// chunks, hashing as it goes, the parser streams it.
func (s *Service) ingestIn(ctx context.Context, bank, kind string, doc sdk.Document, dir string) (*IngestResult, error) {
	if doc.Path == "" {
		sumB := sha256.Sum256(doc.Content)
		sum := hex.EncodeToString(sumB[:])
		if doc.SHA256 != "" && !strings.EqualFold(doc.SHA256, sum) {
			return nil, s.refuse(bank, kind, doc, pluginrpc.SpoolDigest, fmt.Errorf("content has sha256 %s, the plugin announced %.80s", sum, doc.SHA256))
		}
		if int64(len(doc.Content)) > s.maxDoc {
			return nil, s.refuse(bank, kind, doc, pluginrpc.SpoolTooLarge, fmt.Errorf("%d bytes, the limit is %d", len(doc.Content), s.maxDoc))
		}
		return s.ingest(ctx, bank, kind, doc, bytes.NewReader(doc.Content), int64(len(doc.Content)), sum, false)
	}
	if dir == "" {
		return nil, s.refuse(bank, kind, doc, pluginrpc.SpoolNotInDir, errors.New("a document by path outside a download"))
	}
	f, err := pluginrpc.OpenSpooled(dir, doc, s.maxDoc)
	if err != nil {
		if reason, ok := pluginrpc.IsSpoolError(err); ok {
			return nil, s.refuse(bank, kind, doc, reason, err)
		}
		return nil, err
	}
	defer f.Close()
	return s.ingest(ctx, bank, kind, doc, f, doc.Size, strings.ToLower(doc.SHA256), true)
}

// ingestCopyPrefix names the daemon's private copies of documents being
// ingested, in the downloads directory (sweepDownloads removes those a
// crash left).
const ingestCopyPrefix = "ingest-"

// refuse counts, logs and returns the refusal of a delivered document.
func (s *Service) refuse(bank, kind string, doc sdk.Document, reason string, err error) error {
	s.m.rejected.WithLabelValues(bank, reason).Inc()
	s.m.acks.WithLabelValues(bank, kind, "refused").Inc()
	s.d.Logger.Warn().Err(err).Str("bank", bank).Str("kind", kind).Str("download_id", doc.DownloadID).Str("name", doc.Name).
		Str("reason", reason).Msg("downloaded document refused: not stored, the bank will deliver it again")
	return fmt.Errorf("%w (%s): %w", ErrDocumentRefused, reason, err)
}

// ingest stores the document read through src (size bytes, announced
// SHA-256 sum) and, unless its content was ingested before, parses and
// applies it. With private set (src is the plugin's file), src is read
// once: the bytes stored are also written to a copy of the daemon's own,
// outside the directory the plugin was given, and the parser reads that
// copy. So the bytes parsed are the bytes stored (and hashed) even if a
// plugin writes its file again after handing it over.
func (s *Service) ingest(ctx context.Context, bank, kind string, doc sdk.Document, src io.ReaderAt, size int64, sum string, private bool) (*IngestResult, error) {
	// A document ingested before (a date-range download returns the same
	// documents each time; a bank that missed the receipt delivers again)
	// is not stored a second time: its bytes are checked against the
	// digest, then only a bodiless raw row naming the first records the
	// delivery. Without this every scheduled fetch of a large report
	// added its full size to raw_chunks, kept forever (verified).
	if first, err := s.ackBySHA(ctx, bank, kind, sum); err != nil {
		return nil, err
	} else if first != "" {
		return s.ingestKnown(ctx, bank, kind, doc, src, size, sum, first)
	}
	var body io.Reader = io.NewSectionReader(src, 0, size)
	parseFrom := src
	if private {
		cp, err := os.CreateTemp(s.downloads, ingestCopyPrefix+"*")
		if err != nil {
			return nil, fmt.Errorf("ingest %s: private copy: %w", doc.Name, err)
		}
		defer func() {
			cp.Close()
			os.Remove(cp.Name())
		}()
		body, parseFrom = io.TeeReader(body, cp), cp
	}
	rawID, err := s.d.Store.RecordRawStream(ctx, store.RawInput{Source: "bank:" + bank, Channel: "download:" + kind,
		Method: "DOWNLOAD", Path: doc.Name, ReceivedAt: s.d.Now(), SHA256: sum, Size: size,
		Headers: map[string][]string{"format": {doc.Format}, "download_id": {doc.DownloadID}}}, body)
	if errors.Is(err, store.ErrInvalid) {
		// The bytes are not what the plugin announced (the size was
		// checked when the file was opened: the digest, or a file changed
		// while it was read). Nothing was stored.
		return nil, s.refuse(bank, kind, doc, pluginrpc.SpoolDigest, err)
	}
	if err != nil {
		return nil, fmt.Errorf("record raw: %w", err)
	}
	if s.afterStore != nil {
		s.afterStore()
	}
	res := &IngestResult{RawID: rawID}
	dup, err := s.ackBySHA(ctx, bank, kind, sum)
	if err != nil {
		return nil, err
	}
	// Parsed outside the transaction (a large document takes seconds,
	// which would hold SQLite's one writer); not parsed again when this
	// content was ingested before.
	var fs []finding
	var perr error
	if dup == "" {
		fs, perr = s.parse(bank, kind, parseFrom, size)
	}
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
		if dup != "" {
			// Its ack row vanished in between (never: acks are kept):
			// parse now rather than record it unparsed.
			fs, perr = s.parse(bank, kind, parseFrom, size)
		}
		res.AckID = newID("A")
		if _, err := tx.Exec(ctx, `INSERT INTO acks (id, bank, kind, format, name, raw_id, sha256, received_ms) VALUES (?,?,?,?,?,?,?,?)`,
			res.AckID, bank, kind, doc.Format, doc.Name, rawID, sum, s.d.Now().UnixMilli()); err != nil {
			return err
		}
		return s.apply(ctx, tx, bank, kind, rawID, res, doc, fs, perr)
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

// ingestKnown records the delivery of a document whose content was
// ingested before as ack first: the bytes are hashed (not trusting the
// plugin's announced digest), and the raw row keeps no body, only the
// document's size and digest and the acknowledgement that holds it.
func (s *Service) ingestKnown(ctx context.Context, bank, kind string, doc sdk.Document, src io.ReaderAt, size int64, sum, first string) (*IngestResult, error) {
	h := sha256.New()
	n, err := io.Copy(h, io.NewSectionReader(src, 0, size))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", doc.Name, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != size || got != sum {
		return nil, s.refuse(bank, kind, doc, pluginrpc.SpoolDigest, fmt.Errorf("%d bytes with sha256 %s, announced %d bytes with %.80s", n, got, size, sum))
	}
	res := &IngestResult{AckID: first, Duplicate: true}
	rawID, err := s.d.Store.RecordRaw(ctx, store.RawInput{Source: "bank:" + bank, Channel: "download:" + kind,
		Method: "DOWNLOAD", Path: doc.Name, ReceivedAt: s.d.Now(),
		Headers: map[string][]string{"format": {doc.Format}, "download_id": {doc.DownloadID},
			"document_sha256": {sum}, "document_size": {strconv.FormatInt(size, 10)}, "duplicate_of": {first}}})
	if err != nil {
		return nil, fmt.Errorf("record raw: %w", err)
	}
	res.RawID = rawID
	err = s.d.Store.InTx(ctx, func(tx store.Tx) error {
		return tx.AddVerdict(ctx, rawID, store.Verdict{Verified: true, Code: "duplicate",
			Message: "already ingested as " + first + "; body not stored again", At: s.d.Now()})
	})
	if err != nil {
		return nil, err
	}
	s.m.acks.WithLabelValues(bank, kind, "duplicate").Inc()
	return res, nil
}

// ackBySHA returns the id of the acknowledgement already ingested with
// this content, or "".
func (s *Service) ackBySHA(ctx context.Context, bank, kind, sum string) (string, error) {
	var id string
	err := s.d.Store.InTx(ctx, func(tx store.Tx) error {
		return tx.QueryRow(ctx, `SELECT id FROM acks WHERE bank = ? AND kind = ? AND sha256 = ?`, bank, kind, sum).Scan(&id)
	})
	if notFound(err) == store.ErrNotFound {
		return "", nil
	}
	return id, err
}
