package client_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/acquit/acquit/plugins/ebics/client"
	"github.com/acquit/acquit/plugins/ebics/keys"
	"github.com/acquit/acquit/plugins/ebics/protocol"
	"github.com/acquit/acquit/plugins/ebics/sim"
	"github.com/acquit/acquit/sdk/plugintest"
)

// helperConfig is passed to the child process in EBICS_HELPER_CONFIG.
type helperConfig struct {
	Mode      string      `json:"mode"` // upload, download, download-crash-after-store
	Bank      client.Bank `json:"bank"`
	StateFile string      `json:"state_file"`
	KeysFile  string      `json:"keys_file"`
	WorkDir   string      `json:"work_dir"`
	File      string      `json:"file"`
	OutDir    string      `json:"out_dir"`
}

const helperPass = "kill test passphrase"

// TestHelperProcess is the "daemon" killed by TestKill9: it is not a test
// of its own and does nothing unless started by TestKill9.
func TestHelperProcess(t *testing.T) {
	raw := os.Getenv("EBICS_HELPER_CONFIG")
	if raw == "" {
		t.Skip("helper process for TestKill9")
	}
	var hc helperConfig
	if err := json.Unmarshal([]byte(raw), &hc); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	sealed, _ := os.ReadFile(hc.KeysFile)
	ks, err := keys.Open(sealed, []byte(helperPass))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	cl, err := client.New(hc.Bank, ks, plugintest.OpenFileHost(hc.StateFile), client.Options{WorkDir: hc.WorkDir, RetryWait: time.Millisecond})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	ctx := context.Background()
	switch hc.Mode {
	case "upload":
		res, err := cl.Upload(ctx, client.UploadSpec{ID: "KILL-1", Function: "sct", Path: hc.File})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(4)
		}
		json.NewEncoder(os.Stdout).Encode(res)
	default:
		d, err := cl.Download(ctx, "psr", time.Time{}, time.Time{})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(4)
		}
		if d == nil {
			fmt.Println("NODATA")
			os.Exit(0)
		}
		// Store durably and idempotently (by content hash), then confirm.
		dst := filepath.Join(hc.OutDir, d.SHA256+".xml")
		if _, err := os.Stat(dst); err != nil {
			tmp := dst + ".tmp"
			os.WriteFile(tmp, d.Content, 0o600)
			os.Rename(tmp, dst)
		}
		if hc.Mode == "download-crash-after-store" {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
		if err := cl.Receipt(ctx, d.TransactionID, true); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(4)
		}
		fmt.Println("STORED")
	}
	os.Exit(0)
}

// TestKill9 kills a real process with SIGKILL in the middle of a
// multi-segment upload and of a download; after restart the bank has
// exactly one order and the downloaded file is stored exactly once.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	for _, v := range []protocol.Version{protocol.H004, protocol.H005} {
		t.Run(string(v), func(t *testing.T) { kill9(t, v) })
	}
}

