package pluginhost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/acquit/acquit/plugins/testplugin"
	"github.com/acquit/acquit/sdk"
)

func transportSpec(name, bank string, envv ...string) Spec {
	return Spec{Name: name, Path: pluginPath, Kind: sdk.KindBankTransport,
		Settings: []byte(`{"bank_dir":` + strconv.Quote(bank) + `}`),
		Env:      append([]string{testplugin.EnvServe + "=transport"}, envv...)}
}

// TestTransportProcess: the transport handle against a real process:
// streamed upload progress, idempotence across a plugin crash (the state
// is in the daemon), download, confirm, keys.
func TestTransportProcess(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, func(o *Options) { o.BackoffMin = 100 * time.Millisecond })
	bank := t.TempDir()
	if err := e.m.Start(ctx, transportSpec("ebics", bank, testplugin.EnvCrashOn+"=Keys")); err != nil {
		t.Fatal(err)
	}
	tr, err := e.m.Transport("ebics")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Gateway("ebics"); !errors.Is(err, ErrWrongKind) {
		t.Fatalf("Gateway on a transport: %v", err)
	}
	content := make([]byte, 10<<10+5)
	for i := range content {
		content[i] = byte(i)
	}
	file := filepath.Join(t.TempDir(), "pain.001.xml")
	if err := os.WriteFile(file, content, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	req := sdk.UploadRequest{Bank: "bnp", TransmissionID: "TR-1", Function: "sct", Path: file, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(content))}
	var progress []int64
	res, err := tr.Upload(ctx, req, func(sent, total int64) {
		if total != int64(len(content)) {
			t.Errorf("total %d", total)
		}
		progress = append(progress, sent)
	})
	if err != nil || res.OrderID != "T001" || res.Resumed {
		t.Fatalf("upload: %+v %v", res, err)
	}
	if len(progress) != 12 || progress[11] != int64(len(content)) {
		t.Fatalf("progress %v", progress)
	}
	if b, err := os.ReadFile(filepath.Join(bank, "outbox", "T001")); err != nil || len(b) != len(content) {
		t.Fatalf("bank got %d bytes, %v", len(b), err)
	}

	// Crash the plugin, wait for the restart: the same transmission is
	// recognised (the plugin's state lives in the daemon's store).
	if _, err := tr.Keys(ctx, sdk.KeyRequest{Bank: "bnp", Action: "status"}); err == nil {
		t.Fatal("Keys should have crashed the plugin")
	}
	waitFor(t, "restart", func() bool { st := e.status("ebics"); return st.State == StateUp && st.Restarts == 1 })
	res, err = tr.Upload(ctx, req, nil)
	if err != nil || res.OrderID != "T001" || !res.Resumed {
		t.Fatalf("upload after restart: %+v %v", res, err)
	}

	bad := req
	bad.TransmissionID, bad.Size = "TR-2", 1
	var rej *sdk.RejectError
	if _, err := tr.Upload(ctx, bad, nil); !errors.As(err, &rej) || rej.Code != "checksum_mismatch" {
		t.Fatalf("bad upload: %v", err)
	}

	dl, err := tr.Download(ctx, sdk.DownloadRequest{Bank: "bnp", Function: "psr"})
	if err != nil || !dl.NoData {
		t.Fatalf("empty download: %+v %v", dl, err)
	}
	if err := os.WriteFile(filepath.Join(bank, "inbox", "psr-1.xml"), []byte("<pain.002/>"), 0o600); err != nil {
		t.Fatal(err)
	}
	dl, err = tr.Download(ctx, sdk.DownloadRequest{Bank: "bnp", Function: "psr"})
	if err != nil || dl.NoData || len(dl.Documents) != 1 || string(dl.Documents[0].Content) != "<pain.002/>" {
		t.Fatalf("download: %+v %v", dl, err)
	}
	if err := tr.Confirm(ctx, "bnp", dl.Documents[0].DownloadID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(bank, "inbox", "done", "psr-1.xml")); err != nil {
		t.Fatalf("confirmed download not moved: %v", err)
	}
}

// TestCrashAfterCalls: a plugin dying after N calls is restarted each time
// and keeps serving.
func TestCrashAfterCalls(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, func(o *Options) { o.BackoffMin = 50 * time.Millisecond })
	if err := e.m.Start(ctx, gatewaySpec("crashy", testplugin.EnvCrashAfter+"=2")); err != nil {
		t.Fatal(err)
	}
	g, _ := e.m.Gateway("crashy")
	n := notification(t, "accepted.form")
	ok, failed := 0, 0
	for round := 0; round < 3; round++ {
		waitFor(t, "plugin up", func() bool { st := e.status("crashy"); return st.State == StateUp && st.Restarts == round })
		for i := 0; i < 3; i++ {
			_, err := g.VerifyNotification(ctx, n)
			var un *UnavailableError
			switch {
			case err == nil:
				ok++
			case errors.As(err, &un):
				failed++
			default:
				t.Fatalf("unexpected error: %v", err)
			}
			if err != nil {
				break
			}
		}
	}
	if ok != 6 || failed != 3 {
		t.Fatalf("%d calls served and %d failed, want 6 and 3", ok, failed)
	}
}
