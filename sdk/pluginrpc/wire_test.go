package pluginrpc_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/acquit/acquit/sdk"
	"github.com/acquit/acquit/sdk/pluginrpc"
	"github.com/acquit/acquit/sdk/plugintest"
	pluginv1 "github.com/acquit/acquit/sdk/proto/acquit/plugin/v1"
)

// probe is a gateway whose answers are set by the test, and which keeps
// the Host it was configured with.
type probe struct {
	mu       sync.Mutex
	host     sdk.Host
	err      error              // returned by every payment call when set
	result   *sdk.PaymentResult // returned by VerifyNotification
	info     sdk.Info
	blocked  chan struct{} // closed when VerifyNotification sees ctx done
	block    bool
	gotNotif sdk.Notification
}

func (p *probe) Describe(context.Context) (sdk.Info, error) { return p.info, nil }
func (p *probe) Configure(_ context.Context, s []byte, h sdk.Host) error {
	if string(s) == "bad" {
		return errors.New("bad settings")
	}
	p.mu.Lock()
	p.host = h
	p.mu.Unlock()
	return nil
}
func (p *probe) Health(context.Context) error { return p.err }
func (p *probe) InitPayment(context.Context, sdk.PaymentRequest) (*sdk.PaymentInit, error) {
	if p.err != nil {
		return nil, p.err
	}
	return nil, nil // a nil result without error must not reach the daemon as a success
}
func (p *probe) VerifyNotification(ctx context.Context, n sdk.Notification) (*sdk.PaymentResult, error) {
	p.mu.Lock()
	p.gotNotif = n
	p.mu.Unlock()
	if p.block {
		<-ctx.Done()
		close(p.blocked)
		return nil, ctx.Err()
	}
	if p.err != nil {
		return nil, p.err
	}
	return p.result, nil
}
func (p *probe) QueryTransaction(context.Context, sdk.TransactionQuery) (*sdk.PaymentResult, error) {
	return nil, p.err
}

func goodInfo() sdk.Info {
	return sdk.Info{Name: "probe", Version: "1", Kind: sdk.KindPaymentGateway, ConfigSchema: `{}`}
}

// TestErrorRoundTrip: typed errors returned by a plugin are typed again on
// the daemon side.
func TestErrorRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		err   error
		check func(error) bool
	}{
		{"reject", sdk.Reject("bad_seal", "seal %s", "mismatch"), func(err error) bool {
			var r *sdk.RejectError
			return errors.As(err, &r) && r.Code == "bad_seal" && r.Message == "seal mismatch"
		}},
		{"wrapped reject", fmt.Errorf("verify: %w", sdk.Reject("unknown_key_version", "v9")), func(err error) bool {
			var r *sdk.RejectError
			return errors.As(err, &r) && r.Code == "unknown_key_version"
		}},
		{"conflict", fmt.Errorf("put: %w", sdk.ErrConflict), func(err error) bool { return errors.Is(err, sdk.ErrConflict) }},
		{"unsupported", sdk.ErrUnsupported, func(err error) bool { return errors.Is(err, sdk.ErrUnsupported) }},
		{"deadline", context.DeadlineExceeded, func(err error) bool { return errors.Is(err, context.DeadlineExceeded) }},
		{"plain", errors.New("bank said no"), func(err error) bool {
			var r *pluginrpc.RemoteError
			return errors.As(err, &r) && r.Code == codes.Unknown && strings.Contains(r.Message, "bank said no") && !r.Unavailable()
		}},
		{"huge message clipped", errors.New(strings.Repeat("x", 1<<20)), func(err error) bool {
			var r *pluginrpc.RemoteError
			return errors.As(err, &r) && len(r.Message) < 5000
		}},
		{"huge reject clipped", sdk.Reject(strings.Repeat("c", 1<<20), "m"), func(err error) bool {
			var r *sdk.RejectError
			return errors.As(err, &r) && len(r.Code) < 5000
		}},
	}
	p := &probe{info: goodInfo()}
	g := plugintest.ServeGateway(t, p)
	// QueryTransaction is a unary gRPC call; VerifyNotification and Health
	// travel on Plugin.Calls: the same errors must come out of both.
	calls := map[string]func() error{
		"QueryTransaction (unary)": func() error {
			_, err := g.QueryTransaction(context.Background(), sdk.TransactionQuery{})
			return err
		},
		"VerifyNotification (Calls)": func() error {
			_, err := g.VerifyNotification(context.Background(), sdk.Notification{})
			return err
		},
		"Health (Calls)": func() error { return g.Health(context.Background()) },
	}
	for _, tc := range tests {
		for how, call := range calls {
			t.Run(tc.name+"/"+how, func(t *testing.T) {
				p.err = tc.err
				if err := call(); err == nil || !tc.check(err) {
					t.Fatalf("got %v (%T)", err, err)
				}
			})
		}
	}
}

