// Package plugintest is the conformance kit for acquit bank plugins. A
// plugin's own tests call RunGateway or RunTransport: the implementation is
// served through the real go-plugin gRPC path (in process, over a loopback
// socket) and checked for what the daemon relies on: a sane Describe,
// refusal of bad settings, Health, *sdk.RejectError surviving the wire,
// idempotent uploads, Download/Confirm/Keys refusing what they do not know,
// documents handed over by path as the daemon accepts them (DownloadBySpool),
// a document over the daemon's size limit reported, not failed
// (DownloadTooLarge),
// and a call cancelled while the plugin waits on its provider abandoning
// the provider request. A check needing an option the plugin's test does
// not give is not run (and logged), not skipped. CheckBroken shows that the
// checks a plugin's configuration enables can fail, on variants of the
// plugin broken on purpose. MemHost and FileHost are sdk.Host
// implementations for a plugin's own tests.
package plugintest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	plugin "github.com/hashicorp/go-plugin"

	"github.com/acquit/acquit/sdk"
	"github.com/acquit/acquit/sdk/pluginrpc"
)

// ServeGateway serves impl through go-plugin's gRPC transport in process
// and returns the daemon-side client; both ends are closed when t ends.
func ServeGateway(t testing.TB, impl sdk.PaymentGateway) *pluginrpc.GatewayGRPCClient {
	t.Helper()
	raw := serve(t, pluginrpc.PluginNameGateway, plugin.PluginSet{pluginrpc.PluginNameGateway: &pluginrpc.GatewayPlugin{Impl: impl}})
	c, ok := raw.(*pluginrpc.GatewayGRPCClient)
	if !ok {
		t.Fatalf("dispensed %T, want *pluginrpc.GatewayGRPCClient", raw)
	}
	t.Cleanup(c.Close)
	return c
}

// ServeTransport serves impl through go-plugin's gRPC transport in process
// and returns the daemon-side client; both ends are closed when t ends.
func ServeTransport(t testing.TB, impl sdk.BankTransport) *pluginrpc.TransportGRPCClient {
	t.Helper()
	raw := serve(t, pluginrpc.PluginNameTransport, plugin.PluginSet{pluginrpc.PluginNameTransport: &pluginrpc.TransportPlugin{Impl: impl}})
	c, ok := raw.(*pluginrpc.TransportGRPCClient)
	if !ok {
		t.Fatalf("dispensed %T, want *pluginrpc.TransportGRPCClient", raw)
	}
	t.Cleanup(c.Close)
	return c
}

func serve(t testing.TB, name string, set plugin.PluginSet) any {
	t.Helper()
	client, _ := plugin.TestPluginGRPCConn(t, false, set)
	// Close asks the server to shut down through go-plugin's controller;
	// stopping the server here as well would race with that.
	t.Cleanup(func() { _ = client.Close() })
	raw, err := client.Dispense(name)
	if err != nil {
		t.Fatalf("dispense %s: %v", name, err)
	}
	return raw
}

// DefaultBadSettings are settings blocks every plugin must refuse.
var DefaultBadSettings = [][]byte{
	nil,
	[]byte("not json"),
	[]byte("[]"),
	[]byte(`{"truncated": `),
}

// GatewayOptions parameterises RunGateway.
type GatewayOptions struct {
	// Name, if set, is the name Describe must report.
	Name string
	// Settings is a valid settings block; Configure must accept it.
	Settings []byte
	// BadSettings must each be refused by Configure; nil means
	// DefaultBadSettings.
	BadSettings [][]byte
	// Host is offered in Configure; nil means a fresh MemHost.
	Host sdk.Host
	// Forged are notifications VerifyNotification must reject with a
	// *sdk.RejectError. At least one is required.
	Forged []sdk.Notification
	// Valid, if set, is a notification VerifyNotification must accept.
	Valid *sdk.Notification
	// HangingSettings, if set, returns valid settings whose provider
	// endpoints all point at url: a loopback server that accepts requests
	// and never answers. ContextCancellation then cancels a
	// QueryTransaction (HangingQuery) while the plugin waits there and
	// checks that the plugin abandons its request. Unset, the check is not
	// run (it is not a skip: say in the plugin's tests why it cannot apply).
	HangingSettings func(url string) []byte
	// HangingQuery is the query sent to the hanging provider; zero means
	// {Reference: "CANCEL1"}. A plugin that asks its provider only about
	// payments it knows needs one recorded in Host first.
	HangingQuery sdk.TransactionQuery
}

