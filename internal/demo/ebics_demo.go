package demo

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/daemon/transmissions"
	"github.com/acquit/acquit/internal/painfile"
	"github.com/acquit/acquit/plugins/ebics/protocol"
	"github.com/acquit/acquit/plugins/ebics/sim"
	"github.com/acquit/acquit/sdk"
)

const (
	demoBank    = "demobank"
	demoHost    = "ACQUITSIM"
	demoPartner = "ACME0001"
	demoUser    = "TREAS01"
)

type ebicsDemo struct {
	sim *sim.Sim
	o   Options
	dir string
}

// SetupEbics starts the EBICS bank simulator and configures the EBICS
// plugin and the bank in the harness (profile: fr, de or v3). The bank key
// hashes come from the simulator, as a treasurer copies them from the
// bank's letter.
func SetupEbics(h *Harness, profile string, segmentSize int) (*sim.Sim, error) {
	s, err := sim.New(sim.Config{HostID: demoHost, RequireCertificates: profile != "de"})
	if err != nil {
		return nil, err
	}
	url, err := s.Start("127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.AddSubscriber(demoPartner, demoUser)
	v := protocol.Version("H004")
	if profile == "v3" {
		v = protocol.Version("H005")
	}
	ah, eh := s.BankKeyHashes(v)
	if err := h.WriteSecret("ebics-pass", "demo passphrase for the EBICS keys"); err != nil {
		s.Close()
		return nil, err
	}
	h.Template().Ebics = &EbicsData{URL: url, HostID: demoHost, PartnerID: demoPartner, UserID: demoUser, PassFile: h.SecretPath("ebics-pass"),
		Profile: profile, SegmentSize: segmentSize, AuthHash: protocol.FormatHash(ah), EncHash: protocol.FormatHash(eh), BankName: demoBank,
		AckKinds: "[psr, hac, ptk]", PTKProfile: "en"}
	if profile == "v3" {
		h.Template().Ebics.AckKinds = "[psr, hac]" // EBICS 3.0 has no PTK
	}
	return s, nil
}

func setupEbics(ctx context.Context, h *Harness, o Options) (*ebicsDemo, error) {
	s, err := SetupEbics(h, "de", 32<<10)
	if err != nil {
		return nil, err
	}
	h.Template().AckDeadline = "20s"
	return &ebicsDemo{sim: s, o: o, dir: filepath.Join(h.Dir, "files")}, nil
}

func (e *ebicsDemo) close() { _ = e.sim.Close() }

// Onboard runs the key steps a treasurer runs: init, send (INI+HIA),
// fetch-bank-keys (HPB, checked against the configured hashes).
func Onboard(ctx context.Context, h *Harness, bank string) error {
	for _, action := range []sdk.KeyAction{sdk.KeyInit, sdk.KeySend, sdk.KeyFetchBankKeys, sdk.KeyStatus} {
		var res sdk.KeyResult
		if _, err := h.Client().Do(ctx, "POST", "/v1/banks/"+bank+"/keys", sdk.KeyRequest{Action: action}, &res); err != nil {
			return fmt.Errorf("ebics keys %s: %w", action, err)
		}
		if action == sdk.KeyStatus && res.Status != "ready" {
			return fmt.Errorf("ebics keys status: %s", res.Status)
		}
	}
	return nil
}

// Upload sends a file through the daemon's admin API and waits for the
// upload to finish.
func Upload(ctx context.Context, h *Harness, bank, path string) (*transmissions.Transmission, error) {
	var out struct {
		Transmission transmissions.Transmission `json:"transmission"`
		Error        string                     `json:"error"`
	}
	if _, err := h.Client().Do(ctx, "POST", "/v1/transmissions", transmissions.UploadRequest{Bank: bank, Path: path, Wait: true}, &out); err != nil {
		return nil, err
	}
	if out.Error != "" {
		return &out.Transmission, fmt.Errorf("upload %s: %s", filepath.Base(path), out.Error)
	}
	return &out.Transmission, nil
}

// GenerateFile writes a pain.001 with n transfers and returns its path and
// the EndToEndIds of its first k transactions.
func GenerateFile(dir, msgID string, n int, seed uint64) (string, []string, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", nil, err
	}
	path := filepath.Join(dir, msgID+".xml")
	f, err := os.Create(path)
	if err != nil {
		return "", nil, err
	}
	if _, err := painfile.Generate(f, painfile.GenOptions{MsgID: msgID, N: n, Seed: seed, Date: time.Now()}); err != nil {
		f.Close()
		return "", nil, err
	}
	if err := f.Close(); err != nil {
		return "", nil, err
	}
	var e2e []string
	for i := 1; i <= n; i++ {
		e2e = append(e2e, fmt.Sprintf("%s-E%d", msgID, i))
	}
	return path, e2e, nil
}

