package plugintest_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/acquit/acquit/sdk"
	"github.com/acquit/acquit/sdk/plugintest"
)

// fake is a gateway and a transport with one bank ("b1") whose provider is
// the URL of its settings. Each flag breaks one promise the kit checks.
type fake struct {
	faults
	mu  sync.Mutex
	url string
	n   int
}

// faults are the promises a fake breaks.
type faults struct {
	ignoreCtx          bool // provider requests made without the call's context
	newOrderEachUpload bool
	progressBackwards  bool
	acceptUnknownBank  string // "download", "confirm" or "keys": that call accepts any bank
	unknownOpNotTyped  bool   // Keys answers a plain error for an unknown operation
	spool              string // "outside": the document's file is not in the spool dir; "digest": its SHA-256 is not the one announced
	tooLarge           string // a document over MaxSize: "fail": the download fails; "size": reported with Size = MaxSize; "body": reported with its content; "ignore": handed over whole, unmarked
}

type fakeSettings struct {
	URL string `json:"url"`
}

func (f *fake) Describe(context.Context) (sdk.Info, error) {
	return sdk.Info{Name: "fake", Version: "1", ConfigSchema: `{"type":"object"}`}, nil
}

func (f *fake) Configure(_ context.Context, raw []byte, _ sdk.Host) error {
	var s fakeSettings
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil || s.URL == "" || dec.More() {
		return fmt.Errorf("fake settings: bad (%v)", err)
	}
	f.mu.Lock()
	f.url = s.URL
	f.mu.Unlock()
	return nil
}

func (f *fake) Health(context.Context) error { return nil }