// TransportOptions parameterises RunTransport.
type TransportOptions struct {
	Name        string
	Settings    []byte
	BadSettings [][]byte
	Host        sdk.Host
	// Upload, if set, must succeed twice with the same OrderID
	// (idempotence on TransmissionID).
	Upload *sdk.UploadRequest
	// Rejected, if set, must fail with a *sdk.RejectError (e.g. an upload
	// whose SHA256 does not match the file).
	Rejected *sdk.UploadRequest
	// Bank is the bank Settings configure. With it, Download, Confirm and
	// Keys must refuse any other bank, and Keys must answer
	// sdk.ErrUnsupported for an operation that does not exist; unset, those
	// checks are not run (for a transport without named banks).
	Bank string
	// HangingSettings, if set, returns valid settings whose bank endpoints
	// point at url (see GatewayOptions.HangingSettings); the cancelled
	// call is a Download of HangingDownload.
	HangingSettings func(url string) []byte
	// HangingDownload is the download sent to the hanging bank; zero means
	// {Bank: Bank, Function: "psr"}.
	HangingDownload sdk.DownloadRequest
	// Download, if set, is a download the bank answers with at least one
	// document. DownloadBySpool sends it with a spool directory and checks
	// that every document comes as the daemon accepts it: a regular file
	// written directly in that directory whose size and SHA-256 are the
	// ones announced (or, for a small document, Content whose SHA-256 is
	// the one announced, when one is); then it confirms each one.
	Download *sdk.DownloadRequest
	// TooLarge, if set, is a download the bank answers with a document
	// larger than TooLarge.MaxSize (which must be over 0). DownloadTooLarge
	// sends it with a spool directory and ReportTooLarge, as the daemon
	// does, and checks that the plugin reports that document
	// (sdk.Document.TooLarge: no Path, no Content, Size over MaxSize, a
	// DownloadID to confirm) instead of failing the download; then it
	// confirms it positively, as the daemon does.
	TooLarge *sdk.DownloadRequest
}

// unknownBank names a bank no settings configure.
const unknownBank = "plugintest-no-such-bank"

func checkInfo(t *testing.T, info sdk.Info, wantName string, wantKind sdk.Kind) {
	t.Helper()
	if info.Name == "" || info.Version == "" {
		t.Errorf("Describe: empty name or version: %+v", info)
	}
	if wantName != "" && info.Name != wantName {
		t.Errorf("Describe: name %q, want %q", info.Name, wantName)
	}
	if info.Kind != wantKind {
		t.Errorf("Describe: kind %q, want %q", info.Kind, wantKind)
	}
	var schema map[string]any
	if err := json.Unmarshal([]byte(info.ConfigSchema), &schema); err != nil {
		t.Errorf("Describe: config schema is not a JSON object: %v", err)
	}
}

func checkBadSettings(t *testing.T, p sdk.Plugin, bad [][]byte, host sdk.Host) {
	t.Helper()
	if bad == nil {
		bad = DefaultBadSettings
	}
	for _, b := range bad {
		if err := p.Configure(context.Background(), b, host); err == nil {
			t.Errorf("Configure(%q) accepted bad settings", b)
		}
	}
}

// RunGateway runs the conformance checks on the gateway built by factory
// (called once per subtest, so each starts unconfigured).
func RunGateway(t *testing.T, factory func() sdk.PaymentGateway, opts GatewayOptions) {
	t.Helper()
	if len(opts.Forged) == 0 {
		t.Fatal("plugintest: GatewayOptions.Forged needs at least one forged notification")
	}
	newHost := func() sdk.Host {
		if opts.Host != nil {
			return opts.Host
		}
		return NewMemHost()
	}
	configured := func(t *testing.T) sdk.PaymentGateway {
		t.Helper()
		c := ServeGateway(t, factory())
		if err := c.Configure(context.Background(), opts.Settings, newHost()); err != nil {
			t.Fatalf("Configure(valid settings): %v", err)
		}
		return c
	}
	ctx := context.Background()

	t.Run("Describe", func(t *testing.T) {
		info, err := ServeGateway(t, factory()).Describe(ctx)
		if err != nil {
			t.Fatalf("Describe: %v", err)
		}
		checkInfo(t, info, opts.Name, sdk.KindPaymentGateway)
	})
	t.Run("ConfigureRefusesBadSettings", func(t *testing.T) {
		checkBadSettings(t, ServeGateway(t, factory()), opts.BadSettings, newHost())
	})
	t.Run("Health", func(t *testing.T) {
		if err := configured(t).Health(ctx); err != nil {
			t.Fatalf("Health after Configure: %v", err)
		}
	})
	t.Run("RejectError", func(t *testing.T) {
		g := configured(t)
		for i, n := range opts.Forged {
			res, err := g.VerifyNotification(ctx, n)
			var rej *sdk.RejectError
			if !errors.As(err, &rej) {
				t.Errorf("forged notification %d: got (%+v, %v), want *sdk.RejectError", i, res, err)
				continue
			}
			if rej.Code == "" {
				t.Errorf("forged notification %d: RejectError without code", i)
			}
		}
	})
	if opts.Valid != nil {
		t.Run("Valid", func(t *testing.T) {
			res, err := configured(t).VerifyNotification(ctx, *opts.Valid)
			if err != nil {
				t.Fatalf("valid notification: %v", err)
			}
			if res.Reference == "" || res.Outcome == "" {
				t.Fatalf("valid notification: incomplete result %+v", res)
			}
		})
	}
	if opts.HangingSettings == nil {
		t.Log("plugintest: ContextCancellation not run: GatewayOptions.HangingSettings not set")
		return
	}
	t.Run("ContextCancellation", func(t *testing.T) {
		q := opts.HangingQuery
		if q == (sdk.TransactionQuery{}) {
			q = sdk.TransactionQuery{Reference: "CANCEL1"}
		}
		checkCancellation(t, func(url string) sdk.Plugin {
			g := ServeGateway(t, factory())
			if err := g.Configure(ctx, opts.HangingSettings(url), newHost()); err != nil {
				t.Fatalf("Configure(hanging settings): %v", err)
			}
			return g
		}, func(ctx context.Context, p sdk.Plugin) error {
			_, err := p.(sdk.PaymentGateway).QueryTransaction(ctx, q)
			return err
		})
	})
}

// RunTransport runs the conformance checks on the transport built by
// factory (called once per subtest).
func RunTransport(t *testing.T, factory func() sdk.BankTransport, opts TransportOptions) {
	t.Helper()
	newHost := func() sdk.Host {
		if opts.Host != nil {
			return opts.Host
		}
		return NewMemHost()
	}
	configured := func(t *testing.T) sdk.BankTransport {
		t.Helper()
		c := ServeTransport(t, factory())
		if err := c.Configure(context.Background(), opts.Settings, newHost()); err != nil {
			t.Fatalf("Configure(valid settings): %v", err)
		}
		return c
	}
	ctx := context.Background()

	t.Run("Describe", func(t *testing.T) {
		info, err := ServeTransport(t, factory()).Describe(ctx)
		if err != nil {
			t.Fatalf("Describe: %v", err)
		}
		checkInfo(t, info, opts.Name, sdk.KindBankTransport)
	})
	t.Run("ConfigureRefusesBadSettings", func(t *testing.T) {
		checkBadSettings(t, ServeTransport(t, factory()), opts.BadSettings, newHost())
	})
	t.Run("Health", func(t *testing.T) {
		if err := configured(t).Health(ctx); err != nil {
			t.Fatalf("Health after Configure: %v", err)
		}
	})
	if opts.Upload != nil {
		t.Run("UploadIdempotent", func(t *testing.T) {
			tr := configured(t)
			var progress []int64 // sent, total pairs, as reported
			r1, err := tr.Upload(ctx, *opts.Upload, func(sent, total int64) { progress = append(progress, sent, total) })
			if err != nil {
				t.Fatalf("Upload: %v", err)
			}
			r2, err := tr.Upload(ctx, *opts.Upload, nil)
			if err != nil {
				t.Fatalf("Upload again: %v", err)
			}
			if r1.OrderID == "" || r1.OrderID != r2.OrderID {
				t.Fatalf("Upload not idempotent: order %q then %q", r1.OrderID, r2.OrderID)
			}
			var last int64
			for i := 0; i < len(progress); i += 2 {
				sent, total := progress[i], progress[i+1]
				if sent < last || sent < 0 || (total > 0 && sent > total) {
					t.Fatalf("progress %d/%d after %d: must grow from 0 to at most total", sent, total, last)
				}
				last = sent
			}
		})
	}
	if opts.Rejected != nil {
		t.Run("RejectError", func(t *testing.T) {
			_, err := configured(t).Upload(ctx, *opts.Rejected, nil)
			var rej *sdk.RejectError
			if !errors.As(err, &rej) || rej.Code == "" {
				t.Fatalf("rejected upload: got %v, want *sdk.RejectError with a code", err)
			}
		})
	}
	if opts.Bank == "" {
		t.Log("plugintest: DownloadUnknownBank, ConfirmUnknownBank and Keys not run: TransportOptions.Bank not set")
	} else {
		runBankChecks(t, configured, opts.Bank)
	}
	if opts.Download == nil {
		t.Log("plugintest: DownloadBySpool not run: TransportOptions.Download not set")
	} else {
		t.Run("DownloadBySpool", func(t *testing.T) { checkDownloadBySpool(t, configured(t), *opts.Download) })
	}
	if opts.TooLarge == nil {
		t.Log("plugintest: DownloadTooLarge not run: TransportOptions.TooLarge not set")
	} else {
		if opts.TooLarge.MaxSize <= 0 {
			t.Fatal("plugintest: TransportOptions.TooLarge needs a MaxSize over 0, under the size of the bank's document")
		}
		t.Run("DownloadTooLarge", func(t *testing.T) { checkDownloadTooLarge(t, configured(t), *opts.TooLarge) })
	}
	if opts.HangingSettings == nil {
		t.Log("plugintest: ContextCancellation not run: TransportOptions.HangingSettings not set")
		return
	}
	t.Run("ContextCancellation", func(t *testing.T) {
		d := opts.HangingDownload
		if d.Bank == "" {
			d = sdk.DownloadRequest{Bank: opts.Bank, Function: "psr"}
		}
		checkCancellation(t, func(url string) sdk.Plugin {
			tr := ServeTransport(t, factory())
			if err := tr.Configure(ctx, opts.HangingSettings(url), newHost()); err != nil {
				t.Fatalf("Configure(hanging settings): %v", err)
			}
			return tr
		}, func(ctx context.Context, p sdk.Plugin) error {
			_, err := p.(sdk.BankTransport).Download(ctx, d)
			return err
		})
	})
}

// runBankChecks checks that Download, Confirm and Keys refuse a bank the
// settings do not name, and that Keys types an unknown operation.
func runBankChecks(t *testing.T, configured func(*testing.T) sdk.BankTransport, bank string) {
	t.Helper()
	ctx := context.Background()
	t.Run("DownloadUnknownBank", func(t *testing.T) {
		res, err := configured(t).Download(ctx, sdk.DownloadRequest{Bank: unknownBank, Function: "psr"})
		if err == nil {
			t.Fatalf("Download from a bank no settings name: got %+v, want an error", res)
		}
	})
	t.Run("ConfirmUnknownBank", func(t *testing.T) {
		// Both receipts: a plugin may fail a positive one for a download
		// id it does not have, for another reason than the bank.
		tr := configured(t)
		for _, ok := range []bool{true, false} {
			if err := tr.Confirm(ctx, unknownBank, "plugintest-no-such-download", ok); err == nil {
				t.Errorf("Confirm(ok=%v) of a download from a bank no settings name: accepted, want an error", ok)
			}
		}
	})
	t.Run("Keys", func(t *testing.T) {
		tr := configured(t)
		if res, err := tr.Keys(ctx, sdk.KeyRequest{Bank: unknownBank, Action: sdk.KeyStatus}); err == nil {
			t.Errorf("Keys status of a bank no settings name: got %+v, want an error", res)
		}
		if res, err := tr.Keys(ctx, sdk.KeyRequest{Bank: bank, Action: "plugintest-no-such-operation"}); !errors.Is(err, sdk.ErrUnsupported) {
			t.Errorf("Keys with an unknown operation: got (%+v, %v), want sdk.ErrUnsupported", res, err)
		}
	})
}