func TestNilResultIsAnError(t *testing.T) {
	g := plugintest.ServeGateway(t, &probe{info: goodInfo()})
	res, err := g.InitPayment(context.Background(), sdk.PaymentRequest{})
	if err == nil || res != nil {
		t.Fatalf("got (%v, %v), want an error", res, err)
	}
}

// TestHostilePluginAnswers: the daemon side refuses answers a plugin must
// not give.
func TestHostilePluginAnswers(t *testing.T) {
	ctx := context.Background()
	t.Run("unknown outcome", func(t *testing.T) {
		g := plugintest.ServeGateway(t, &probe{info: goodInfo(), result: &sdk.PaymentResult{Reference: "R", Outcome: "paid-trust-me"}})
		if _, err := g.VerifyNotification(ctx, sdk.Notification{}); !errors.Is(err, pluginrpc.ErrBadResult) {
			t.Fatalf("got %v, want ErrBadResult", err)
		}
	})
	for name, op := range map[string]*sdk.Operation{
		"operation kind":   {ID: "1_1", Kind: "chargeback", Status: sdk.OperationDone},
		"operation status": {ID: "1_1", Kind: sdk.OperationRefund, Status: "maybe"},
		"operation id":     {ID: "", Kind: sdk.OperationRefund, Status: sdk.OperationDone},
	} {
		t.Run(name, func(t *testing.T) {
			g := plugintest.ServeGateway(t, &probe{info: goodInfo(), result: &sdk.PaymentResult{Reference: "R", Outcome: sdk.OutcomeAccepted, Operation: op}})
			if _, err := g.VerifyNotification(ctx, sdk.Notification{}); !errors.Is(err, pluginrpc.ErrBadResult) {
				t.Fatalf("got %v, want ErrBadResult", err)
			}
		})
	}
	for _, info := range []sdk.Info{
		{Name: "x", Kind: "rootkit"},
		{Name: "", Kind: sdk.KindPaymentGateway},
	} {
		t.Run("describe "+string(info.Kind), func(t *testing.T) {
			g := plugintest.ServeGateway(t, &probe{info: info})
			if _, err := g.Describe(ctx); !errors.Is(err, pluginrpc.ErrBadInfo) {
				t.Fatalf("got %v, want ErrBadInfo", err)
			}
		})
	}
}

// TestNotificationRoundTrip: every field crosses the wire intact.
func TestNotificationRoundTrip(t *testing.T) {
	op := &sdk.Operation{ID: "3066019730_1", Kind: sdk.OperationRefund, Status: sdk.OperationDone, Amount: 1250, Currency: "EUR"}
	p := &probe{info: goodInfo(), result: &sdk.PaymentResult{Reference: "R1", Outcome: sdk.OutcomeAccepted, AskLater: true,
		Fields: map[string]string{"a": "b"}, Operation: op}}
	g := plugintest.ServeGateway(t, p)
	at := time.Date(2026, 3, 4, 5, 6, 7, 8, time.UTC)
	n := sdk.Notification{Channel: sdk.ChannelManual, Method: "POST", Path: "/n/atos", Query: "x=1",
		Headers: map[string][]string{"X-A": {"1", "2"}}, Body: []byte{0, 1, 2, 0xff}, RemoteAddr: "192.0.2.1:5", ReceivedAt: at}
	res, err := g.VerifyNotification(context.Background(), n)
	if err != nil {
		t.Fatal(err)
	}
	if res.Reference != "R1" || !res.AskLater || res.Fields["a"] != "b" || res.Operation == nil || *res.Operation != *op {
		t.Fatalf("result %+v", res)
	}
	got := p.gotNotif
	if got.Channel != n.Channel || got.Path != n.Path || got.Query != n.Query || string(got.Body) != string(n.Body) ||
		!got.ReceivedAt.Equal(at) || len(got.Headers["X-A"]) != 2 || got.RemoteAddr != n.RemoteAddr {
		t.Fatalf("notification changed on the wire: %+v", got)
	}
}

