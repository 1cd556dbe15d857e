package ebics_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"

	"github.com/acquit/acquit/internal/painfile"
	"github.com/acquit/acquit/plugins/ebics"
	"github.com/acquit/acquit/plugins/ebics/keys"
	"github.com/acquit/acquit/plugins/ebics/protocol"
	"github.com/acquit/acquit/plugins/ebics/sim"
	"github.com/acquit/acquit/sdk"
	"github.com/acquit/acquit/sdk/pluginrpc"
	"github.com/acquit/acquit/sdk/plugintest"
)

// startPlugin runs the real plugin executable the way the daemon does
// (go-plugin handshake, gRPC) and returns the transport and the process.
func startPlugin(t *testing.T, bin string) (*pluginrpc.TransportGRPCClient, *plugin.Client) {
	t.Helper()
	// The plugin's socket goes in the test's own folder, not the system
	// temporary directory (go-plugin tells the plugin only with a RunnerFunc).
	sockDir := t.TempDir()
	cmd := exec.Command(bin)
	cmd.Env = []string{plugin.EnvUnixSocketDir + "=" + sockDir}
	pc := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  pluginrpc.Handshake,
		Plugins:          pluginrpc.PluginMap(),
		Cmd:              cmd,
		UnixSocketConfig: &plugin.UnixSocketConfig{TempDir: sockDir},
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           hclog.NewNullLogger(),
	})
	rpc, err := pc.Client()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := rpc.Dispense(pluginrpc.PluginNameTransport)
	if err != nil {
		t.Fatal(err)
	}
	tr, ok := raw.(*pluginrpc.TransportGRPCClient)
	if !ok {
		t.Fatalf("dispensed %T", raw)
	}
	t.Cleanup(pc.Kill)
	return tr, pc
}

// buildPlugin builds cmd/acquit-plugin-ebics into dir and returns its path.
func buildPlugin(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "acquit-plugin-ebics")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/acquit-plugin-ebics").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// startSim starts the EBICS simulator (host SIMBANK, with fresh bank keys
// unless cfg has some) with subscriber P1/U1, closed when the test ends,
// and returns it and its URL.
func startSim(t *testing.T, cfg sim.Config) (*sim.Sim, string) {
	t.Helper()
	if cfg.BankKeys == nil {
		bankKeys, err := keys.Generate("BANK", "SIMBANK", keys.Options{SelfSigned: true})
		if err != nil {
			t.Fatal(err)
		}
		cfg.BankKeys = bankKeys
	}
	cfg.HostID = "SIMBANK"
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	url, err := s.Start("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.AddSubscriber("P1", "U1")
	return s, url
}

// TestPluginProcessKill9 builds cmd/acquit-plugin-ebics, onboards through
// it, SIGKILLs the plugin process in the middle of a multi-segment upload,
// starts a new one on the same daemon state: exactly one order.
func TestPluginProcessKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the plugin executable")
	}
	dir := t.TempDir()
	bin := buildPlugin(t, dir)
	s, url := startSim(t, sim.Config{Faults: sim.Faults{NeverAck: true}})
	ah, eh := s.BankKeyHashes(protocol.H005)
	bs := ebics.BankSettings{URL: url, HostID: "SIMBANK", PartnerID: "P1", UserID: "U1", Profile: "v3", KeysPassphrase: "process passphrase",
		BankAuthHash: protocol.FormatHash(ah), BankEncHash: protocol.FormatHash(eh)}
	bs.Overrides.SegmentSize = 2000
	settings, _ := json.Marshal(ebics.Settings{WorkDir: dir, Banks: map[string]ebics.BankSettings{"sim": bs}})
	host := plugintest.NewMemHost() // the daemon's store: survives the plugin
	ctx := context.Background()
	tr, pc := startPlugin(t, bin)
	if err := tr.Configure(ctx, settings, host); err != nil {
		t.Fatal(err)
	}
	info, err := tr.Describe(ctx)
	if err != nil || info.Name != "ebics" || info.Kind != sdk.KindBankTransport {
		t.Fatalf("%+v %v", info, err)
	}
	for _, a := range []sdk.KeyAction{sdk.KeyInit, sdk.KeySend, sdk.KeyFetchBankKeys} {
		if _, err := tr.Keys(ctx, sdk.KeyRequest{Bank: "sim", Action: a}); err != nil {
			t.Fatalf("%s: %v", a, err)
		}
	}
	file := filepath.Join(dir, "big.xml")
	f, _ := os.Create(file)
	painfile.Generate(f, painfile.GenOptions{MsgID: "PROC-1", N: 1500, Seed: 11, Debtor: "ACME", Date: time.Now()})
	f.Close()
	req := sdk.UploadRequest{Bank: "sim", TransmissionID: "proc-1", Function: "sct", Path: file}
	s.SetFaults(sim.Faults{NeverAck: true, RequestDelay: 30 * time.Millisecond})
	killed := make(chan struct{})
	base := s.Requests()
	go func() {
		defer close(killed)
		for s.Requests() < base+4 { // init + 3 segments (of 20+)
			time.Sleep(2 * time.Millisecond)
		}
		if p := pc.ReattachConfig(); p != nil && p.Pid > 0 {
			syscall.Kill(p.Pid, syscall.SIGKILL)
		}
	}()
	if _, err := tr.Upload(ctx, req, nil); err == nil {
		t.Fatal("upload survived the kill")
	}
	<-killed
	if n := len(s.Orders()); n != 0 {
		t.Fatalf("%d orders after the kill", n)
	}
	s.SetFaults(sim.Faults{NeverAck: true})
	tr2, _ := startPlugin(t, bin)
	if err := tr2.Configure(ctx, settings, host); err != nil {
		t.Fatal(err)
	}
	res, err := tr2.Upload(ctx, req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Resumed || res.Segments < 20 || res.Details["msg_id"] != "PROC-1" {
		t.Fatalf("%+v", res)
	}
	if o := s.Orders(); len(o) != 1 || o[0].OrderID != res.OrderID {
		t.Fatalf("bank has %d orders", len(o))
	}
}
