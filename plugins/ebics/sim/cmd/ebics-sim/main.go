// Command ebics-sim runs the EBICS bank simulator on loopback.
//
//	ebics-sim -addr 127.0.0.1:8090 -host SIMBANK -subscriber PARTNER1/USER1 [-certs] [-manual]
//	          [-segment-size 1048576] [-reject-file] [-reject-tx E2E1,E2E2] [-never-ack] [-ack-delay 30s]
//	          [-drop-at N] [-drop-after N] [-internal-error-at N] [-recovery-sync-at N]
//	          [-xsd DIR|off] [-capture DIR] [-tx-timeout 10m] [-es-raw-digest] [-cpuprofile FILE]
//
// Every request is validated against the official EBICS schemas with
// xmllint (-xsd, default $EBICS_XSD_DIR or shared/fixtures/ebics/ebics-xsd
// in the working directory or an ancestor); -capture writes every request
// and response to a folder.
//
// Admin endpoints on the same port: POST /admin/activate?partner=P&user=U
// (with -manual: the bank has checked the letter), GET /admin/orders (what
// the bank recorded, JSON), POST /admin/documents?partner=P&kind=PSR&format=F
// (offers the request body for download; answers its id), GET
// /admin/documents (the documents offered and whether each was delivered).
//
// It prints the EBICS URL and the bank key hashes (for H004 and H005) to
// put in the plugin settings, then serves until interrupted.
package main

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/acquit/acquit/plugins/ebics/protocol"
	"github.com/acquit/acquit/plugins/ebics/sim"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address (loopback)")
	host := flag.String("host", "SIMBANK", "EBICS HostID")
	var subs multi
	flag.Var(&subs, "subscriber", "PARTNER/USER known to the bank (repeatable)")
	certs := flag.Bool("certs", false, "require X.509 certificates in INI/HIA (French banks, 091217)")
	manual := flag.Bool("manual", false, "leave subscribers initialised after INI+HIA until POST /admin/activate?partner=P&user=U")
	seg := flag.Int("segment-size", 1<<20, "largest accepted upload segment (base64 bytes)")
	dseg := flag.Int("download-segment-size", 1<<20, "download segment size")
	rejectFile := flag.Bool("reject-file", false, "reject every uploaded file")
	rejectTx := flag.String("reject-tx", "", "comma-separated EndToEndIds to reject")
	neverAck := flag.Bool("never-ack", false, "never produce acknowledgements")
	ackDelay := flag.Duration("ack-delay", 0, "delay acknowledgements")
	dropAt := flag.Int("drop-at", 0, "drop the connection when upload segment N arrives (once)")
	dropAfter := flag.Int("drop-after", 0, "store upload segment N then drop the connection (once)")
	ierr := flag.Int("internal-error-at", 0, "answer 061099 to upload segment N (once)")
	rsync := flag.Int("recovery-sync-at", 0, "answer 061101 EBICS_TX_RECOVERY_SYNC to upload segment N (once)")
	letterDir := flag.String("letter", "", "folder where the bank writes its letter: the hashes of its keys, one file each (H004.auth, H004.enc, H005.auth, H005.enc)")
	xsd := flag.String("xsd", "", "folder with the EBICS schemas (H004/, H005/); \"off\" disables validation")
	capture := flag.String("capture", "", "write every request and response to this folder")
	txTimeout := flag.Duration("tx-timeout", 10*time.Minute, "expire idle transactions after this long (negative: never)")
	raw := flag.Bool("es-raw-digest", false, "hash order data as received for the ES (default: without CR, LF and Ctrl-Z, as the specification says)")
	spool := flag.String("spool", "", "write the decoded order data to files in this folder, not memory (orders of any size)")
	maxOrder := flag.Int64("max-order-size", 512<<20, "largest decompressed order data accepted (bytes)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile (pprof) to this file until interrupted")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "cpuprofile:", err)
			os.Exit(1)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	log := zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.RFC3339}).With().Timestamp().Logger()
	var rej []string
	if *rejectTx != "" {
		rej = strings.Split(*rejectTx, ",")
	}
	s, err := sim.New(sim.Config{HostID: *host, MaxSegmentSize: *seg, DownloadSegmentSize: *dseg, RequireCertificates: *certs, ManualActivation: *manual, Admin: true,
		SchemaDir: *xsd, CaptureDir: *capture, TxTimeout: *txTimeout, ESRawDigest: *raw,
		SpoolDir: *spool, MaxOrderSize: *maxOrder,
		Logger: log, Faults: sim.Faults{RejectFile: *rejectFile, RejectTxs: rej, NeverAck: *neverAck, AckDelay: *ackDelay,
			DropAtSegment: *dropAt, DropAfterSegment: *dropAfter, InternalErrorAtSegment: *ierr, RecoverySyncAtSegment: *rsync}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if len(subs) == 0 {
		subs = multi{"PARTNER1/USER1"}
	}
	for _, sub := range subs {
		p, u, ok := strings.Cut(sub, "/")
		if !ok {
			fmt.Fprintf(os.Stderr, "bad -subscriber %q (want PARTNER/USER)\n", sub)
			os.Exit(2)
		}
		s.AddSubscriber(p, u)
	}
	url, err := s.Start(*addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("url: %s\nhost_id: %s\n", url, *host)
	for _, v := range []protocol.Version{protocol.H004, protocol.H005} {
		a, e := s.BankKeyHashes(v)
		fmt.Printf("%s bank_auth_hash: %q\n%s bank_enc_hash: %q\n", v, oneLine(protocol.FormatHash(a)), v, oneLine(protocol.FormatHash(e)))
		if *letterDir != "" {
			if err := os.MkdirAll(*letterDir, 0o755); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			for ext, h := range map[string][]byte{"auth": a, "enc": e} {
				p := filepath.Join(*letterDir, string(v)+"."+ext)
				if err := os.WriteFile(p, []byte(hex.EncodeToString(h)+"\n"), 0o644); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
			}
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	<-ctx.Done()
	s.Close()
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }
