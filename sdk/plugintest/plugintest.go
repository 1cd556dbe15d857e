// Package plugintest is the conformance kit for acquit bank plugins. A
// plugin's own tests call RunGateway or RunTransport: the implementation is
// served through the real go-plugin gRPC path (in process, over a loopback
// socket) and checked for what the daemon relies on: a sane Describe,
// refusal of bad settings, Health, *sdk.RejectError and context
// cancellation surviving the wire.
package plugintest

import (
	"context"
	"encoding/json"
	"errors"
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
}

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
	t.Run("ContextCancellation", func(t *testing.T) {
		g := configured(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := g.VerifyNotification(cctx, opts.Forged[0])
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled context: got %v, want context.Canceled", err)
		}
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
			var last int64
			r1, err := tr.Upload(ctx, *opts.Upload, func(sent, total int64) { last = sent })
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
			if last < 0 {
				t.Fatalf("negative progress %d", last)
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
	t.Run("ContextCancellation", func(t *testing.T) {
		tr := configured(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := tr.Download(cctx, sdk.DownloadRequest{Bank: "conformance", Function: "psr"})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled context: got %v, want context.Canceled", err)
		}
	})
}
