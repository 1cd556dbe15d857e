package transmissions

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/sdk"
	"github.com/acquit/acquit/sdk/pluginrpc"
)

// spoolFile writes d's content as a file in dir and returns d handed over
// by path, as the sdk asks.
func spoolFile(t *testing.T, dir string, d sdk.Document) sdk.Document {
	t.Helper()
	f, err := os.CreateTemp(dir, "doc-*")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(d.Content); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(d.Content)
	d.Path, d.Size, d.SHA256 = f.Name(), int64(len(d.Content)), hex.EncodeToString(sum[:])
	d.Content = nil
	return d
}

// syncBuffer is a log sink shared by the service's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func rawCount(t *testing.T, st store.Store) (raws, chunks, acks int) {
	t.Helper()
	err := st.InTx(context.Background(), func(tx store.Tx) error {
		return tx.QueryRow(context.Background(), `SELECT (SELECT COUNT(*) FROM raw_inputs), (SELECT COUNT(*) FROM raw_body_chunks), (SELECT COUNT(*) FROM acks)`).
			Scan(&raws, &chunks, &acks)
	})
	if err != nil {
		t.Fatal(err)
	}
	return
}

// A document handed over by path is read from the call's spool directory,
// stored in chunks, parsed and confirmed; the directory is gone afterwards,
// and the stored body is the document byte for byte.
func TestFetchAcksByPath(t *testing.T) {
	f := newFixture(t)
	tr := f.submitAndSend(t)
	b, _ := os.ReadFile("testdata/psr_tx_rjct.xml")
	f.bank.docs = []sdk.Document{{DownloadID: "d1", Function: "psr", Name: "psr.xml", Content: b}}
	f.bank.byPath = func(req sdk.DownloadRequest, d sdk.Document) sdk.Document { return spoolFile(t, req.SpoolDir, d) }
	if _, err := f.svc.FetchAcks(context.Background(), map[string]string{"bank": "demo"}); err != nil {
		t.Fatal(err)
	}
	if !f.bank.confirm["d1"] {
		t.Fatal("not confirmed")
	}
	cur, _ := f.svc.Get(context.Background(), tr.ID)
	if cur.State != StatePartial {
		t.Fatalf("state %s after the PSR", cur.State)
	}
	req := f.bank.requests[0]
	fi, err := os.Stat(filepath.Dir(req.SpoolDir))
	if err != nil || fi.Mode().Perm() != 0o700 || req.MaxSize != DefaultMaxDocumentSize {
		t.Fatalf("download spool %v (%v), max %d", fi.Mode(), err, req.MaxSize)
	}
	if _, err := os.Stat(req.SpoolDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the call's spool directory is still there: %v", err)
	}
	acks, err := f.svc.AcksOf(context.Background(), tr.ID)
	if err != nil || len(acks) != 1 {
		t.Fatalf("acks %v %v", acks, err)
	}
	raw, err := f.st.GetRaw(context.Background(), acks[0].RawID)
	if err != nil || !raw.Chunked || raw.Size != int64(len(b)) {
		t.Fatalf("raw %+v %v", raw, err)
	}
	rc, _, err := f.st.OpenRawBody(context.Background(), raw.ID)
	if err != nil {
		t.Fatal(err)
	}
	var back bytes.Buffer
	back.ReadFrom(rc)
	if !bytes.Equal(back.Bytes(), b) {
		t.Fatal("stored body differs from the document")
	}
}