// ask calls the provider.
func (f *fake) ask(ctx context.Context) error {
	if f.ignoreCtx {
		ctx = context.Background()
	}
	f.mu.Lock()
	url := f.url
	f.mu.Unlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

func (f *fake) bank(b string, call string) error {
	if b == "b1" || f.acceptUnknownBank == call {
		return nil
	}
	return fmt.Errorf("unknown bank %q", b)
}

type fakeGateway struct{ *fake }

func (g fakeGateway) Describe(ctx context.Context) (sdk.Info, error) {
	i, err := g.fake.Describe(ctx)
	i.Kind = sdk.KindPaymentGateway
	return i, err
}

func (fakeGateway) InitPayment(context.Context, sdk.PaymentRequest) (*sdk.PaymentInit, error) {
	return nil, errors.New("not used")
}

func (fakeGateway) VerifyNotification(context.Context, sdk.Notification) (*sdk.PaymentResult, error) {
	return nil, sdk.Reject("bad_seal", "fake trusts nothing")
}

func (g fakeGateway) QueryTransaction(ctx context.Context, q sdk.TransactionQuery) (*sdk.PaymentResult, error) {
	if err := g.ask(ctx); err != nil {
		return nil, err
	}
	return &sdk.PaymentResult{Reference: q.Reference, Outcome: sdk.OutcomeNotFound}, nil
}

type fakeTransport struct{ *fake }

func (tr fakeTransport) Describe(ctx context.Context) (sdk.Info, error) {
	i, err := tr.fake.Describe(ctx)
	i.Kind = sdk.KindBankTransport
	return i, err
}

func (tr fakeTransport) Upload(_ context.Context, req sdk.UploadRequest, progress func(sent, total int64)) (*sdk.UploadResult, error) {
	if err := tr.bank(req.Bank, "upload"); err != nil {
		return nil, err
	}
	if req.SHA256 == "bad" {
		return nil, sdk.Reject("bad_digest", "digest does not match")
	}
	progress(0, 100)
	if tr.progressBackwards {
		progress(80, 100)
		progress(40, 100)
	}
	progress(100, 100)
	tr.mu.Lock()
	defer tr.mu.Unlock()
	id := "ORDER-" + req.TransmissionID
	if tr.newOrderEachUpload {
		tr.n++
		id = fmt.Sprintf("ORDER-%d", tr.n)
	}
	return &sdk.UploadResult{OrderID: id}, nil
}

func (tr fakeTransport) Download(ctx context.Context, req sdk.DownloadRequest) (*sdk.DownloadResult, error) {
	if err := tr.bank(req.Bank, "download"); err != nil {
		return nil, err
	}
	if req.Bank != "b1" {
		return &sdk.DownloadResult{NoData: true}, nil // the broken promise
	}
	if req.Function == "doc" { // the document of DownloadBySpool
		return tr.spooled(req)
	}
	if req.Function == "big" { // the document of DownloadTooLarge
		return tr.big(req)
	}
	if err := tr.ask(ctx); err != nil {
		return nil, err
	}
	return &sdk.DownloadResult{NoData: true}, nil
}

// spooled writes one document in req.SpoolDir, as the sdk asks, unless a
// fault says otherwise.
func (tr fakeTransport) spooled(req sdk.DownloadRequest) (*sdk.DownloadResult, error) {
	body := []byte("<Document>spooled</Document>")
	dir := req.SpoolDir
	if tr.faults.spool == "outside" {
		dir = filepath.Dir(dir)
	}
	f, err := os.CreateTemp(dir, "doc-*.xml")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Write(body); err != nil {
		return nil, err
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	if tr.faults.spool == "digest" {
		sum[0] ^= 1
	}
	return &sdk.DownloadResult{Documents: []sdk.Document{{DownloadID: "D1", Function: req.Function, Format: "xml", Name: "doc.xml",
		Path: f.Name(), Size: int64(len(body)), SHA256: hex.EncodeToString(sum[:])}}}, nil
}

// big answers a document of 4096 bytes, reported too large when it is
// over req.MaxSize and the caller understands it, unless a fault says
// otherwise.
func (tr fakeTransport) big(req sdk.DownloadRequest) (*sdk.DownloadResult, error) {
	body := make([]byte, 4096)
	if req.MaxSize <= 0 || int64(len(body)) <= req.MaxSize || tr.tooLarge == "ignore" {
		return &sdk.DownloadResult{Documents: []sdk.Document{{DownloadID: "D2", Function: req.Function, Name: "big", Content: body}}}, nil
	}
	if !req.ReportTooLarge || tr.tooLarge == "fail" {
		return nil, fmt.Errorf("document over %d bytes", req.MaxSize)
	}
	d := sdk.Document{DownloadID: "D2", Function: req.Function, Name: "big", Size: req.MaxSize + 1, TooLarge: true}
	switch tr.tooLarge {
	case "size":
		d.Size = req.MaxSize
	case "body":
		d.Content = body
	}
	return &sdk.DownloadResult{Documents: []sdk.Document{d}}, nil
}

func (tr fakeTransport) Confirm(_ context.Context, bank, _ string, _ bool) error {
	return tr.bank(bank, "confirm")
}

func (tr fakeTransport) Keys(_ context.Context, req sdk.KeyRequest) (*sdk.KeyResult, error) {
	if err := tr.bank(req.Bank, "keys"); err != nil {
		return nil, err
	}
	if req.Action != sdk.KeyStatus {
		if tr.unknownOpNotTyped {
			return nil, fmt.Errorf("unknown operation %q", req.Action)
		}
		return nil, fmt.Errorf("keys %q: %w", req.Action, sdk.ErrUnsupported)
	}
	return &sdk.KeyResult{Status: "ready"}, nil
}

func settingsFor(url string) []byte {
	b, _ := json.Marshal(fakeSettings{URL: url})
	return b
}

func runGateway(t *testing.T, f func() *fake) {
	plugintest.RunGateway(t, func() sdk.PaymentGateway { return fakeGateway{f()} }, plugintest.GatewayOptions{
		Name: "fake", Settings: settingsFor("http://127.0.0.1:1"),
		Forged:          []sdk.Notification{{Channel: sdk.ChannelAutomatic, Method: "POST", Body: []byte("x")}},
		HangingSettings: settingsFor,
	})
}

func runTransport(t *testing.T, f func() *fake) {
	plugintest.RunTransport(t, func() sdk.BankTransport { return fakeTransport{f()} }, plugintest.TransportOptions{
		Name: "fake", Settings: settingsFor("http://127.0.0.1:1"), Bank: "b1",
		Upload:          &sdk.UploadRequest{Bank: "b1", TransmissionID: "t1", Function: "sct", Path: "/dev/null"},
		Rejected:        &sdk.UploadRequest{Bank: "b1", TransmissionID: "t2", Function: "sct", Path: "/dev/null", SHA256: "bad"},
		HangingSettings: settingsFor,
		Download:        &sdk.DownloadRequest{Bank: "b1", Function: "doc"},
		TooLarge:        &sdk.DownloadRequest{Bank: "b1", Function: "big", MaxSize: 1000},
	})
}

// The fake keeping every promise passes every check, none skipped.
func TestConformingFakePasses(t *testing.T) {
	t.Run("gateway", func(t *testing.T) { runGateway(t, func() *fake { return &fake{} }) })
	t.Run("transport", func(t *testing.T) { runTransport(t, func() *fake { return &fake{} }) })
}

var broken = map[string]struct {
	gateway bool
	faults  faults
	failing string // the only check that must fail
}{
	"gateway-ignores-ctx":         {gateway: true, faults: faults{ignoreCtx: true}, failing: "ContextCancellation"},
	"transport-ignores-ctx":       {faults: faults{ignoreCtx: true}, failing: "ContextCancellation"},
	"upload-new-order-each-time":  {faults: faults{newOrderEachUpload: true}, failing: "UploadIdempotent"},
	"upload-progress-backwards":   {faults: faults{progressBackwards: true}, failing: "UploadIdempotent"},
	"download-accepts-any-bank":   {faults: faults{acceptUnknownBank: "download"}, failing: "DownloadUnknownBank"},
	"confirm-accepts-any-bank":    {faults: faults{acceptUnknownBank: "confirm"}, failing: "ConfirmUnknownBank"},
	"keys-accepts-any-bank":       {faults: faults{acceptUnknownBank: "keys"}, failing: "Keys"},
	"keys-unknown-op-plain-error": {faults: faults{unknownOpNotTyped: true}, failing: "Keys"},
	"download-outside-spool":      {faults: faults{spool: "outside"}, failing: "DownloadBySpool"},
	"download-wrong-digest":       {faults: faults{spool: "digest"}, failing: "DownloadBySpool"},
	"too-large-fails-download":    {faults: faults{tooLarge: "fail"}, failing: "DownloadTooLarge"},
	"too-large-size-within-limit": {faults: faults{tooLarge: "size"}, failing: "DownloadTooLarge"},
	"too-large-with-body":         {faults: faults{tooLarge: "body"}, failing: "DownloadTooLarge"},
	"too-large-not-reported":      {faults: faults{tooLarge: "ignore"}, failing: "DownloadTooLarge"},
}

// Each check of the kit fails on a plugin that breaks its promise, and
// only that check (plugintest.CheckBroken runs the kit on each broken fake
// in a child process: a failing subtest cannot be observed from inside its
// own test).
func TestBrokenFakesFailTheirCheck(t *testing.T) {
	if name := plugintest.BrokenVariant(); name != "" {
		b := broken[name]
		mk := func() *fake { return &fake{faults: b.faults} }
		if b.gateway {
			runGateway(t, mk)
		} else {
			runTransport(t, mk)
		}
		return
	}
	variants := map[string]string{}
	for name, b := range broken {
		variants[name] = b.failing
	}
	plugintest.CheckBroken(t, variants)
}
