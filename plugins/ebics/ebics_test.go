package ebics_test

import (
	"bytes"
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
	"github.com/acquit/acquit/plugins/ebics/keys"
	"github.com/acquit/acquit/plugins/ebics/protocol"
	"github.com/acquit/acquit/plugins/ebics/sim"
	"github.com/acquit/acquit/sdk"
	"github.com/acquit/acquit/sdk/plugintest"
)

func TestPluginLifecycle(t *testing.T) {
	bankKeys, err := keys.Generate("BANK", "SIMBANK", keys.Options{SelfSigned: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, prof := range []string{"de", "v3"} {
		t.Run(prof, func(t *testing.T) {
			s, url := startSim(t, sim.Config{ManualActivation: true, BankKeys: bankKeys})
			dir := t.TempDir()
			pass := filepath.Join(dir, "pass")
			os.WriteFile(pass, []byte("correct horse battery\n"), 0o600)
			settings := ebics.Settings{WorkDir: dir, Banks: map[string]ebics.BankSettings{"sim": {URL: url, HostID: "SIMBANK", PartnerID: "P1", UserID: "U1",
				Profile: prof, KeysPassphraseFile: pass, Language: "fr"}}}
			settings.Banks["sim"] = withSeg(settings.Banks["sim"])
			host := plugintest.NewMemHost()
			p := ebics.New().WithLogger(zerolog.Nop())
			cfg := func() {
				raw, _ := json.Marshal(settings)
				if err := p.Configure(context.Background(), raw, host); err != nil {
					t.Fatal(err)
				}
			}
			cfg()
			ctx := context.Background()
			keysAction := func(action sdk.KeyAction, params map[string]string) *sdk.KeyResult {
				t.Helper()
				r, err := p.Keys(ctx, sdk.KeyRequest{Bank: "sim", Action: action, Params: params})
				if err != nil {
					t.Fatalf("%s: %v", action, err)
				}
				return r
			}
			if r := keysAction("status", nil); r.Status != "no_keys" || r.Meta["bank_hev"] != "H004=02.50 H005=03.00" {
				t.Fatalf("status %s %q", r.Status, r.Meta["bank_hev"])
			}
			keysAction("init", nil)
			if _, err := p.Keys(ctx, sdk.KeyRequest{Bank: "sim", Action: "init"}); err == nil {
				t.Fatal("second init replaced the keys without force")
			}
			keysAction("send", nil)
			letter := keysAction("letter", nil)
			if !bytes.HasPrefix(letter.Files["letter.pdf"], []byte("%PDF")) || !strings.Contains(letter.Text, "Lettre d'initialisation") {
				t.Fatalf("letter: %s", letter.Text)
			}
			if s.State("P1", "U1") != sim.StateInitialised {
				t.Fatalf("sim state %s", s.State("P1", "U1"))
			}
			s.Activate("P1", "U1")
			r := keysAction("fetch-bank-keys", nil)
			if r.Status != "unverified" || r.Meta["bank_auth_hash"] == "" {
				t.Fatalf("fetch-bank-keys without hashes: %+v", r)
			}
			// The treasurer compares with the bank's letter and configures the hashes.
			ah, eh := s.BankKeyHashes(protocol.Version(map[string]string{"de": "H004", "v3": "H005"}[prof]))
			if r.Meta["bank_auth_hash"] != protocol.FormatHash(ah) {
				t.Fatal("shown hash differs from the bank's letter")
			}
			b := settings.Banks["sim"]
			b.BankAuthHash, b.BankEncHash = protocol.FormatHash(ah), protocol.FormatHash(eh)
			settings.Banks["sim"] = b
			cfg()
			if r := keysAction("fetch-bank-keys", nil); r.Status != "ready" {
				t.Fatalf("%+v", r)
			}
			if r := keysAction("check-profile", nil); r.Status != "profile_ok" {
				t.Fatalf("check-profile %+v", r)
			}
			if r := keysAction("status", nil); r.Status != "ready" {
				t.Fatalf("status %+v", r)
			}
			file := filepath.Join(dir, "f.xml")
			f, _ := os.Create(file)
			painfile.Generate(f, painfile.GenOptions{MsgID: "PLUG-1", N: 100, Seed: 1, Debtor: "ACME", Date: time.Now()})
			f.Close()
			res, err := p.Upload(ctx, sdk.UploadRequest{Bank: "sim", TransmissionID: "tr-1", Function: "sct", Path: file}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.Details["msg_id"] != "PLUG-1" || res.Segments < 5 || len(s.Orders()) != 1 {
				t.Fatalf("%+v", res)
			}
			if _, err := p.Upload(ctx, sdk.UploadRequest{Bank: "sim", TransmissionID: "tr-1", Function: "sct", Path: file, SHA256: "00"}, nil); err == nil {
				t.Fatal("hash mismatch accepted")
			}
			s.WaitAcks()
			dr, err := p.Download(ctx, sdk.DownloadRequest{Bank: "sim", Function: "hac"})
			if err != nil || dr.NoData || len(dr.Documents) != 1 {
				t.Fatalf("%+v %v", dr, err)
			}
			if err := p.Confirm(ctx, "sim", dr.Documents[0].DownloadID, true); err != nil {
				t.Fatal(err)
			}
			dr, err = p.Download(ctx, sdk.DownloadRequest{Bank: "sim", Function: "hac"})
			if err != nil || !dr.NoData {
				t.Fatalf("after confirm: %+v %v", dr, err)
			}
		})
	}
}

func withSeg(b ebics.BankSettings) ebics.BankSettings {
	b.Overrides.SegmentSize = 1000
	return b
}

func TestBadSettings(t *testing.T) {
	p := ebics.New()
	for _, s := range []string{`{}`, `{"banks":{"x":{"url":"u","host_id":"h","partner_id":"p","user_id":"u","profile":"zz","keys_passphrase":"12345678"}}}`,
		`{"banks":{"x":{"url":"u","host_id":"h","partner_id":"p","user_id":"u","profile":"de"}}}`, `{"banks":{}, "bogus":1}`,
		`{"banks":{"x":{"url":"http://bank.example/ebics","host_id":"h","partner_id":"p","user_id":"u","profile":"de","keys_passphrase":"12345678"}}}`,
		`{"banks":{"x":{"url":"ftp://bank.example/","host_id":"h","partner_id":"p","user_id":"u","profile":"de","keys_passphrase":"12345678"}}}`,
		`{"banks":{"x":{"url":"https://bank.example/","host_id":"h","partner_id":"p","user_id":"u","profile":"v3","overrides":{"cert_mode":"none"},"keys_passphrase":"12345678"}}}`} {
		if err := p.Configure(context.Background(), []byte(s), plugintest.NewMemHost()); err == nil {
			t.Errorf("accepted %s", s)
		}
	}
	ok := `{"banks":{"x":{"url":"https://bank.example/ebics","host_id":"h","partner_id":"p","user_id":"u","profile":"fr","keys_passphrase":"12345678"}}}`
	if err := p.Configure(context.Background(), []byte(ok), plugintest.NewMemHost()); err != nil {
		t.Errorf("refused %s: %v", ok, err)
	}
}