// TestCancellationPropagates: cancelling the daemon's context while a call
// is in flight cancels the plugin's context.
func TestCancellationPropagates(t *testing.T) {
	p := &probe{info: goodInfo(), block: true, blocked: make(chan struct{})}
	g := plugintest.ServeGateway(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := g.VerifyNotification(ctx, sdk.Notification{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want DeadlineExceeded", err)
	}
	select {
	case <-p.blocked:
	case <-time.After(10 * time.Second):
		t.Fatal("plugin never saw its context end")
	}
}

// TestHostOverBroker: the plugin reaches the daemon's Host through the
// broker, ErrConflict round-trips, and hostile requests are refused.
func TestHostOverBroker(t *testing.T) {
	ctx := context.Background()
	p := &probe{info: goodInfo()}
	g := plugintest.ServeGateway(t, p)
	mem := plugintest.NewMemHost()
	if err := g.Configure(ctx, []byte("bad"), mem); err == nil {
		t.Fatal("bad settings accepted")
	}
	if err := g.Configure(ctx, []byte("{}"), mem); err != nil {
		t.Fatal(err)
	}
	h := p.host
	if v, ver, err := h.StateGet(ctx, "k"); err != nil || v != nil || ver != 0 {
		t.Fatalf("missing key: %q %d %v", v, ver, err)
	}
	ver, err := h.StatePut(ctx, "k", []byte("v1"), 0)
	if err != nil || ver != 1 {
		t.Fatalf("put: %d %v", ver, err)
	}
	if _, err := h.StatePut(ctx, "k", []byte("v2"), 0); !errors.Is(err, sdk.ErrConflict) {
		t.Fatalf("stale put: %v, want ErrConflict", err)
	}
	if v, ver, err := h.StateGet(ctx, "k"); err != nil || string(v) != "v1" || ver != 1 {
		t.Fatalf("get: %q %d %v", v, ver, err)
	}
	for want := int64(1); want <= 3; want++ {
		if n, err := h.NextSequence(ctx, "s"); err != nil || n != want {
			t.Fatalf("sequence: %d %v, want %d", n, err, want)
		}
	}
	hostile := []struct {
		name string
		call func() error
	}{
		{"empty key", func() error { _, _, err := h.StateGet(ctx, ""); return err }},
		{"long key", func() error { _, _, err := h.StateGet(ctx, strings.Repeat("k", sdk.MaxStateKeyLen+1)); return err }},
		{"control char key", func() error { _, err := h.StatePut(ctx, "a\x00b", nil, 0); return err }},
		{"oversized value", func() error { _, err := h.StatePut(ctx, "big", make([]byte, sdk.MaxStateValueLen+1), 0); return err }},
		{"negative version", func() error { _, err := h.StatePut(ctx, "k", nil, -1); return err }},
		{"empty sequence", func() error { _, err := h.NextSequence(ctx, ""); return err }},
	}
	for _, tc := range hostile {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var re *pluginrpc.RemoteError
			if !errors.As(err, &re) || re.Code != codes.InvalidArgument {
				t.Fatalf("got %v, want InvalidArgument", err)
			}
		})
	}
	// proto3 refuses to even marshal a non-UTF-8 key; the server checks it
	// too, for peers that do not use the generated code.
	if _, err := h.StatePut(ctx, "\xff\xfe", nil, 0); err == nil {
		t.Fatal("invalid UTF-8 key accepted")
	}
	srv := &pluginrpc.HostGRPCServer{Impl: mem}
	if _, err := srv.StatePut(ctx, &pluginv1.StatePutRequest{Key: "\xff\xfe"}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("server accepted invalid UTF-8 key: %v", err)
	}
	// Reconfiguring with a new host switches the plugin to it.
	mem2 := plugintest.NewMemHost()
	if err := g.Configure(ctx, []byte("{}"), mem2); err != nil {
		t.Fatal(err)
	}
	if _, ver, _ := p.host.StateGet(ctx, "k"); ver != 0 {
		t.Fatalf("new host sees old state (version %d)", ver)
	}
}

// transport is a file-copying BankTransport for the conformance kit.
type transport struct {
	dir    string
	mu     sync.Mutex
	orders map[string]string
}