// A plugin that writes its file again after handing it over (here: once
// the document is stored) changes nothing: the parser reads the daemon's
// own copy of the bytes it stored, not the plugin's file a second time,
// and the copy is gone afterwards.
func TestDocumentRewrittenAfterHandOver(t *testing.T) {
	f := newFixture(t)
	tr := f.submitAndSend(t)
	b, _ := os.ReadFile("testdata/psr_tx_rjct.xml")
	other, _ := os.ReadFile("testdata/psr_actc.xml")
	var path string
	f.bank.docs = []sdk.Document{{DownloadID: "d1", Function: "psr", Name: "psr.xml", Content: b}}
	f.bank.byPath = func(req sdk.DownloadRequest, d sdk.Document) sdk.Document {
		d = spoolFile(t, req.SpoolDir, d)
		path = d.Path
		return d
	}
	rewrites := 0
	f.svc.afterStore = func() {
		rewrites++
		if err := os.WriteFile(path, other, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.svc.FetchAcks(context.Background(), map[string]string{"bank": "demo"}); err != nil {
		t.Fatal(err)
	}
	if rewrites != 1 {
		t.Fatalf("the file was rewritten %d times, want once", rewrites)
	}
	cur, _ := f.svc.Get(context.Background(), tr.ID)
	if cur.State != StatePartial {
		t.Fatalf("state %s: the rewritten file was parsed, not the stored document (want %s)", cur.State, StatePartial)
	}
	acks, err := f.svc.AcksOf(context.Background(), tr.ID)
	if err != nil || len(acks) != 1 {
		t.Fatalf("acks %v %v", acks, err)
	}
	rc, _, err := f.st.OpenRawBody(context.Background(), acks[0].RawID)
	if err != nil {
		t.Fatal(err)
	}
	var back bytes.Buffer
	back.ReadFrom(rc)
	rc.Close()
	if !bytes.Equal(back.Bytes(), b) {
		t.Fatal("stored body differs from the document handed over")
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(f.bank.requests[0].SpoolDir), ingestCopyPrefix+"*"))
	if len(left) != 0 {
		t.Fatalf("private copies left: %v", left)
	}
}

// Every way a plugin can hand over a document other than the sdk says is
// refused: a clear error, a log line, a metric, a negative receipt (the
// bank delivers it again), nothing stored, and what was stored before is
// untouched.
func TestFetchAcksRefusesHostileDocuments(t *testing.T) {
	good, _ := os.ReadFile("testdata/psr_tx_rjct.xml")
	for _, c := range []struct {
		name, reason string
		max          int64
		hand         func(t *testing.T, req sdk.DownloadRequest, d sdk.Document) sdk.Document
	}{
		{"path outside the spool dir", pluginrpc.SpoolNotInDir, 0, func(t *testing.T, req sdk.DownloadRequest, d sdk.Document) sdk.Document {
			return spoolFile(t, t.TempDir(), d)
		}},
		{"path in the daemon's downloads dir, not the call's", pluginrpc.SpoolNotInDir, 0, func(t *testing.T, req sdk.DownloadRequest, d sdk.Document) sdk.Document {
			return spoolFile(t, filepath.Dir(req.SpoolDir), d)
		}},
		{"dot-dot out of the spool dir", pluginrpc.SpoolNotInDir, 0, func(t *testing.T, req sdk.DownloadRequest, d sdk.Document) sdk.Document {
			d = spoolFile(t, filepath.Dir(req.SpoolDir), d)
			d.Path = filepath.Join(req.SpoolDir, "..") + "/./" + filepath.Base(d.Path)
			return d
		}},
		{"symlink in the spool dir", pluginrpc.SpoolNotRegular, 0, func(t *testing.T, req sdk.DownloadRequest, d sdk.Document) sdk.Document {
			d = spoolFile(t, t.TempDir(), d)
			link := filepath.Join(req.SpoolDir, "link.xml")
			if err := os.Symlink(d.Path, link); err != nil {
				t.Fatal(err)
			}
			d.Path = link
			return d
		}},
		{"size announced wrong", pluginrpc.SpoolSize, 0, func(t *testing.T, req sdk.DownloadRequest, d sdk.Document) sdk.Document {
			d = spoolFile(t, req.SpoolDir, d)
			d.Size++
			return d
		}},
		{"truncated file", pluginrpc.SpoolSize, 0, func(t *testing.T, req sdk.DownloadRequest, d sdk.Document) sdk.Document {
			d = spoolFile(t, req.SpoolDir, d)
			if err := os.Truncate(d.Path, d.Size/2); err != nil {
				t.Fatal(err)
			}
			return d
		}},
		{"sha256 mismatch", pluginrpc.SpoolDigest, 0, func(t *testing.T, req sdk.DownloadRequest, d sdk.Document) sdk.Document {
			d = spoolFile(t, req.SpoolDir, d)
			d.SHA256 = strings.Repeat("ab", 32)
			return d
		}},
		{"content with a wrong sha256", pluginrpc.SpoolDigest, 0, func(t *testing.T, req sdk.DownloadRequest, d sdk.Document) sdk.Document {
			d.SHA256 = strings.Repeat("ab", 32)
			return d
		}},
		{"above max_document_size", pluginrpc.SpoolTooLarge, 100, func(t *testing.T, req sdk.DownloadRequest, d sdk.Document) sdk.Document {
			return spoolFile(t, req.SpoolDir, d)
		}},
		{"content above max_document_size", pluginrpc.SpoolTooLarge, 100, func(t *testing.T, req sdk.DownloadRequest, d sdk.Document) sdk.Document {
			return d
		}},
		// A plugin reporting a document too large (sdk.Document.TooLarge)
		// gets it receipted without storing it: a report that does not
		// hold together is an ordinary refusal instead.
		{"reported too large, size within the limit", pluginrpc.SpoolTooLarge, 100000, func(t *testing.T, req sdk.DownloadRequest, d sdk.Document) sdk.Document {
			return sdk.Document{DownloadID: d.DownloadID, Function: d.Function, Name: d.Name, TooLarge: true, Size: 50}
		}},
		{"reported too large with a path", pluginrpc.SpoolTooLarge, 100, func(t *testing.T, req sdk.DownloadRequest, d sdk.Document) sdk.Document {
			d = spoolFile(t, req.SpoolDir, d)
			d.TooLarge = true
			return d
		}},
		{"reported too large with content", pluginrpc.SpoolTooLarge, 100, func(t *testing.T, req sdk.DownloadRequest, d sdk.Document) sdk.Document {
			d.TooLarge, d.Size = true, 101
			return d
		}},
		{"path and content", pluginrpc.SpoolBadFields, 0, func(t *testing.T, req sdk.DownloadRequest, d sdk.Document) sdk.Document {
			p := spoolFile(t, req.SpoolDir, d)
			p.Content = d.Content
			return p
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			var logs syncBuffer
			f.svc.d.Logger = zerolog.New(&logs)
			if c.max > 0 {
				f.svc.maxDoc = c.max
			}
			tr := f.submitAndSend(t)
			// Something stored before, which the refusal must not touch.
			if _, err := f.svc.Ingest(context.Background(), "demo", "psr", sdk.Document{DownloadID: "d0", Function: "psr", Name: "before.xml",
				Content: []byte(`<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.03"/>`)}); err != nil {
				t.Fatal(err)
			}
			raws, chunks, acks := rawCount(t, f.st)
			f.bank.docs = []sdk.Document{{DownloadID: "d1", Function: "psr", Name: "psr.xml", Content: good}}
			f.bank.byPath = func(req sdk.DownloadRequest, d sdk.Document) sdk.Document { return c.hand(t, req, d) }
			_, err := f.svc.FetchAcks(context.Background(), map[string]string{"bank": "demo"})
			if !errors.Is(err, ErrDocumentRefused) || !strings.Contains(err.Error(), c.reason) {
				t.Fatalf("FetchAcks error = %v, want ErrDocumentRefused (%s)", err, c.reason)
			}
			if ok, seen := f.bank.confirm["d1"]; !seen || ok {
				t.Fatalf("receipt: seen %v ok %v, want a negative receipt", seen, ok)
			}
			if r2, c2, a2 := rawCount(t, f.st); r2 != raws || c2 != chunks || a2 != acks {
				t.Fatalf("stored after a refusal: raw %d->%d chunks %d->%d acks %d->%d", raws, r2, chunks, c2, acks, a2)
			}
			if got := testutil.ToFloat64(f.svc.m.rejected.WithLabelValues("demo", c.reason)); got != 1 {
				t.Fatalf("acquit_acks_rejected_input_total{reason=%q} = %v", c.reason, got)
			}
			if l := logs.String(); !strings.Contains(l, "downloaded document refused") || !strings.Contains(l, `"reason":"`+c.reason+`"`) {
				t.Fatalf("log: %s", l)
			}
			cur, _ := f.svc.Get(context.Background(), tr.ID)
			if cur.State != StateSubmitted {
				t.Fatalf("state %s after a refused document", cur.State)
			}
			if before, err := f.svc.d.Store.GetRaw(context.Background(), 1); err != nil || before.Path != "before.xml" {
				t.Fatalf("the earlier raw input: %+v %v", before, err)
			}
		})
	}
}

// A document delivered again (a date-range download returns the same
// documents on every fetch) is not stored a second time: the redelivery
// is a bodiless raw row naming the first acknowledgement, so a scheduled
// fetch of a large report does not add its size to the store each run.
// A file whose announced digest names a known document but whose bytes
// differ is refused, not taken for the duplicate.
func TestRedeliveredDocumentNotStoredAgain(t *testing.T) {
	f := newFixture(t)
	f.submitAndSend(t)
	b, _ := os.ReadFile("testdata/psr_tx_rjct.xml")
	f.bank.docs = []sdk.Document{{DownloadID: "d1", Function: "psr", Name: "psr.xml", Content: b}}
	f.bank.byPath = func(req sdk.DownloadRequest, d sdk.Document) sdk.Document { return spoolFile(t, req.SpoolDir, d) }
	if _, err := f.svc.FetchAcks(context.Background(), map[string]string{"bank": "demo"}); err != nil {
		t.Fatal(err)
	}
	raws, chunks, acks := rawCount(t, f.st)
	if chunks == 0 || acks != 1 {
		t.Fatalf("first delivery: raw %d chunks %d acks %d", raws, chunks, acks)
	}
	for i := 0; i < 3; i++ {
		f.bank.docs = []sdk.Document{{DownloadID: "again" + strconv.Itoa(i), Function: "psr", Name: "psr.xml", Content: b}}
		if _, err := f.svc.FetchAcks(context.Background(), map[string]string{"bank": "demo"}); err != nil {
			t.Fatal(err)
		}
	}
	r2, c2, a2 := rawCount(t, f.st)
	if c2 != chunks || a2 != acks || r2 != raws+3 {
		t.Fatalf("after 3 redeliveries: raw %d->%d chunks %d->%d acks %d->%d (want 3 bodiless raw rows, no chunk, no ack)", raws, r2, chunks, c2, acks, a2)
	}
	if !f.bank.confirm["again2"] {
		t.Fatal("the redelivery was not confirmed")
	}
	last, err := f.st.GetRaw(context.Background(), int64(r2))
	if err != nil || last.Size != 0 || len(last.Headers["duplicate_of"]) != 1 || last.Headers["document_size"][0] != strconv.Itoa(len(b)) {
		t.Fatalf("redelivery raw row %+v %v", last, err)
	}
	if len(last.Verdicts) != 1 || last.Verdicts[0].Code != "duplicate" {
		t.Fatalf("verdicts %+v", last.Verdicts)
	}
	if n := testutil.ToFloat64(f.svc.m.acks.WithLabelValues("demo", "psr", "duplicate")); n != 3 {
		t.Fatalf("duplicate metric %v", n)
	}

	// Announced as the known document, but other bytes of the same size.
	forged := bytes.Replace(b, []byte("AC01"), []byte("AC04"), 1)
	if bytes.Equal(forged, b) {
		t.Fatal("fixture has no AC01")
	}
	f.bank.docs = []sdk.Document{{DownloadID: "forged", Function: "psr", Name: "psr.xml", Content: forged}}
	f.bank.byPath = func(req sdk.DownloadRequest, d sdk.Document) sdk.Document {
		p := spoolFile(t, req.SpoolDir, d)
		sum := sha256.Sum256(b)
		p.SHA256 = hex.EncodeToString(sum[:])
		return p
	}
	_, err = f.svc.FetchAcks(context.Background(), map[string]string{"bank": "demo"})
	if !errors.Is(err, ErrDocumentRefused) || !strings.Contains(err.Error(), pluginrpc.SpoolDigest) {
		t.Fatalf("forged redelivery: %v", err)
	}
	if ok, seen := f.bank.confirm["forged"]; !seen || ok {
		t.Fatalf("forged redelivery receipt: seen %v ok %v", seen, ok)
	}
	if r3, c3, a3 := rawCount(t, f.st); r3 != r2 || c3 != c2 || a3 != a2 {
		t.Fatalf("stored after the forged redelivery: raw %d->%d chunks %d->%d acks %d->%d", r2, r3, c2, c3, a2, a3)
	}
}

// A download directory left by a killed process (a document of up to
// transmissions.max_document_size in it) is removed once a day old by the
// running daemon's next fetch, not only by a restart a day later: a
// daemon killed during a large download and restarted at once kept the
// file for as long as it then ran. A recent directory is left alone.
func TestFetchAcksSweepsOldDownloadDirs(t *testing.T) {
	f := newFixture(t)
	old := filepath.Join(f.svc.downloads, "fetch-killed")
	recent := filepath.Join(f.svc.downloads, "fetch-recent")
	for _, d := range []string{old, recent} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "ebics-psr-1.doc"), []byte("partial document"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A private copy of a document being ingested, left by a crash.
	oldCopy := filepath.Join(f.svc.downloads, ingestCopyPrefix+"killed")
	recentCopy := filepath.Join(f.svc.downloads, ingestCopyPrefix+"recent")
	for _, p := range []string{oldCopy, recentCopy} {
		if err := os.WriteFile(p, []byte("partial copy"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	day := time.Now().Add(-25 * time.Hour)
	for _, p := range []string{old, oldCopy} {
		if err := os.Chtimes(p, day, day); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.svc.FetchAcks(context.Background(), map[string]string{"bank": "demo"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{old, oldCopy} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("day-old %s is still there after a fetch: %v", filepath.Base(p), err)
		}
	}
	for _, p := range []string{recent, recentCopy} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("recent %s was removed: %v", filepath.Base(p), err)
		}
	}
}

// The record of a document refused as over max_document_size (reported
// TooLarge by its plugin, receipted, never stored) outlives raw retention,
// on both drivers: it is the only trace of a document the bank will not
// offer again. A refused input nothing verified, recorded at the same
// time, is pruned (so the prune did run).
func TestTooLargeRefusalOutlivesRawRetention(t *testing.T) {
	for _, driver := range []string{"sqlite", "postgres"} {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			f := newFixtureOn(t, driver)
			f.svc.maxDoc = 100
			f.bank.docs = []sdk.Document{{DownloadID: "d1", Function: "psr", Name: "psr.xml"}}
			f.bank.byPath = func(req sdk.DownloadRequest, d sdk.Document) sdk.Document {
				return sdk.Document{DownloadID: d.DownloadID, Function: d.Function, Name: d.Name, TooLarge: true, Size: req.MaxSize + 1}
			}
			if _, err := f.svc.FetchAcks(ctx, map[string]string{"bank": "demo"}); err != nil {
				t.Fatal(err)
			}
			if ok := f.bank.confirm["d1"]; !ok {
				t.Fatal("the document reported too large was not receipted positively")
			}
			var refusal int64
			if err := f.st.InTx(ctx, func(tx store.Tx) error {
				return tx.QueryRow(ctx, `SELECT raw_id FROM raw_verdicts WHERE code = 'too_large'`).Scan(&refusal)
			}); err != nil {
				t.Fatalf("the refusal's record: %v", err)
			}
			refused, err := f.st.RecordRaw(ctx, store.RawInput{Source: "bank:demo", Channel: "download:psr", Method: "DOWNLOAD", ReceivedAt: f.now,
				Verdicts: []store.Verdict{{Verified: false, Code: "malformed", At: f.now}}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.st.PruneRaw(ctx, f.now.Add(24*time.Hour), 0); err != nil {
				t.Fatal(err)
			}
			if _, err := f.st.GetRaw(ctx, refused); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("the unverified input after the prune: %v, want it pruned", err)
			}
			raw, err := f.st.GetRaw(ctx, refusal)
			if err != nil || len(raw.Verdicts) != 1 || raw.Verdicts[0].Code != "too_large" || raw.Headers["max_document_size"][0] != "100" {
				t.Fatalf("the refusal's record after the prune: %+v, %v", raw, err)
			}
		})
	}
}
