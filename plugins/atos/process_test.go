package atos_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"

	"github.com/acquit/acquit/plugins/atos/sim"
	"github.com/acquit/acquit/sdk"
	"github.com/acquit/acquit/sdk/pluginrpc"
	"github.com/acquit/acquit/sdk/plugintest"
)

// TestPluginProcess builds the real plugin executable, starts it through
// go-plugin as the daemon does, pays through the simulator with every
// call crossing the process boundary, then kills the process with SIGKILL
// and checks the daemon side sees it as unavailable.
func TestPluginProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the plugin executable")
	}
	bin := filepath.Join(t.TempDir(), "acquit-plugin-atos")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, "./cmd/acquit-plugin-atos")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("go build: %v", err)
	}
	// The plugin's socket goes in the test's own folder, not the system
	// temporary directory (go-plugin tells the plugin only with a RunnerFunc).
	sockDir := t.TempDir()
	cmd := exec.Command(bin)
	cmd.Env = []string{plugin.EnvUnixSocketDir + "=" + sockDir}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  pluginrpc.Handshake,
		Plugins:          pluginrpc.PluginMap(),
		Cmd:              cmd,
		UnixSocketConfig: &plugin.UnixSocketConfig{TempDir: sockDir},
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		StartTimeout:     30 * time.Second,
		Logger:           hclog.NewNullLogger(),
	})
	defer client.Kill()
	rpc, err := client.Client()
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	raw, err := rpc.Dispense(pluginrpc.PluginNameGateway)
	if err != nil {
		t.Fatal(err)
	}
	gw, ok := raw.(sdk.PaymentGateway)
	if !ok {
		t.Fatalf("dispensed %T", raw)
	}
	ctx := context.Background()
	info, err := gw.Describe(ctx)
	if err != nil || info.Name != "atos" || info.Kind != sdk.KindPaymentGateway {
		t.Fatalf("Describe: %+v %v", info, err)
	}
	s := startSim(t, sim.Config{})
	host := plugintest.NewMemHost()
	if err := gw.Configure(ctx, settings(t, s.URL(), func(m map[string]any) { m["reference_style"] = "s10"; m["encode"] = "base64" }), host); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	sh := newShop(t, gw)
	init, err := gw.InitPayment(ctx, sh.request("P1"))
	if err != nil {
		t.Fatal(err)
	}
	if init.Reference != "000001" { // drawn from the host's sequence, over the wire
		t.Fatalf("s10 id %q", init.Reference)
	}
	b := sim.NewBrowser()
	m, err := b.Pay(ctx, init.Method, init.RedirectURL, init.Fields, sim.Choice{Outcome: "accepted"})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := b.Return(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	waitSim(t, s)
	if got := sh.results("000001"); len(got) != 2 || got[0].res.Outcome != sdk.OutcomeAccepted || got[1].res.Outcome != sdk.OutcomeAccepted {
		t.Fatalf("results %+v, rejects %v", got, sh.rejects)
	}
	q, err := gw.QueryTransaction(ctx, sdk.TransactionQuery{Reference: init.Reference, TransactionDate: init.TransactionDate})
	if err != nil || q.Outcome != sdk.OutcomeAccepted {
		t.Fatalf("QueryTransaction: %+v %v", q, err)
	}
	// A forged notification keeps its reject code across the wire.
	_, err = gw.VerifyNotification(ctx, sdk.Notification{Method: "POST", Body: []byte("Data=amount%3D1&Seal=00")})
	var rej *sdk.RejectError
	if !errors.As(err, &rej) || rej.Code == "" {
		t.Fatalf("forged over the wire: %v", err)
	}
	// kill -9 the plugin: calls fail as unavailable, nothing hangs.
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Wait()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = gw.VerifyNotification(cctx, sdk.Notification{Method: "POST", Body: []byte(m.Fields.Encode())})
	var re *pluginrpc.RemoteError
	if err == nil || (errors.As(err, &re) && !re.Unavailable()) {
		t.Fatalf("after SIGKILL: %v", err)
	}
}