func (tr *transport) Describe(context.Context) (sdk.Info, error) {
	return sdk.Info{Name: "copy", Version: "1", Kind: sdk.KindBankTransport, ConfigSchema: `{"type":"object"}`}, nil
}
func (tr *transport) Configure(_ context.Context, s []byte, _ sdk.Host) error {
	if string(s) != `{"ok":true}` {
		return errors.New("bad settings")
	}
	return nil
}
func (tr *transport) Health(context.Context) error { return nil }
func (tr *transport) Upload(ctx context.Context, req sdk.UploadRequest, progress func(int64, int64)) (*sdk.UploadResult, error) {
	b, err := os.ReadFile(req.Path)
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != req.Size {
		return nil, sdk.Reject("size_mismatch", "file has %d bytes, request says %d", len(b), req.Size)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if id, ok := tr.orders[req.TransmissionID]; ok {
		return &sdk.UploadResult{OrderID: id, Resumed: true}, nil
	}
	for sent := int64(0); sent < req.Size; sent += 4 {
		progress(sent, req.Size)
	}
	id := fmt.Sprintf("A%03d", len(tr.orders)+1)
	tr.orders[req.TransmissionID] = id
	return &sdk.UploadResult{OrderID: id, Segments: 1, ReturnCode: "000000"}, os.WriteFile(filepath.Join(tr.dir, id), b, 0o600)
}

// knownBank accepts the transport's one bank ("copy", or "" for it).
func knownBank(b string) error {
	if b != "" && b != "copy" {
		return fmt.Errorf("unknown bank %q", b)
	}
	return nil
}

func (tr *transport) Download(ctx context.Context, req sdk.DownloadRequest) (*sdk.DownloadResult, error) {
	if err := knownBank(req.Bank); err != nil {
		return nil, err
	}
	return &sdk.DownloadResult{NoData: true}, ctx.Err()
}
func (tr *transport) Confirm(_ context.Context, bank, _ string, _ bool) error { return knownBank(bank) }
func (tr *transport) Keys(_ context.Context, req sdk.KeyRequest) (*sdk.KeyResult, error) {
	if err := knownBank(req.Bank); err != nil {
		return nil, err
	}
	if req.Action != sdk.KeyLetter {
		return nil, fmt.Errorf("keys %q: %w", req.Action, sdk.ErrUnsupported)
	}
	return &sdk.KeyResult{Status: "ready", Files: map[string][]byte{"letter.txt": []byte("hello")}}, nil
}

func TestTransportConformance(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pain.001.xml")
	if err := os.WriteFile(file, []byte("<Document>0123456789</Document>"), 0o600); err != nil {
		t.Fatal(err)
	}
	plugintest.RunTransport(t, func() sdk.BankTransport { return &transport{dir: t.TempDir(), orders: map[string]string{}} }, plugintest.TransportOptions{
		Name:     "copy",
		Settings: []byte(`{"ok":true}`),
		Bank:     "copy",
		Upload:   &sdk.UploadRequest{TransmissionID: "T1", Path: file, Size: 31},
		Rejected: &sdk.UploadRequest{TransmissionID: "T2", Path: file, Size: 99},
	})
}

func TestUploadProgressAndKeys(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, make([]byte, 40), 0o600); err != nil {
		t.Fatal(err)
	}
	tr := plugintest.ServeTransport(t, &transport{dir: t.TempDir(), orders: map[string]string{}})
	var events []int64
	res, err := tr.Upload(context.Background(), sdk.UploadRequest{TransmissionID: "T", Path: file, Size: 40}, func(sent, total int64) {
		if total != 40 {
			t.Errorf("total %d", total)
		}
		events = append(events, sent)
	})
	if err != nil || res.OrderID != "A001" || res.ReturnCode != "000000" {
		t.Fatalf("upload: %+v %v", res, err)
	}
	if len(events) != 10 || events[9] != 36 {
		t.Fatalf("progress events %v", events)
	}
	k, err := tr.Keys(context.Background(), sdk.KeyRequest{Action: "letter"})
	if err != nil || string(k.Files["letter.txt"]) != "hello" {
		t.Fatalf("keys: %+v %v", k, err)
	}
	if _, err := tr.RunJob(context.Background(), "x", nil); !errors.Is(err, sdk.ErrUnsupported) {
		t.Fatalf("RunJob on a plugin without jobs: %v, want ErrUnsupported", err)
	}
}