// WaitState waits until a transmission reaches one of states.
func WaitState(ctx context.Context, h *Harness, id string, d time.Duration, states ...transmissions.State) (*transmissions.Detail, error) {
	deadline := time.Now().Add(d)
	var last transmissions.Detail
	for time.Now().Before(deadline) {
		if _, err := h.Client().Do(ctx, "GET", "/v1/transmissions/"+id, nil, &last); err == nil {
			for _, s := range states {
				if last.State == s {
					return &last, nil
				}
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	return &last, fmt.Errorf("transmission %s is %s after %s, want %v", id, last.State, d, states)
}

func (e *ebicsDemo) run(ctx context.Context, h *Harness, out io.Writer) error {
	n := e.o.Transfers
	fmt.Fprintf(out, "4. EBICS: onboarding with the bank simulator (INI, HIA, HPB checked against the bank's letter)\n")
	if err := Onboard(ctx, h, demoBank); err != nil {
		return err
	}
	type plan struct {
		name   string
		faults sim.Faults
		want   transmissions.State
		what   string
	}
	p1, e2e1, err := GenerateFile(e.dir, "DEMO-PAY-1", n, e.o.Seed+11)
	if err != nil {
		return err
	}
	rejected := []string{e2e1[41], e2e1[1234%n], e2e1[n-1]}
	p2, _, err := GenerateFile(e.dir, "DEMO-PAY-2", n, e.o.Seed+12)
	if err != nil {
		return err
	}
	p3, _, err := GenerateFile(e.dir, "DEMO-PAY-3", n, e.o.Seed+13)
	if err != nil {
		return err
	}
	plans := []struct {
		path   string
		faults sim.Faults
		want   transmissions.State
		what   string
	}{
		{p1, sim.Faults{RejectTxs: rejected}, transmissions.StatePartial, "bank rejects 3 transactions"},
		{p2, sim.Faults{RejectFile: true}, transmissions.StateRejected, "bank rejects the whole file"},
		{p3, sim.Faults{NeverAck: true}, transmissions.StateUnacknowledged, "bank never acknowledges"},
	}
	var ids []string
	for _, pl := range plans {
		e.sim.SetFaults(pl.faults)
		fi, _ := os.Stat(pl.path)
		start := time.Now()
		t, err := Upload(ctx, h, demoBank, pl.path)
		if err != nil {
			return err
		}
		var segs float64
		if d, ok := detailSegments(ctx, h, t.ID); ok {
			segs = d
		}
		fmt.Fprintf(out, "   uploaded %s: %d transfers, %d KiB, %.0f segments, order %s, in %s (%s)\n", filepath.Base(pl.path), n, fi.Size()>>10,
			segs, t.OrderID, time.Since(start).Round(time.Millisecond), pl.what)
		e.sim.WaitAcks()
		ids = append(ids, t.ID)
	}
	e.sim.SetFaults(sim.Faults{})
	fmt.Fprintf(out, "   the fetch-acks schedule downloads PSR, HAC and PTK every 2s; the unacknowledged alarm fires after 20s...\n")
	ok := true
	for i, pl := range plans {
		d, err := WaitState(ctx, h, ids[i], 90*time.Second, pl.want)
		if err != nil {
			return err
		}
		rej := 0
		var lines []string
		for _, x := range d.Rejected {
			if x.Status == "RJCT" {
				rej++
				if len(lines) < 3 {
					lines = append(lines, fmt.Sprintf("%s %s %s %s (%s)", x.EndToEndID, x.Amount, x.Currency, x.ReasonCode, x.ReasonText))
				}
			}
		}
		fmt.Fprintf(out, "   %s -> %s, %d transactions rejected\n", filepath.Base(pl.path), d.State, rej)
		for _, l := range lines {
			fmt.Fprintf(out, "      rejected: %s\n", l)
		}
		if i == 0 && rej != 3 {
			ok = false
		}
	}
	if err := waitIdle(ctx, h, time.Minute); err != nil {
		return err
	}
	counts := map[string]int{}
	for _, typ := range []string{"transmission.submitted", "transmission.accepted", "transmission.partially_accepted", "transmission.rejected", "transmission.unacknowledged", "ack.unmatched"} {
		var evs []store.Event
		if _, err := h.Client().Do(ctx, "GET", "/v1/events?limit=10000&state=delivered&type="+typ, nil, &evs); err != nil {
			return err
		}
		// Files, not events: a rejection first announced without its
		// transactions (PTK/HAC before the PSR) is announced again with
		// them (update), by design.
		files := map[string]bool{}
		for _, ev := range evs {
			files[ev.Subject] = true
		}
		counts[typ] = len(files)
	}
	var keys []string
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(out, "   %-34s %s\n", "hook event", "files it was delivered for")
	for _, k := range keys {
		fmt.Fprintf(out, "   %-34s %d\n", k, counts[k])
	}
	orders := e.sim.Orders()
	fmt.Fprintf(out, "   orders recorded by the bank: %d (one per file)\n\n", len(orders))
	if !ok || len(orders) != 3 || counts["transmission.partially_accepted"] != 1 || counts["transmission.rejected"] != 1 || counts["transmission.unacknowledged"] != 1 {
		return fmt.Errorf("ebics: unexpected outcome (%v, %d orders)", counts, len(orders))
	}
	return nil
}

func detailSegments(ctx context.Context, h *Harness, id string) (float64, bool) {
	var d struct {
		Details map[string]any `json:"details"`
	}
	if _, err := h.Client().Do(ctx, "GET", "/v1/transmissions/"+id, nil, &d); err != nil {
		return 0, false
	}
	v, ok := d.Details["segments"].(float64)
	return v, ok
}

var _ = strings.TrimSpace
