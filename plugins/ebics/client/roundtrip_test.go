package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acquit/acquit/internal/painfile"
	"github.com/acquit/acquit/plugins/ebics/client"
	"github.com/acquit/acquit/plugins/ebics/keys"
	"github.com/acquit/acquit/plugins/ebics/protocol"
	"github.com/acquit/acquit/plugins/ebics/sim"
	"github.com/acquit/acquit/sdk/plugintest"
)

// Keys are expensive to generate: one set per version/mode, shared.
var (
	keyMu    sync.Mutex
	keyCache = map[string]*keys.Set{}
)

func testKeys(t testing.TB, partner, user string, certs bool, sigv string) *keys.Set {
	keyMu.Lock()
	defer keyMu.Unlock()
	id := fmt.Sprint(partner, user, certs, sigv)
	if k := keyCache[id]; k != nil {
		return k
	}
	k, err := keys.Generate(partner, user, keys.Options{SelfSigned: certs, SigVersion: sigv})
	if err != nil {
		t.Fatal(err)
	}
	keyCache[id] = k
	return k
}

type env struct {
	sim    *sim.Sim
	url    string
	host   *plugintest.MemHost
	bank   client.Bank
	keys   *keys.Set
	cl     *client.Client
	v      protocol.Version
	tmp    string
	prof   string
	simCfg sim.Config
}

func profileFor(v protocol.Version) string {
	if v == protocol.H005 {
		return "v3"
	}
	return "de"
}

