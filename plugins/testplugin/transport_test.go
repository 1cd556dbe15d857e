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

func TestTransportConformance(t *testing.T) {
	path, sum := writeFile(t, []byte("<Document>payments</Document>"))
	bank := t.TempDir()
	plugintest.RunTransport(t, func() sdk.BankTransport { return testplugin.NewTransport(testplugin.Misbehaviour{}) }, plugintest.TransportOptions{
		Name:        testplugin.TransportName,
		Settings:    []byte(`{"bank_dir":` + strconv.Quote(bank) + `}`),
		BadSettings: append(plugintest.DefaultBadSettings, []byte(`{"bank_dir":"relative"}`), []byte(`{"bank_dir":"/tmp","x":1}`)),
		Upload:      &sdk.UploadRequest{TransmissionID: "T1", Path: path, SHA256: sum, Size: 29},
		Rejected:    &sdk.UploadRequest{TransmissionID: "T2", Path: path, SHA256: sum, Size: 30},
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
