package transmissions

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/daemon/store/postgres"
	"github.com/acquit/acquit/daemon/store/sqlite"
	"github.com/acquit/acquit/internal/pgtest"
	"github.com/acquit/acquit/sdk"
)

// recordingBank is a BankTransport test double standing for the bank side
// in these unit tests (the EBICS plugin and its simulator are exercised in
// the end-to-end tests). It records every upload it receives.
type recordingBank struct {
	mu         sync.Mutex
	uploads    map[string]int // TransmissionID -> count
	refuse     bool
	fail       int // fail this many uploads with a transient error first
	docs       []sdk.Document
	confirm    map[string]bool
	onePerCall bool
	bigDetails string
	during     func() // called inside Upload, lock released
	onUpload   func() // called first thing in Upload, lock not taken
	// byPath, when set, hands each document over as the file it returns
	// (written in the call's spool directory, or wherever a test wants).
	byPath   func(t sdk.DownloadRequest, d sdk.Document) sdk.Document
	requests []sdk.DownloadRequest
}

func (b *recordingBank) Describe(context.Context) (sdk.Info, error) {
	return sdk.Info{Name: "rec", Kind: sdk.KindBankTransport}, nil
}
func (b *recordingBank) Configure(context.Context, []byte, sdk.Host) error { return nil }
func (b *recordingBank) Health(context.Context) error                      { return nil }
func (b *recordingBank) Upload(ctx context.Context, req sdk.UploadRequest, progress func(int64, int64)) (*sdk.UploadResult, error) {
	if b.onUpload != nil {
		b.onUpload()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fail > 0 {
		b.fail--
		return nil, fmt.Errorf("connection reset")
	}
	if b.refuse {
		return nil, sdk.Reject("091112", "EBICS_INVALID_ORDER_PARAMS")
	}
	if _, err := os.Stat(req.Path); err != nil {
		return nil, err
	}
	if b.uploads == nil {
		b.uploads = map[string]int{}
	}
	b.uploads[req.TransmissionID]++
	if b.during != nil {
		b.mu.Unlock()
		b.during()
		b.mu.Lock()
	}
	progress(req.Size, req.Size)
	return &sdk.UploadResult{OrderID: fmt.Sprintf("A%03d", len(b.uploads)), TransactionID: "TX" + req.TransmissionID, Segments: 1,
		ReturnCode: "000000", Details: map[string]string{"partner_id": "PARTNER1", "txs": b.bigDetails}}, nil
}
func (b *recordingBank) Download(ctx context.Context, req sdk.DownloadRequest) (*sdk.DownloadResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.requests = append(b.requests, req)
	var out []sdk.Document
	for _, d := range b.docs {
		if d.Function == req.Function && !b.confirm[d.DownloadID] {
			if b.byPath != nil {
				d = b.byPath(req, d)
			}
			out = append(out, d)
			if b.onePerCall {
				break
			}
		}
	}
	return &sdk.DownloadResult{NoData: len(out) == 0, Documents: out}, nil
}
func (b *recordingBank) Confirm(ctx context.Context, bank, id string, ok bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.confirm == nil {
		b.confirm = map[string]bool{}
	}
	b.confirm[id] = ok
	return nil
}
func (b *recordingBank) Keys(context.Context, sdk.KeyRequest) (*sdk.KeyResult, error) {
	return nil, fmt.Errorf("no keys")
}

type fixture struct {
	svc   *Service
	st    store.Store
	bank  *recordingBank
	now   time.Time
	reg   *prometheus.Registry
	outbx string
}

func newFixture(t testing.TB) *fixture { return newFixtureOn(t, "sqlite") }

// newFixtureOn is newFixture on the store driver named (postgres: skipped
// without ACQUIT_TEST_PG_DSN, failed under CI=true).
func newFixtureOn(t testing.TB, driver string) *fixture {
	t.Helper()
	ctx := context.Background()
	var st store.Store
	var err error
	if driver == "postgres" {
		st, err = postgres.Open(ctx, pgtest.DSN(t), store.WithMigrations(Migrations()))
	} else {
		st, err = sqlite.Open(ctx, filepath.Join(t.TempDir(), "acquit.db"), store.WithMigrations(Migrations()))
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{st: st, bank: &recordingBank{}, now: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC), reg: prometheus.NewRegistry()}
	f.outbx = filepath.Join(t.TempDir(), "outbox")
	svc, err := New(Deps{
		Store:      st,
		Transport:  func(string) (sdk.BankTransport, error) { return f.bank, nil },
		Banks:      []Bank{{Name: "demo", Plugin: "ebics", AckDeadline: time.Hour, AckKinds: []string{"psr"}, OutboxDir: f.outbx}},
		SpoolDir:   filepath.Join(t.TempDir(), "spool"),
		Logger:     zerolog.Nop(),
		Registerer: f.reg,
		Now:        func() time.Time { return f.now },
	})
	if err != nil {
		t.Fatal(err)
	}
	f.svc = svc
	return f
}

func (f *fixture) submitAndSend(t *testing.T) *Transmission {
	t.Helper()
	ctx := context.Background()
	res, err := f.svc.Submit(ctx, "demo", "sct", "testdata/pain001_3tx.xml")
	if err != nil {
		t.Fatal(err)
	}
	tr, err := f.svc.Send(ctx, res.Transmission.ID, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	if tr.State != StateSubmitted || tr.OrderID == "" {
		t.Fatalf("after send: %+v", tr)
	}
	return tr
}

func (f *fixture) ingest(t *testing.T, file string) *IngestResult {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	r, err := f.svc.Ingest(context.Background(), "demo", "psr", sdk.Document{DownloadID: file, Function: "psr", Name: file, Content: b})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (f *fixture) events(t *testing.T, typ string) []store.Event {
	t.Helper()
	evs, err := f.st.ListEvents(context.Background(), store.EventFilter{Type: typ, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestSubmitIsIdempotentPerContent(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a, err := f.svc.Submit(ctx, "demo", "", "testdata/pain001_3tx.xml")
	if err != nil {
		t.Fatal(err)
	}
	// The same bytes under another name: the same transmission.
	other := filepath.Join(t.TempDir(), "copy.xml")
	b, _ := os.ReadFile("testdata/pain001_3tx.xml")
	os.WriteFile(other, b, 0o600)
	again, err := f.svc.Submit(ctx, "demo", "", other)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Existing || again.Transmission.ID != a.Transmission.ID {
		t.Fatalf("second submit made %+v", again)
	}
	if a.Transmission.MsgID != "TEST-MSG-1" || a.Transmission.NbOfTxs != 3 || a.Transmission.Function != "sct" {
		t.Fatalf("recorded %+v", a.Transmission)
	}
	if _, err := f.svc.Send(ctx, a.Transmission.ID, "w1", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Send(ctx, a.Transmission.ID, "w2", nil); err != nil {
		t.Fatal(err)
	}
	if n := f.bank.uploads[a.Transmission.ID]; n != 1 {
		t.Fatalf("bank saw %d uploads", n)
	}
	if len(f.events(t, "transmission.submitted")) != 1 {
		t.Fatal("want one transmission.submitted event")
	}
	if _, err := f.svc.Submit(ctx, "nope", "", other); err == nil {
		t.Fatal("unknown bank accepted")
	}
}

func TestAckMerging(t *testing.T) {
	cases := []struct {
		name   string
		files  []string
		want   State
		events []string
		rejTx  int
	}{
		{"accepted", []string{"psr_actc.xml"}, StateAccepted, []string{"transmission.accepted"}, 0},
		{"actc then tx reject", []string{"psr_actc.xml", "psr_tx_rjct.xml"}, StatePartial, []string{"transmission.accepted", "transmission.partially_accepted"}, 1},
		{"tx reject then actc", []string{"psr_tx_rjct.xml", "psr_actc.xml"}, StatePartial, []string{"transmission.partially_accepted"}, 1},
		{"group reject", []string{"psr_group_rjct.xml"}, StateRejected, []string{"transmission.rejected"}, 3},
		{"reject then accept never undoes", []string{"psr_group_rjct.xml", "psr_actc.xml", "psr_tx_rjct.xml"}, StateRejected, []string{"transmission.rejected"}, 3},
		{"partial then group reject", []string{"psr_tx_rjct.xml", "psr_group_rjct.xml"}, StateRejected, []string{"transmission.partially_accepted", "transmission.rejected"}, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			tr := f.submitAndSend(t)
			for _, file := range tc.files {
				f.now = f.now.Add(time.Minute)
				f.ingest(t, file)
			}
			d, err := f.svc.Describe(context.Background(), tr.ID)
			if err != nil {
				t.Fatal(err)
			}
			if d.State != tc.want {
				t.Fatalf("state %s, want %s", d.State, tc.want)
			}
			rej := 0
			for _, x := range d.Rejected {
				if x.Status == "RJCT" {
					rej++
				}
			}
			if rej != tc.rejTx {
				t.Fatalf("%d rejected transactions, want %d: %+v", rej, tc.rejTx, d.Rejected)
			}
			var got []string
			evs, _ := f.st.ListEvents(context.Background(), store.EventFilter{Subject: "transmission:" + tr.ID, Limit: 100})
			for _, e := range evs {
				if e.Type != "transmission.submitted" {
					got = append(got, e.Type)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.events) {
				t.Fatalf("events %v, want %v", got, tc.events)
			}
		})
	}
}

func TestPartialEventCarriesRejectedTransactions(t *testing.T) {
	f := newFixture(t)
	tr := f.submitAndSend(t)
	f.ingest(t, "psr_tx_rjct.xml")
	evs := f.events(t, "transmission.partially_accepted")
	if len(evs) != 1 {
		t.Fatalf("%d events", len(evs))
	}
	var p struct {
		Rejected []TxStatus `json:"rejected_transactions"`
		Trans    struct {
			ID string `json:"id"`
		} `json:"transmission"`
	}
	if err := json.Unmarshal(evs[0].Payload, &p); err != nil {
		t.Fatal(err)
	}
	if p.Trans.ID != tr.ID || len(p.Rejected) != 1 || p.Rejected[0].EndToEndID != "E2E-2" || p.Rejected[0].Amount != "200.00" ||
		p.Rejected[0].ReasonCode != "AC01" || p.Rejected[0].ReasonText != "IBAN invalide" {
		t.Fatalf("payload %s", evs[0].Payload)
	}
}

func TestDuplicateAckIngestedOnce(t *testing.T) {
	f := newFixture(t)
	tr := f.submitAndSend(t)
	a := f.ingest(t, "psr_tx_rjct.xml")
	b := f.ingest(t, "psr_tx_rjct.xml")
	if a.Duplicate || !b.Duplicate || b.AckID != a.AckID {
		t.Fatalf("first %+v second %+v", a, b)
	}
	d, _ := f.svc.Describe(context.Background(), tr.ID)
	if len(d.Acks) != 3 { // group, pmtinf, tx entries, once
		t.Fatalf("%d ack entries: %+v", len(d.Acks), d.Acks)
	}
	if n := testutil.ToFloat64(f.svc.m.acks.WithLabelValues("demo", "psr", "duplicate")); n != 1 {
		t.Fatalf("duplicate metric %v", n)
	}
}

func TestUnmatchedAndMalformedAcks(t *testing.T) {
	f := newFixture(t)
	tr := f.submitAndSend(t)
	// A real bank sample about a file we never sent.
	b, err := os.ReadFile("../../../shared/fixtures/ebics/psr-pain002/nordea_pain_002_v3_txn_reject.xml")
	if err != nil {
		t.Skip("shared fixtures not beside the repo")
	}
	r, err := f.svc.Ingest(context.Background(), "demo", "psr", sdk.Document{DownloadID: "n", Name: "nordea.xml", Content: b})
	if err != nil {
		t.Fatal(err)
	}
	if r.Unmatched == 0 || r.Unmatched != r.Entries {
		t.Fatalf("ingest %+v", r)
	}
	m := f.ingest(t, "psr_malformed.xml")
	if m.ParseError == "" {
		t.Fatal("hostile document parsed")
	}
	evs := f.events(t, "ack.unmatched")
	if len(evs) != 2 {
		t.Fatalf("%d ack.unmatched events", len(evs))
	}
	raw, err := f.st.GetRaw(context.Background(), m.RawID)
	if err != nil || len(raw.Verdicts) != 1 || raw.Verdicts[0].Verified || raw.Verdicts[0].Code != "malformed" {
		t.Fatalf("raw %+v err %v", raw, err)
	}
	cur, _ := f.svc.Get(context.Background(), tr.ID)
	if cur.State != StateSubmitted {
		t.Fatalf("unrelated acks moved the transmission to %s", cur.State)
	}
}

// TestUnsentAlarm: a file the bank never takes (every upload fails) raises
// transmission.unsent once, its bank's ack_deadline after it was submitted
// to acquit, with the last upload error; it stays queued and is sent when
// the bank takes it, and the acknowledgement deadline then starts afresh.
// A file sent in time raises no such alarm.
func TestUnsentAlarm(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	sentInTime := f.submitAndSend(t)
	f.bank.fail = 1 << 20
	b, err := os.ReadFile("testdata/pain001_3tx.xml")
	if err != nil {
		t.Fatal(err)
	}
	second := filepath.Join(t.TempDir(), "second.xml")
	b = bytes.Replace(b, []byte("<MsgId>"), []byte("<MsgId>UNSENT-"), 1)
	if err := os.WriteFile(second, b, 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := f.svc.Submit(ctx, "demo", "sct", second)
	if err != nil {
		t.Fatal(err)
	}
	id := res.Transmission.ID
	if _, err := f.svc.Send(ctx, id, "test", nil); err == nil {
		t.Fatal("upload to a failing bank succeeded")
	}
	f.now = f.now.Add(59 * time.Minute)
	if n, err := f.svc.CheckDeadlines(ctx); n != 0 || err != nil {
		t.Fatalf("before the deadline: %d alarms, %v", n, err)
	}
	f.now = f.now.Add(2 * time.Minute)
	// More files wait than one page of List holds, all newer: the overdue
	// one is found all the same.
	if err := f.st.InTx(ctx, func(tx store.Tx) error {
		_, err := tx.Exec(ctx, `WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 1200)
			INSERT INTO transmissions (id, bank, function, file_name, spool_path, sha256, size, kind, msg_id, nb_of_txs, ctrl_sum,
				state, created_ms, updated_ms)
			SELECT 'FILL-' || n, 'demo', 'sct', 'fill.xml', '/nonexistent', 'fill-' || n, 1, 'pain.001.001.03', 'FILL-' || n, 1, '1.00',
				'queued', ?, ? FROM c`, f.now.UnixMilli(), f.now.UnixMilli())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// The file sent in time is now unacknowledged: one alarm each.
	if n, err := f.svc.CheckDeadlines(ctx); n != 2 || err != nil {
		t.Fatalf("at the deadline: %d alarms, %v; want unacknowledged and unsent", n, err)
	}
	// Raised once, and checked again without a transaction per file it was
	// raised for: the two lists (one per kind of deadline) are read off
	// the writer (store.View), so a check with nothing to raise takes no
	// write transaction at all.
	gs := f.st.(interface{ GroupStats() (int64, int64) })
	_, tx0 := gs.GroupStats()
	if n, err := f.svc.CheckDeadlines(ctx); n != 0 || err != nil {
		t.Fatalf("again: %d alarms, %v", n, err)
	}
	if _, tx1 := gs.GroupStats(); tx1-tx0 != 0 {
		t.Fatalf("checking again took %d write transactions, want 0", tx1-tx0)
	}
	evs := f.events(t, "transmission.unsent")
	if len(evs) != 1 || evs[0].Subject != "transmission:"+id {
		t.Fatalf("transmission.unsent events %+v", evs)
	}
	var pl struct {
		Deadline       time.Time    `json:"deadline"`
		UploadAttempts int64        `json:"upload_attempts"`
		LastError      string       `json:"last_error"`
		Transmission   Transmission `json:"transmission"`
	}
	if err := json.Unmarshal(evs[0].Payload, &pl); err != nil {
		t.Fatal(err)
	}
	if !pl.Deadline.Equal(res.Transmission.CreatedAt.Add(time.Hour)) || pl.UploadAttempts != 1 ||
		!strings.Contains(pl.LastError, "connection reset") || pl.Transmission.State != StateQueued {
		t.Fatalf("payload %+v", pl)
	}
	if got := testutil.ToFloat64(f.svc.m.unsent.WithLabelValues("demo")); got != 1 {
		t.Fatalf("acquit_transmission_unsent_total = %v", got)
	}
	if evs := f.events(t, "transmission.unsent"); len(evs) != 1 {
		t.Fatalf("%d unsent events for two transmissions", len(evs))
	}
	if cur, _ := f.svc.Get(ctx, sentInTime.ID); cur.State != StateUnacknowledged {
		t.Fatalf("the file sent in time: %s", cur.State)
	}

	// The bank takes it at last.
	f.bank.fail = 0
	tr, err := f.svc.Send(ctx, id, "test", nil)
	if err != nil || tr.State != StateSubmitted {
		t.Fatalf("late send: %+v %v", tr, err)
	}
	if !tr.DeadlineAt.Equal(f.now.Add(time.Hour)) {
		t.Fatalf("acknowledgement deadline %s, want an hour after the late send (%s)", tr.DeadlineAt, f.now)
	}
	if n, err := f.svc.CheckDeadlines(ctx); n != 0 || err != nil {
		t.Fatalf("after the late send: %d alarms, %v", n, err)
	}
}

// TestUnsentAlarmDuringRefusedUpload: transmission.unsent raised while an
// upload is under way (the file waited past its deadline) does not keep
// the bank's refusal from being recorded when that upload ends.
func TestUnsentAlarmDuringRefusedUpload(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	res, err := f.svc.Submit(ctx, "demo", "sct", "testdata/pain001_3tx.xml")
	if err != nil {
		t.Fatal(err)
	}
	f.now = f.now.Add(2 * time.Hour)
	f.bank.refuse = true
	f.bank.onUpload = func() {
		if n, err := f.svc.CheckDeadlines(ctx); n != 1 || err != nil {
			t.Errorf("alarm during the upload: %d, %v", n, err)
		}
	}
	tr, err := f.svc.Send(ctx, res.Transmission.ID, "test", nil)
	if err != nil || tr.State != StateFailed {
		t.Fatalf("refused upload: %+v, %v", tr, err)
	}
	if len(f.events(t, "transmission.unsent")) != 1 || len(f.events(t, "transmission.rejected")) != 1 {
		t.Fatalf("events: %d unsent, %d rejected", len(f.events(t, "transmission.unsent")), len(f.events(t, "transmission.rejected")))
	}
}

func TestDeadlineThenLateAck(t *testing.T) {
	f := newFixture(t)
	tr := f.submitAndSend(t)
	ctx := context.Background()
	if n, _ := f.svc.CheckDeadlines(ctx); n != 0 {
		t.Fatal("deadline fired early")
	}
	f.now = f.now.Add(61 * time.Minute)
	if n, err := f.svc.CheckDeadlines(ctx); n != 1 || err != nil {
		t.Fatalf("deadline: %d %v", n, err)
	}
	if n, _ := f.svc.CheckDeadlines(ctx); n != 0 {
		t.Fatal("alarm raised twice")
	}
	f.ingest(t, "psr_actc.xml")
	cur, _ := f.svc.Get(ctx, tr.ID)
	if cur.State != StateAccepted {
		t.Fatalf("late ack: %s", cur.State)
	}
	if len(f.events(t, "transmission.unacknowledged")) != 1 || len(f.events(t, "transmission.accepted")) != 1 {
		t.Fatal("events")
	}
}

func TestUploadRefusedAndRetried(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.bank.fail = 1
	res, _ := f.svc.Submit(ctx, "demo", "", "testdata/pain001_3tx.xml")
	if _, err := f.svc.Send(ctx, res.Transmission.ID, "w", nil); err == nil {
		t.Fatal("transient failure not reported")
	}
	cur, _ := f.svc.Get(ctx, res.Transmission.ID)
	if cur.State != StateQueued || cur.LastError == "" {
		t.Fatalf("after transient failure: %+v", cur)
	}
	f.bank.refuse = true
	f.now = f.now.Add(time.Hour)
	if n, _ := f.svc.SendPending(ctx, "w"); n != 1 {
		t.Fatalf("SendPending sent %d", n)
	}
	cur, _ = f.svc.Get(ctx, res.Transmission.ID)
	if cur.State != StateFailed || len(f.events(t, "transmission.rejected")) != 1 {
		t.Fatalf("after refusal: %+v", cur)
	}
}

func TestOutboxFolder(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	os.MkdirAll(f.outbx, 0o750)
	b, _ := os.ReadFile("testdata/pain001_3tx.xml")
	os.WriteFile(filepath.Join(f.outbx, "a.xml"), b, 0o600)
	os.WriteFile(filepath.Join(f.outbx, "bad.xml"), []byte("<nope/>"), 0o600)
	os.WriteFile(filepath.Join(f.outbx, ".partial.xml"), b, 0o600)
	f.now = time.Now().Add(time.Minute)
	if n, err := f.svc.ScanOutbox(ctx, "w", time.Second); err != nil || n != 2 {
		t.Fatalf("scan: %d %v", n, err)
	}
	sent, _ := filepath.Glob(filepath.Join(f.outbx, "sent", "*_a.xml"))
	failed, _ := filepath.Glob(filepath.Join(f.outbx, "failed", "bad.xml*"))
	if len(sent) != 1 || len(failed) != 2 {
		t.Fatalf("sent %v failed %v", sent, failed)
	}
	// Dropped again: recognised, not sent twice.
	os.WriteFile(filepath.Join(f.outbx, "a-again.xml"), b, 0o600)
	if _, err := f.svc.ScanOutbox(ctx, "w", time.Second); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, n := range f.bank.uploads {
		total += n
	}
	if total != 1 {
		t.Fatalf("bank saw %d uploads", total)
	}
	if _, err := os.Stat(filepath.Join(f.outbx, ".partial.xml")); err != nil {
		t.Fatal("hidden file touched")
	}
}

func TestFetchAcksConfirmsAfterStoring(t *testing.T) {
	f := newFixture(t)
	tr := f.submitAndSend(t)
	b, _ := os.ReadFile("testdata/psr_tx_rjct.xml")
	f.bank.docs = []sdk.Document{{DownloadID: "d1", Function: "psr", Name: "psr.xml", Content: b}}
	sum, err := f.svc.FetchAcks(context.Background(), map[string]string{"bank": "demo"})
	if err != nil {
		t.Fatal(err)
	}
	if !f.bank.confirm["d1"] {
		t.Fatalf("not confirmed: %s", sum)
	}
	// The bank delivers it again (receipt lost): ingested once.
	f.bank.confirm = nil
	if _, err := f.svc.FetchAcks(context.Background(), map[string]string{"bank": "demo"}); err != nil {
		t.Fatal(err)
	}
	if n := len(f.events(t, "transmission.partially_accepted")); n != 1 {
		t.Fatalf("%d partial events", n)
	}
	cur, _ := f.svc.Get(context.Background(), tr.ID)
	if cur.State != StatePartial {
		t.Fatal(cur.State)
	}
	sum, _ = f.svc.FetchAcks(context.Background(), map[string]string{"bank": "demo", "kinds": "psr"})
	if sum != "demo/psr: no data" {
		t.Fatalf("summary %q", sum)
	}
}

func TestConcurrentSendsUploadOnce(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	res, _ := f.svc.Submit(ctx, "demo", "", "testdata/pain001_3tx.xml")
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); f.svc.Send(ctx, res.Transmission.ID, "demo", nil) }()
	}
	wg.Wait()
	if n := f.bank.uploads[res.Transmission.ID]; n != 1 {
		t.Fatalf("bank saw %d uploads", n)
	}
}

func TestLeaseOfDeadProcessTakenOver(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	res, _ := f.svc.Submit(ctx, "demo", "", "testdata/pain001_3tx.xml")
	// A process of this instance took the lease and died (kill -9).
	if _, _, err := f.svc.claim(ctx, res.Transmission.ID, "inst", time.Hour); err != nil {
		t.Fatal(err)
	}
	// Another instance must wait for the lease to expire...
	other, err := New(Deps{Store: f.st, Transport: f.svc.d.Transport, Banks: f.svc.d.Banks, SpoolDir: t.TempDir(), Logger: zerolog.Nop(), Now: f.svc.d.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Send(ctx, res.Transmission.ID, "other-inst", nil); err == nil {
		t.Fatal("another instance took a live lease")
	}
	// ...but the restarted process of the same instance resumes at once.
	if tr, err := other.Send(ctx, res.Transmission.ID, "inst", nil); err != nil || tr.State != StateSubmitted {
		t.Fatalf("restart could not resume: %v", err)
	}
}

func TestFetchAcksDrainsEveryPendingDocument(t *testing.T) {
	f := newFixture(t)
	tr := f.submitAndSend(t)
	a, _ := os.ReadFile("testdata/psr_actc.xml")
	b, _ := os.ReadFile("testdata/psr_tx_rjct.xml")
	// A bank offering one document per download, as EBICS does.
	f.bank.docs = []sdk.Document{{DownloadID: "d1", Function: "psr", Name: "1.xml", Content: a}, {DownloadID: "d2", Function: "psr", Name: "2.xml", Content: b}}
	f.bank.onePerCall = true
	sum, err := f.svc.FetchAcks(context.Background(), map[string]string{"bank": "demo"})
	if err != nil {
		t.Fatal(err)
	}
	if sum != "demo/psr: 2 new, 0 duplicate, 0 bad, 4 entries, 0 unmatched" {
		t.Fatalf("summary %q", sum)
	}
	cur, _ := f.svc.Get(context.Background(), tr.ID)
	if cur.State != StatePartial {
		t.Fatal(cur.State)
	}
}

func TestLargePluginDetailsStayOutOfEvents(t *testing.T) {
	f := newFixture(t)
	f.bank.bigDetails = strings.Repeat("x", 2<<20)
	tr := f.submitAndSend(t)
	evs := f.events(t, "transmission.submitted")
	if len(evs) != 1 || len(evs[0].Payload) > 16<<10 {
		t.Fatalf("submitted event of %d bytes", len(evs[0].Payload))
	}
	cur, _ := f.svc.Get(context.Background(), tr.ID)
	if !strings.Contains(string(cur.Details), `"txs_bytes":"2097152"`) {
		t.Fatalf("details %s", cur.Details)
	}
}

// An acknowledgement fetched while a resumed upload finishes must not
// erase the submission (order id, submitted event).
func TestAckBeforeUploadRecorded(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	res, _ := f.svc.Submit(ctx, "demo", "", "testdata/pain001_3tx.xml")
	f.bank.during = func() { f.ingest(t, "psr_actc.xml") } // the bank's PSR arrives mid-upload
	sent, err := f.svc.Send(ctx, res.Transmission.ID, "w", nil)
	if err != nil {
		t.Fatal(err)
	}
	if sent.State != StateAccepted || sent.OrderID == "" || sent.SubmittedAt.IsZero() {
		t.Fatalf("after upload: %+v", sent)
	}
	if len(f.events(t, "transmission.submitted")) != 1 || len(f.events(t, "transmission.accepted")) != 1 {
		t.Fatal("want one submitted and one accepted event")
	}
}

// A HAC rejects the file first (no details); the PSR then names every
// rejected transaction: the hooks hear transmission.rejected again, with
// the details, marked as an update.
func TestRejectionDetailsAfterHAC(t *testing.T) {
	f := newFixture(t)
	tr := f.submitAndSend(t)
	b, _ := os.ReadFile("testdata/hac_final_neg.xml")
	r, err := f.svc.Ingest(context.Background(), "demo", "hac", sdk.Document{DownloadID: "h", Name: "hac.xml", Content: b})
	if err != nil || r.Unmatched != 0 {
		t.Fatalf("hac: %+v %v", r, err)
	}
	f.ingest(t, "psr_group_rjct.xml")
	evs := f.events(t, "transmission.rejected")
	if len(evs) != 2 {
		t.Fatalf("%d rejected events", len(evs))
	}
	var first, second struct {
		Count  int  `json:"rejected_count"`
		Update bool `json:"update"`
	}
	json.Unmarshal(evs[0].Payload, &first)
	json.Unmarshal(evs[1].Payload, &second)
	if first.Count != 0 || first.Update || second.Count != 3 || !second.Update {
		t.Fatalf("first %+v second %+v", first, second)
	}
	cur, _ := f.svc.Get(context.Background(), tr.ID)
	if cur.State != StateRejected {
		t.Fatal(cur.State)
	}
	// The same PSR again adds nothing: no third event.
	b2, _ := os.ReadFile("testdata/psr_group_rjct.xml")
	f.svc.Ingest(context.Background(), "demo", "psr", sdk.Document{DownloadID: "x", Name: "again.xml", Content: append(b2, ' ')})
	if n := len(f.events(t, "transmission.rejected")); n != 2 {
		t.Fatalf("%d rejected events after a repeat", n)
	}
}

// A HAC naming the order before acquit recorded its OrderID (fetched
// while the upload finished) is unmatched then, matched and applied once
// the OrderID is recorded.
func TestHACBeforeOrderIDIsRelinked(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	res, _ := f.svc.Submit(ctx, "demo", "", "testdata/pain001_3tx.xml")
	hac, _ := os.ReadFile("testdata/hac_final_neg.xml")
	f.bank.during = func() {
		r, err := f.svc.Ingest(ctx, "demo", "hac", sdk.Document{DownloadID: "h", Name: "hac.xml", Content: hac})
		if err != nil || r.Unmatched != 1 {
			t.Errorf("hac during upload: %+v %v", r, err)
		}
	}
	sent, err := f.svc.Send(ctx, res.Transmission.ID, "w", nil)
	if err != nil {
		t.Fatal(err)
	}
	if sent.State != StateRejected || sent.OrderID != "A001" {
		t.Fatalf("after upload: %s order %s", sent.State, sent.OrderID)
	}
	d, _ := f.svc.Describe(ctx, sent.ID)
	if len(d.Acks) != 1 || d.Acks[0].Status != "ORDER_HAC_FINAL_NEG" {
		t.Fatalf("acks %+v", d.Acks)
	}
	if len(f.events(t, "transmission.rejected")) != 1 || len(f.events(t, "ack.unmatched")) != 1 {
		t.Fatal("events")
	}
}

// waitForWaiter returns once a caller waits for the upload in progress, or
// fails the test if answer delivers first (the caller gave up at once).
func waitForWaiter(t *testing.T, f *fixture, answered <-chan string, unblock chan struct{}) {
	t.Helper()
	for testutil.ToFloat64(f.svc.m.waiters) < 1 {
		select {
		case a := <-answered:
			close(unblock)
			t.Fatalf("answered while the other upload was still in progress: %s", a)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// A wait=true upload call made while the send loop of the same process is
// uploading that transmission waits for that upload and reports it (it used
// to answer 202 with "upload in progress elsewhere"). Checked failing before
// the fix.
func TestWaitingCallWaitsForTheSendLoop(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	started, unblock := make(chan struct{}), make(chan struct{})
	var once sync.Once
	f.bank.during = func() { once.Do(func() { close(started) }); <-unblock }
	if _, err := f.svc.Submit(ctx, "demo", "sct", "testdata/pain001_3tx.xml"); err != nil {
		t.Fatal(err)
	}
	loop := make(chan int, 1)
	go func() { n, _ := f.svc.SendPending(ctx, "inst"); loop <- n }()
	<-started

	srv := httptest.NewServer(f.svc.AdminHandler("inst", 1<<20))
	defer srv.Close()
	answered := make(chan string, 1)
	var code int
	var out struct {
		Transmission Transmission `json:"transmission"`
		Error        string       `json:"error"`
	}
	go func() {
		resp, err := http.Post(srv.URL+"/v1/transmissions", "application/json",
			strings.NewReader(`{"bank":"demo","function":"sct","path":"testdata/pain001_3tx.xml","wait":true}`))
		if err != nil {
			answered <- err.Error()
			return
		}
		defer resp.Body.Close()
		code = resp.StatusCode
		b, _ := io.ReadAll(resp.Body)
		_ = json.Unmarshal(b, &out)
		answered <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	waitForWaiter(t, f, answered, unblock)
	close(unblock)
	a := <-answered
	if code != http.StatusOK || out.Error != "" || out.Transmission.State != StateSubmitted || out.Transmission.OrderID != "A001" {
		t.Fatalf("waiting call answered %s", a)
	}
	if n := <-loop; n != 1 {
		t.Fatalf("send loop sent %d", n)
	}
	if n := f.bank.uploads[out.Transmission.ID]; n != 1 {
		t.Fatalf("bank saw %d uploads", n)
	}
}

// SendWait, while another process holds the upload lease, waits for that
// upload to end and returns the submitted transmission; when that upload
// fails, it reports the failure instead of uploading again.
func TestSendWaitForLeaseHolder(t *testing.T) {
	for _, fails := range []bool{false, true} {
		t.Run(fmt.Sprint("fails=", fails), func(t *testing.T) {
			f := newFixture(t)
			ctx := context.Background()
			started, unblock := make(chan struct{}), make(chan struct{})
			var once sync.Once
			f.bank.during = func() { once.Do(func() { close(started) }); <-unblock }
			res, err := f.svc.Submit(ctx, "demo", "sct", "testdata/pain001_3tx.xml")
			if err != nil {
				t.Fatal(err)
			}
			id := res.Transmission.ID
			tr := f.svc.d.Transport
			if fails {
				tr = func(string) (sdk.BankTransport, error) { return failingAfter{f.bank}, nil }
			}
			other, err := New(Deps{Store: f.st, Transport: tr, Banks: f.svc.d.Banks, SpoolDir: t.TempDir(), Logger: zerolog.Nop(), Now: f.svc.d.Now})
			if err != nil {
				t.Fatal(err)
			}
			go other.Send(ctx, id, "inst-b", nil)
			<-started

			answered := make(chan string, 1)
			var got *Transmission
			var gotErr error
			go func() {
				got, gotErr = f.svc.SendWait(ctx, id, "inst-a", nil)
				answered <- fmt.Sprintf("%+v %v", got, gotErr)
			}()
			waitForWaiter(t, f, answered, unblock)
			close(unblock)
			a := <-answered
			if fails {
				if gotErr == nil || !strings.Contains(gotErr.Error(), "connection reset") {
					t.Fatalf("SendWait after the other upload failed: %s", a)
				}
			} else if gotErr != nil || got.State != StateSubmitted || got.OrderID != "A001" {
				t.Fatalf("SendWait: %s", a)
			}
			if n := f.bank.uploads[id]; n != 1 {
				t.Fatalf("bank saw %d uploads", n)
			}
		})
	}
}

// failingAfter uploads through the recording bank, then fails as a lost
// connection would.
type failingAfter struct{ *recordingBank }

func (b failingAfter) Upload(ctx context.Context, req sdk.UploadRequest, progress func(int64, int64)) (*sdk.UploadResult, error) {
	if _, err := b.recordingBank.Upload(ctx, req, progress); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("connection reset")
}