func kill9(t *testing.T, v protocol.Version) {
	e := newEnv(t, v, "", sim.Config{DownloadSegmentSize: 200}, false)
	dir := t.TempDir()
	stateFile := filepath.Join(dir, "state.json")
	fh := plugintest.OpenFileHost(stateFile)
	cl, err := client.New(e.bank, e.keys, fh, client.Options{WorkDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := cl.INI(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cl.HIA(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.HPB(ctx); err != nil {
		t.Fatal(err)
	}
	sealed, err := keys.Seal(e.keys, []byte(helperPass))
	if err != nil {
		t.Fatal(err)
	}
	keysFile := filepath.Join(dir, "keys.json")
	os.WriteFile(keysFile, sealed, 0o600)
	outDir := filepath.Join(dir, "out")
	os.Mkdir(outDir, 0o700)
	hc := helperConfig{Bank: e.bank, StateFile: stateFile, KeysFile: keysFile, WorkDir: dir, File: writePain(t, dir, "MSG-KILL", 300), OutDir: outDir}
	start := func(mode string) (*exec.Cmd, *bytes.Buffer) {
		hc.Mode = mode
		raw, _ := json.Marshal(hc)
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
		cmd.Env = append(os.Environ(), "EBICS_HELPER_CONFIG="+string(raw))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, &out
	}
	killWhen := func(cmd *exec.Cmd, out *bytes.Buffer, cond func() bool) {
		exited := make(chan struct{})
		go func() { cmd.Process.Wait(); close(exited) }()
		deadline := time.Now().Add(60 * time.Second)
		for !cond() {
			select {
			case <-exited:
				t.Fatalf("helper exited before the kill: %s", out)
			default:
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatalf("condition never met: %s", out)
			}
			time.Sleep(5 * time.Millisecond)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		<-exited
	}
	// --- upload, killed after 3 segments are persisted
	e.sim.SetFaults(sim.Faults{RequestDelay: 20 * time.Millisecond, NeverAck: true})
	cmd, out := start("upload")
	killWhen(cmd, out, func() bool {
		b, _ := os.ReadFile(stateFile)
		return bytes.Contains(b, []byte("upload/KILL-1")) && uploadSegmentsDone(b) >= 3
	})
	if n := len(e.sim.Orders()); n != 0 {
		t.Fatalf("%d orders after the kill", n)
	}
	e.sim.SetFaults(sim.Faults{NeverAck: true})
	cmd, out = start("upload")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("restart: %v\n%s", err, out)
	}
	var res client.UploadResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || !res.Resumed {
		t.Fatalf("restart output: %s", out)
	}
	orig, _ := os.ReadFile(hc.File)
	if o := e.sim.Orders(); len(o) != 1 || !bytes.Equal(o[0].Data, orig) || o[0].OrderID != res.OrderID {
		t.Fatalf("bank has %d orders", len(o))
	}
	// --- download, killed mid-transfer, then after storing before the receipt
	rnd := make([]byte, 3000)
	rand.Read(rnd)
	content := []byte("<Document>" + hex.EncodeToString(rnd) + "</Document>")
	e.sim.AddDocument("PARTNER1", "PSR", "pain.002.001.03", content)
	e.sim.SetFaults(sim.Faults{RequestDelay: 20 * time.Millisecond})
	before := e.sim.Requests()
	cmd, out = start("download")
	killWhen(cmd, out, func() bool { return e.sim.Requests() >= before+4 })
	e.sim.SetFaults(sim.Faults{})
	e.sim.ExpireTransactions() // the bank's transaction timeout
	cmd, out = start("download-crash-after-store")
	if err := cmd.Wait(); err == nil {
		t.Fatalf("helper should have killed itself: %s", out)
	}
	e.sim.ExpireTransactions()
	cmd, out = start("download")
	if err := cmd.Wait(); err != nil || !strings.Contains(out.String(), "STORED") {
		t.Fatalf("final download: %v %s", err, out)
	}
	cmd, out = start("download")
	if err := cmd.Wait(); err != nil || !strings.Contains(out.String(), "NODATA") {
		t.Fatalf("after receipt: %v %s", err, out)
	}
	files, _ := filepath.Glob(filepath.Join(outDir, "*.xml"))
	if len(files) != 1 {
		t.Fatalf("%d files stored", len(files))
	}
	if got, _ := os.ReadFile(files[0]); !bytes.Equal(got, content) {
		t.Fatal("stored file differs")
	}
}

func uploadSegmentsDone(state []byte) int {
	var st struct {
		Vals map[string][]byte `json:"vals"`
	}
	if json.Unmarshal(state, &st) != nil {
		return 0
	}
	for k, v := range st.Vals {
		if strings.HasSuffix(k, "upload/KILL-1") {
			var u struct {
				SegmentsDone int `json:"segments_done"`
			}
			json.Unmarshal(v, &u)
			return u.SegmentsDone
		}
	}
	return 0
}