// newEnv starts a sim and a client (onboarded unless raw is set).
func newEnv(t testing.TB, v protocol.Version, prof string, cfg sim.Config, onboard bool) *env {
	t.Helper()
	if prof == "" {
		prof = profileFor(v)
	}
	cfg.HostID = "SIMBANK"
	cfg.BankKeys = testKeys(t, "BANK", "SIMBANK", true, "A006")
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	url, err := s.Start("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	p, err := client.BuiltinProfile(prof)
	if err != nil {
		t.Fatal(err)
	}
	p.SegmentSize = 1000
	s.AddSubscriber("PARTNER1", "USER1")
	e := &env{sim: s, url: url, host: plugintest.NewMemHost(), v: v, tmp: t.TempDir(), prof: prof, simCfg: cfg}
	e.keys = testKeys(t, "PARTNER1", "USER1", p.CertMode != "none", p.SignatureVersion)
	ah, eh := s.BankKeyHashes(v)
	e.bank = client.Bank{Name: "sim", URL: url, HostID: "SIMBANK", PartnerID: "PARTNER1", UserID: "USER1", Profile: p,
		BankAuthHash: protocol.FormatHash(ah), BankEncHash: protocol.FormatHash(eh)}
	e.cl = e.newClient(t)
	if onboard {
		e.onboard(t)
	}
	return e
}

// onboard sends the client's keys (INI, HIA) and fetches the bank's (HPB).
func (e *env) onboard(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	if err := e.cl.INI(ctx); err != nil {
		t.Fatalf("INI: %v", err)
	}
	if err := e.cl.HIA(ctx); err != nil {
		t.Fatalf("HIA: %v", err)
	}
	if _, err := e.cl.HPB(ctx); err != nil {
		t.Fatalf("HPB: %v", err)
	}
}

func (e *env) newClient(t testing.TB) *client.Client {
	cl, err := client.New(e.bank, e.keys, e.host, client.Options{WorkDir: e.tmp, RetryWait: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func writePain(t testing.TB, dir, msgID string, n int) string {
	t.Helper()
	p := filepath.Join(dir, msgID+".xml")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := painfile.Generate(f, painfile.GenOptions{MsgID: msgID, N: n, PerPmt: 50, Seed: 7, Debtor: "ACME", Date: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRoundTrip(t *testing.T) {
	for _, v := range []protocol.Version{protocol.H004, protocol.H005} {
		t.Run(string(v), func(t *testing.T) {
			e := newEnv(t, v, "", sim.Config{DownloadSegmentSize: 101}, true)
			ctx := context.Background()
			if st := e.sim.State("PARTNER1", "USER1"); st != sim.StateReady {
				t.Fatalf("state %s", st)
			}
			hev, err := e.cl.HEV(ctx)
			if err != nil || hev["H004"] != "02.50" || hev["H005"] != "03.00" {
				t.Fatalf("HEV %v %v", hev, err)
			}
			path := writePain(t, e.tmp, "MSG-RT-"+string(v), 300)
			orig, _ := os.ReadFile(path)
			var progress int64
			res, err := e.cl.Upload(ctx, client.UploadSpec{ID: "T1", Function: "sct", Path: path, Progress: func(s, tot int64) { progress = s }})
			if err != nil {
				t.Fatalf("upload: %v", err)
			}
			if res.Segments < 5 {
				t.Fatalf("only %d segments; want >= 5", res.Segments)
			}
			if progress == 0 || res.OrderID == "" || res.TransactionID == "" || res.Details["msg_id"] != "MSG-RT-"+string(v) {
				t.Fatalf("result %+v", res)
			}
			if res.Details["msg_id"] == "" || res.Details["nb_of_txs"] == "" {
				t.Fatalf("details lack transactions: %v", res.Details)
			}
			orders := e.sim.Orders()
			if len(orders) != 1 || !bytes.Equal(orders[0].Data, orig) || orders[0].OrderID != res.OrderID {
				t.Fatalf("bank recorded %d orders", len(orders))
			}
			// Uploading again with the same id is idempotent.
			res2, err := e.cl.Upload(ctx, client.UploadSpec{ID: "T1", Function: "sct", Path: path})
			if err != nil || !res2.Resumed || res2.OrderID != res.OrderID || len(e.sim.Orders()) != 1 {
				t.Fatalf("second upload: %+v %v (orders %d)", res2, err, len(e.sim.Orders()))
			}
			e.sim.WaitAcks()
			// Acknowledgements, multi-segment download with receipt.
			d, err := e.cl.Download(ctx, "psr", time.Time{}, time.Time{})
			if err != nil || d == nil {
				t.Fatalf("download psr: %v %v", d, err)
			}
			if d.Segments < 2 {
				t.Fatalf("psr came in %d segment(s), want several", d.Segments)
			}
			if !bytes.Contains(d.Content, []byte("<GrpSts>ACCP</GrpSts>")) || !bytes.Contains(d.Content, []byte("MSG-RT-"+string(v))) {
				t.Fatalf("psr content: %s", d.Content)
			}
			// Not confirmed yet, transaction expired at the bank: delivered again.
			e.sim.ExpireTransactions()
			d2, err := e.cl.Download(ctx, "psr", time.Time{}, time.Time{})
			if err != nil || d2 == nil || d2.SHA256 != d.SHA256 {
				t.Fatalf("redelivery: %v %v", d2, err)
			}
			if err := e.cl.Receipt(ctx, d2.TransactionID, true); err != nil {
				t.Fatalf("receipt: %v", err)
			}
			if d3, err := e.cl.Download(ctx, "psr", time.Time{}, time.Time{}); err != nil || d3 != nil {
				t.Fatalf("after receipt: %v %v (want no data)", d3, err)
			}
			// By date range, delivered documents come again.
			today := time.Now().UTC()
			if d4, err := e.cl.Download(ctx, "psr", today.Add(-24*time.Hour), today); err != nil || d4 == nil {
				t.Fatalf("date range: %v %v", d4, err)
			}
			missing, err := e.cl.CheckProfile(ctx)
			if err != nil || len(missing) != 0 {
				t.Fatalf("profile check: %v %v", missing, err)
			}
			h, err := e.cl.Download(ctx, "hac", time.Time{}, time.Time{})
			if err != nil || h == nil || !bytes.Contains(h.Content, []byte("ORDER_HAC_FINAL_POS")) {
				t.Fatalf("hac: %v %v", h, err)
			}
		})
	}
}

func TestFrenchProfileFUL(t *testing.T) {
	e := newEnv(t, protocol.H004, "fr", sim.Config{RequireCertificates: true}, true)
	ctx := context.Background()
	path := writePain(t, e.tmp, "MSG-FR", 40)
	res, err := e.cl.Upload(ctx, client.UploadSpec{ID: "FR1", Function: "sct", Path: path})
	if err != nil {
		t.Fatal(err)
	}
	o := e.sim.Orders()
	if len(o) != 1 || o[0].OrderType != "FUL:pain.001.001.03" || o[0].OrderID != res.OrderID {
		t.Fatalf("orders %+v", o)
	}
	e.sim.WaitAcks()
	d, err := e.cl.Download(ctx, "ptk", time.Time{}, time.Time{})
	if err != nil || d == nil || !bytes.Contains(d.Content, []byte("Order completed (positive)")) {
		t.Fatalf("ptk %v %v", d, err)
	}
}

func TestCheckProfileMissing(t *testing.T) {
	cases := []struct {
		name string
		v    protocol.Version
		cfg  sim.Config
		want string
	}{
		{"h004 htd offered", protocol.H004, sim.Config{OrderTypes: []string{"CCT", "HAC", "PTK", "HTD"}},
			"mt940:STA (not offered),psr:Z01 (not offered),sdd:CDD (not offered),statement:C53 (not offered)"},
		{"h004 htd permitted", protocol.H004, sim.Config{Permitted: []string{"CCT", "CDD", "HAC", "PTK", "Z01", "C53"}}, "mt940:STA (not permitted)"},
		{"h004 haa fallback", protocol.H004, sim.Config{OrderTypes: []string{"CCT", "HAC", "PTK", "HAA"}}, "mt940:STA,psr:Z01,sdd:CDD,statement:C53"},
		{"h005 htd", protocol.H005, sim.Config{Services: []protocol.OrderParams{{ServiceName: "SCT", MsgName: "pain.001"}}},
			"psr:BTD PSR/pain.002 (not offered),sdd:BTU SDD/pain.008 (not offered),statement:BTD EOP/camt.053 (not offered)"},
		{"h005 permitted", protocol.H005, sim.Config{Permitted: []string{"SCT", "SDD", "PSR", "EOP"}}, "hac:HAC (not permitted)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, c.v, "", c.cfg, true)
			missing, err := e.cl.CheckProfile(context.Background())
			if err != nil || strings.Join(missing, ",") != c.want {
				t.Fatalf("got %q %v\nwant %q", strings.Join(missing, ","), err, c.want)
			}
		})
	}
}

func TestCertificatesRequired(t *testing.T) {
	// A French bank refuses keys without certificates: 091217.
	e := newEnv(t, protocol.H004, "de", sim.Config{RequireCertificates: true}, false)
	err := e.cl.INI(context.Background())
	if !protocol.HasCode(err, protocol.CodeOnlyX509) {
		t.Fatalf("want 091217, got %v", err)
	}
}

func TestWrongBankKeyHash(t *testing.T) {
	e := newEnv(t, protocol.H004, "", sim.Config{}, false)
	ctx := context.Background()
	if err := e.cl.INI(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.cl.HIA(ctx); err != nil {
		t.Fatal(err)
	}
	bad := e.bank
	bad.BankAuthHash = strings.Repeat("AB ", 32)
	cl, _ := client.New(bad, e.keys, e.host, client.Options{WorkDir: e.tmp})
	_, err := cl.HPB(ctx)
	var te *client.TrustError
	if !errors.As(err, &te) || te.Which != "authentication" {
		t.Fatalf("want TrustError, got %v", err)
	}
	// Nothing stored: an upload refuses to start.
	path := writePain(t, e.tmp, "MSG-X", 5)
	if _, err := cl.Upload(ctx, client.UploadSpec{ID: "X", Function: "sct", Path: path}); err == nil {
		t.Fatal("upload ran without trusted bank keys")
	}
	none := e.bank
	none.BankAuthHash, none.BankEncHash = "", ""
	cl2, _ := client.New(none, e.keys, e.host, client.Options{WorkDir: e.tmp})
	_, err = cl2.HPB(ctx)
	if !errors.As(err, &te) || !te.NotConfigured || te.BankAuthDigest == "" {
		t.Fatalf("want NotConfigured TrustError, got %v", err)
	}
	if len(e.sim.Orders()) != 0 {
		t.Fatal("orders recorded")
	}
}