// checkDownloadBySpool downloads req with a fresh spool directory and
// checks every document as the daemon does (pluginrpc.OpenSpooled, then
// the digest), then confirms it.
func checkDownloadBySpool(t *testing.T, tr sdk.BankTransport, req sdk.DownloadRequest) {
	t.Helper()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "spool")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	req.SpoolDir, req.MaxSize = dir, 1<<30
	res, err := tr.Download(ctx, req)
	if err != nil {
		t.Fatalf("Download: %v", err)
	}
	if res.NoData || len(res.Documents) == 0 {
		t.Fatalf("Download: no document (NoData %v), TransportOptions.Download must name one the bank has", res.NoData)
	}
	for _, d := range res.Documents {
		var got string
		if d.Path == "" {
			if len(d.Content) > pluginrpc.MaxMessageSize/2 {
				t.Errorf("document %q: %d bytes as Content with a spool directory offered; send large documents by Path", d.Name, len(d.Content))
			}
			sum := sha256.Sum256(d.Content)
			got = hex.EncodeToString(sum[:])
			if d.SHA256 != "" && !strings.EqualFold(d.SHA256, got) {
				t.Errorf("document %q: Content has SHA-256 %s, announced %s", d.Name, got, d.SHA256)
			}
		} else {
			f, err := pluginrpc.OpenSpooled(dir, d, req.MaxSize)
			if err != nil {
				t.Errorf("document %q: %v", d.Name, err)
				continue
			}
			h := sha256.New()
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			if got = hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(d.SHA256, got) {
				t.Errorf("document %q: file has SHA-256 %s, announced %s", d.Name, got, d.SHA256)
			}
		}
		if err := tr.Confirm(ctx, req.Bank, d.DownloadID, true); err != nil {
			t.Errorf("Confirm %q: %v", d.DownloadID, err)
		}
	}
}

// checkDownloadTooLarge downloads req, whose document is over req.MaxSize,
// with a fresh spool directory and ReportTooLarge, and checks that the
// document is reported as the daemon accepts such a report
// (transmissions' refuseTooLarge), then confirms it.
func checkDownloadTooLarge(t *testing.T, tr sdk.BankTransport, req sdk.DownloadRequest) {
	t.Helper()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "spool")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	req.SpoolDir, req.ReportTooLarge = dir, true
	res, err := tr.Download(ctx, req)
	if err != nil {
		t.Fatalf("Download of a document over MaxSize %d with ReportTooLarge: %v; want the document reported (sdk.Document.TooLarge), not a failed download", req.MaxSize, err)
	}
	if res.NoData || len(res.Documents) == 0 {
		t.Fatalf("Download: no document (NoData %v), TransportOptions.TooLarge must name one the bank has", res.NoData)
	}
	reported := 0
	for _, d := range res.Documents {
		switch {
		case !d.TooLarge && (d.Size > req.MaxSize || int64(len(d.Content)) > req.MaxSize):
			t.Errorf("document %q (size %d, %d bytes of content) over MaxSize %d, not marked TooLarge", d.Name, d.Size, len(d.Content), req.MaxSize)
		case !d.TooLarge: // a document within the limit may come along
		case d.Path != "" || len(d.Content) != 0:
			t.Errorf("document %q reported too large with a body (path %q, %d bytes of content): the daemon refuses it", d.Name, d.Path, len(d.Content))
		case d.Size <= req.MaxSize:
			t.Errorf("document %q reported too large with size %d, not over MaxSize %d: the daemon refuses it", d.Name, d.Size, req.MaxSize)
		case d.DownloadID == "":
			t.Errorf("document %q reported too large without a DownloadID: the daemon cannot confirm it", d.Name)
		default:
			reported++
		}
		if err := tr.Confirm(ctx, req.Bank, d.DownloadID, true); err != nil {
			t.Errorf("Confirm %q: %v", d.DownloadID, err)
		}
	}
	if reported == 0 && !t.Failed() {
		t.Errorf("no document reported TooLarge among %d; TransportOptions.TooLarge must name a download whose document is over MaxSize %d", len(res.Documents), req.MaxSize)
	}
}
