package testplugin_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/acquit/acquit/plugins/testplugin"
	"github.com/acquit/acquit/sdk"
	"github.com/acquit/acquit/sdk/plugintest"
)

func writeFile(t *testing.T, content []byte) (string, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "pain.001.xml")
	if err := os.WriteFile(p, content, 0o600); err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(content)
	return p, hex.EncodeToString(s[:])
}

// brokenTransport is the transport broken on purpose, one way per
// variant, for plugintest.CheckBroken.
type brokenTransport struct {
	sdk.BankTransport
	variant, bank string
}

func (b brokenTransport) Download(ctx context.Context, req sdk.DownloadRequest) (*sdk.DownloadResult, error) {
	switch b.variant {
	case "download-outside-spool":
		// Writes its files beside the directory it was given.
		req.SpoolDir = filepath.Dir(req.SpoolDir)
	case "download-ignores-ctx":
		ctx = context.WithoutCancel(ctx)
	case "download-accepts-any-bank":
		req.Bank = b.bank
	}
	return b.BankTransport.Download(ctx, req)
}

func (b brokenTransport) Confirm(ctx context.Context, bank, id string, ok bool) error {
	if b.variant == "confirm-accepts-any-bank" {
		bank = b.bank
	}
	return b.BankTransport.Confirm(ctx, bank, id, ok)
}

func (b brokenTransport) Keys(ctx context.Context, req sdk.KeyRequest) (*sdk.KeyResult, error) {
	switch b.variant {
	case "keys-accepts-any-bank":
		req.Bank = b.bank
	case "keys-unknown-op-plain-error":
		if req.Action != sdk.KeyStatus && req.Action != sdk.KeyLetter {
			return nil, errors.New("unknown key operation")
		}
	}
	return b.BankTransport.Keys(ctx, req)
}

// TestTransportConformance runs every check of the kit, none skipped; each
// one a configuration enables (the bank checks through "bank",
// ContextCancellation through provider_url) is shown to fail on a variant
// broken on purpose.
func TestTransportConformance(t *testing.T) {
	path, sum := writeFile(t, []byte("<Document>payments</Document>"))
	bank := t.TempDir()
	const name = "testbank"
	settings := func(extra string) []byte {
		return []byte(`{"bank_dir":` + strconv.Quote(bank) + `,"bank":"` + name + `"` + extra + `}`)
	}
	factory := func() sdk.BankTransport { return testplugin.NewTransport(testplugin.Misbehaviour{}) }
	if err := os.MkdirAll(filepath.Join(bank, "inbox"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bank, "inbox", "psr-1.xml"), []byte("<Document>report</Document>"), 0o600); err != nil {
		t.Fatal(err)
	}
	if v := plugintest.BrokenVariant(); v != "" {
		factory = func() sdk.BankTransport {
			return brokenTransport{BankTransport: testplugin.NewTransport(testplugin.Misbehaviour{}), variant: v, bank: name}
		}
	}
	plugintest.RunTransport(t, factory, plugintest.TransportOptions{
		Name:     testplugin.TransportName,
		Settings: settings(""),
		BadSettings: append(plugintest.DefaultBadSettings, []byte(`{"bank_dir":"relative"}`), []byte(`{"bank_dir":"/tmp","x":1}`),
			settings(`,"provider_url":"ftp://bank.example"`)),
		Upload:          &sdk.UploadRequest{Bank: name, TransmissionID: "T1", Path: path, SHA256: sum, Size: 29},
		Rejected:        &sdk.UploadRequest{Bank: name, TransmissionID: "T2", Path: path, SHA256: sum, Size: 30},
		Bank:            name,
		HangingSettings: func(url string) []byte { return settings(`,"provider_url":` + strconv.Quote(url)) },
		Download:        &sdk.DownloadRequest{Bank: name, Function: "psr"},
	})
	if plugintest.BrokenVariant() != "" {
		return
	}
	plugintest.CheckBroken(t, map[string]string{
		"download-ignores-ctx":        "ContextCancellation",
		"download-accepts-any-bank":   "DownloadUnknownBank",
		"confirm-accepts-any-bank":    "ConfirmUnknownBank",
		"keys-accepts-any-bank":       "Keys",
		"keys-unknown-op-plain-error": "Keys",
		"download-outside-spool":      "DownloadBySpool",
	})
}

func TestTransportHostile(t *testing.T) {
	ctx := context.Background()
	bank := t.TempDir()
	tr := plugintest.ServeTransport(t, testplugin.NewTransport(testplugin.Misbehaviour{}))
	if err := tr.Configure(ctx, []byte(`{"bank_dir":`+strconv.Quote(bank)+`}`), plugintest.NewMemHost()); err != nil {
		t.Fatal(err)
	}
	path, sum := writeFile(t, []byte("x"))
	tests := []struct {
		name string
		call func() error
		code string
	}{
		{"relative path", func() error {
			_, err := tr.Upload(ctx, sdk.UploadRequest{TransmissionID: "a", Path: "pain.xml", SHA256: sum, Size: 1}, nil)
			return err
		}, "bad_request"},
		{"wrong digest", func() error {
			_, err := tr.Upload(ctx, sdk.UploadRequest{TransmissionID: "b", Path: path, SHA256: sum[:63] + "0", Size: 1}, nil)
			return err
		}, "checksum_mismatch"},
		{"traversal in download id", func() error { return tr.Confirm(ctx, "bank", "../../etc/passwd", true) }, "bad_download_id"},
		{"dot download id", func() error { return tr.Confirm(ctx, "bank", "..", true) }, "bad_download_id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var rej *sdk.RejectError
			if err := tc.call(); !errors.As(err, &rej) || rej.Code != tc.code {
				t.Fatalf("got %v, want reject %q", err, tc.code)
			}
		})
	}
}
