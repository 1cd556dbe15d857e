package ebics_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/acquit/acquit/internal/painfile"
	"github.com/acquit/acquit/internal/procstat"
	"github.com/acquit/acquit/plugins/ebics"
	"github.com/acquit/acquit/plugins/ebics/protocol"
	"github.com/acquit/acquit/plugins/ebics/sim"
	"github.com/acquit/acquit/sdk"
	"github.com/acquit/acquit/sdk/plugintest"
)

// maxPluginRSS is the plugin process's peak RSS allowed for an upload of
// any size (issue 12).
const maxPluginRSS = 64 << 20

// TestPluginUploadPeakRSS uploads a 120 MB pain.001 (500 MB with
// ACQUIT_BIG=1) through the real plugin executable, as the daemon drives
// it, to a bank spooling to disk, and fails if the plugin process's peak
// RSS (VmHWM) exceeds 64 MB. The plugin reads the file once, spools it
// compressed and encrypted, and sends each segment from the spool.
func TestPluginUploadPeakRSS(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the plugin executable with a 120 MB file")
	}
	n := 280_000 // about 120 MB
	if os.Getenv("ACQUIT_BIG") == "1" {
		n = 1_170_000 // about 500 MB
	}
	dir := t.TempDir()
	bin := buildPlugin(t, dir)
	s, url := startSim(t, sim.Config{SpoolDir: t.TempDir(), SchemaDir: "off", Faults: sim.Faults{NeverAck: true}})
	ah, eh := s.BankKeyHashes(protocol.H005)
	bs := ebics.BankSettings{URL: url, HostID: "SIMBANK", PartnerID: "P1", UserID: "U1", Profile: "v3", KeysPassphrase: "rss passphrase",
		BankAuthHash: protocol.FormatHash(ah), BankEncHash: protocol.FormatHash(eh)}
	settings, _ := json.Marshal(ebics.Settings{WorkDir: dir, Banks: map[string]ebics.BankSettings{"sim": bs}})
	ctx := context.Background()
	tr, pc := startPlugin(t, bin)
	if err := tr.Configure(ctx, settings, plugintest.NewMemHost()); err != nil {
		t.Fatal(err)
	}
	for _, a := range []sdk.KeyAction{sdk.KeyInit, sdk.KeySend, sdk.KeyFetchBankKeys} {
		if _, err := tr.Keys(ctx, sdk.KeyRequest{Bank: "sim", Action: a}); err != nil {
			t.Fatalf("%s: %v", a, err)
		}
	}
	if rc := pc.ReattachConfig(); rc != nil {
		t.Logf("after onboarding: plugin peak RSS %.1f MB", float64(vmHWM(t, rc.Pid))/(1<<20))
	}
	file := filepath.Join(dir, "big.xml")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := painfile.Generate(f, painfile.GenOptions{MsgID: "RSS-1", N: n, Seed: 3, Debtor: "ACME", Date: time.Now()}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	fi, _ := os.Stat(file)
	res, err := tr.Upload(ctx, sdk.UploadRequest{Bank: "sim", TransmissionID: "rss-1", Function: "sct", Path: file, Size: fi.Size()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rc := pc.ReattachConfig()
	if rc == nil || rc.Pid <= 0 {
		t.Fatal("no plugin pid")
	}
	hwm := vmHWM(t, rc.Pid)
	if o := s.Orders(); len(o) != 1 || o[0].Size != fi.Size() || o[0].OrderID != res.OrderID {
		t.Fatalf("bank orders: %+v", o)
	}
	t.Logf("%.0f MB file, %d segments: plugin peak RSS %.1f MB", float64(fi.Size())/(1<<20), res.Segments, float64(hwm)/(1<<20))
	if hwm > maxPluginRSS {
		t.Errorf("plugin peak RSS %.1f MB for a %.0f MB file, limit %d MB", float64(hwm)/(1<<20), float64(fi.Size())/(1<<20), maxPluginRSS>>20)
	}
}

// vmHWM returns a process's peak resident set size in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	hwm, err := procstat.PeakRSS(pid)
	if err != nil {
		t.Fatal(err)
	}
	return hwm
}
