package ebics_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/acquit/acquit/internal/painfile"
	"github.com/acquit/acquit/plugins/ebics"
	"github.com/acquit/acquit/plugins/ebics/protocol"
	"github.com/acquit/acquit/plugins/ebics/sim"
	"github.com/acquit/acquit/sdk"
	"github.com/acquit/acquit/sdk/plugintest"
)

// The plugin served through the real go-plugin gRPC path passes the sdk
// conformance kit, against the simulator.
func TestConformance(t *testing.T) {
	s, url := startSim(t, sim.Config{})
	dir := t.TempDir()
	ah, eh := s.BankKeyHashes(protocol.H004)
	settingsAt := func(url string) []byte {
		b, _ := json.Marshal(ebics.Settings{WorkDir: dir, Banks: map[string]ebics.BankSettings{"sim": {URL: url, HostID: "SIMBANK",
			PartnerID: "P1", UserID: "U1", Profile: "de", KeysPassphrase: "conformance passphrase",
			BankAuthHash: protocol.FormatHash(ah), BankEncHash: protocol.FormatHash(eh)}}})
		return b
	}
	settings := settingsAt(url)
	host := plugintest.NewMemHost()
	// Onboard once through the wire; the shared host keeps keys and bank keys.
	c := plugintest.ServeTransport(t, ebics.New().WithLogger(zerolog.Nop()))
	ctx := context.Background()
	if err := c.Configure(ctx, settings, host); err != nil {
		t.Fatal(err)
	}
	for _, a := range []sdk.KeyAction{sdk.KeyInit, sdk.KeySend, sdk.KeyFetchBankKeys} {
		r, err := c.Keys(ctx, sdk.KeyRequest{Bank: "sim", Action: a})
		if err != nil {
			t.Fatalf("%s: %v", a, err)
		}
		if a == "fetch-bank-keys" && r.Status != "ready" {
			t.Fatalf("fetch-bank-keys: %+v", r)
		}
	}
	file := filepath.Join(dir, "conf.xml")
	f, _ := os.Create(file)
	painfile.Generate(f, painfile.GenOptions{MsgID: "CONF-1", N: 30, Seed: 5, Debtor: "ACME", Date: time.Now()})
	f.Close()
	s.AddDocument("P1", "PSR", "pain.002.001.03", []byte(`<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.03"/>`))
	// DownloadTooLarge: a HAC of 8 KiB, asked for with a limit of 1 KiB.
	big := []byte(`<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.03"><!--` + strings.Repeat("x", 8<<10) + `--></Document>`)
	bigID := s.AddDocument("P1", "HAC", "pain.002.001.03", big)
	plugintest.RunTransport(t, func() sdk.BankTransport { return ebics.New().WithLogger(zerolog.Nop()) }, plugintest.TransportOptions{
		Name: "ebics", Settings: settings, Host: host, Bank: "sim", HangingSettings: settingsAt,
		Download: &sdk.DownloadRequest{Bank: "sim", Function: "psr"},
		TooLarge: &sdk.DownloadRequest{Bank: "sim", Function: "hac", MaxSize: 1 << 10},
		Upload:   &sdk.UploadRequest{Bank: "sim", TransmissionID: "conf-1", Function: "sct", Path: file},
		Rejected: &sdk.UploadRequest{Bank: "sim", TransmissionID: "conf-2", Function: "sct", Path: file, SHA256: "00ff"},
	})
	if n := len(s.Orders()); n != 1 {
		t.Fatalf("bank has %d orders, want 1", n)
	}
	// The too-large document was receipted: the bank does not offer it again.
	for _, d := range s.Docs() {
		if d.ID == bigID && !d.Delivered {
			t.Fatalf("the document over the limit (%s) was not receipted", bigID)
		}
	}
}
