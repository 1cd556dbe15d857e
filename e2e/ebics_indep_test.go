package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/acquit/acquit/daemon/transmissions"
	"github.com/acquit/acquit/internal/demo"
	"github.com/acquit/acquit/plugins/ebics/indep"
	"github.com/acquit/acquit/plugins/ebics/protocol"
	"github.com/acquit/acquit/plugins/ebics/sim"
)

var rootRe = regexp.MustCompile(`<(?:[A-Za-z_][\w.-]*:)?(ebics[A-Za-z]+)[\s>]`)

// rootOf is the local name of a captured message's root element.
func rootOf(b []byte) string {
	if m := rootRe.FindSubmatch(b); m != nil {
		return string(m[1])
	}
	return ""
}

// TestEbicsIndependentVerification runs each profile through the real
// daemon, plugin process and simulator (onboarding, a multi-segment upload,
// multi-segment acknowledgement downloads) with the simulator capturing
// every message, then checks all of them with implementations acquit did
// not write: every signed request the client sent and every response the
// bank sent with xmlsec1 (X002: #xpointer, C14N, RSA-SHA256), every order
// signature the bank recorded with openssl (A005/A006). Messages EBICS
// leaves unsigned (HEV, INI/HIA, key management responses) are checked to be
// exactly those.
func TestEbicsIndependentVerification(t *testing.T) {
	if err := indep.Require(); err != nil {
		t.Fatal(err)
	}
	for _, profile := range []string{"fr", "de", "v3"} {
		t.Run(profile, func(t *testing.T) {
			h := newHarness(t)
			capture := filepath.Join(t.TempDir(), "capture")
			s, _ := startEbicsBank(t, h, profile, 1024, sim.Config{CaptureDir: capture, DownloadSegmentSize: 256})
			if !s.ValidatesSchema() {
				t.Fatalf("the simulator found no EBICS schemas or no xmllint: requests would not be validated")
			}
			tp := h.Template()
			tp.FetchEvery = "@every 1h" // the test fetches
			c := ctx(t)
			if err := h.Start(c); err != nil {
				t.Fatal(err)
			}
			if err := demo.Onboard(c, h, ebicsBank); err != nil {
				t.Fatal(err)
			}
			path, _, err := demo.GenerateFile(filepath.Join(h.Dir, "files"), "INDEP-"+strings.ToUpper(profile), 60, 7)
			if err != nil {
				t.Fatal(err)
			}
			tr, err := demo.Upload(c, h, ebicsBank, path)
			if err != nil {
				t.Fatal(err)
			}
			s.WaitAcks()
			d := waitStateFetching(t, h, tr.ID, 90*time.Second, transmissions.StateAccepted)
			if n := segmentsOf(d); n < 2 {
				t.Errorf("upload in %d segment(s), want several", n)
			}
			if err := h.Stop(); err != nil {
				t.Fatalf("SIGTERM: %v", err)
			}

			_, authPub, _ := s.SubscriberKeys(ebicsPartner, ebicsUser)
			sigPub, _, _ := s.SubscriberKeys(ebicsPartner, ebicsUser)
			bankAuth, _ := s.BankPublicKeys()
			files, err := filepath.Glob(filepath.Join(capture, "*.xml"))
			if err != nil || len(files) == 0 {
				t.Fatalf("nothing captured in %s (%v)", capture, err)
			}
			sort.Strings(files)
			var signedReq, signedResp, unsigned, multiDown int
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				name, root := filepath.Base(f), rootOf(b)
				isReq := strings.HasSuffix(name, "-request.xml")
				hasSig := bytes.Contains(b, []byte("AuthSignature"))
				switch {
				case root == "ebicsHEVRequest", root == "ebicsHEVResponse", root == "ebicsUnsecuredRequest", root == "ebicsKeyManagementResponse":
					if hasSig {
						t.Errorf("%s: %s carries an AuthSignature", name, root)
					}
					unsigned++
					continue
				case !hasSig:
					t.Errorf("%s: %s without AuthSignature", name, root)
					continue
				}
				key := bankAuth
				if isReq {
					key = authPub.Key
				}
				if err := indep.VerifyX002(b, key); err != nil {
					t.Errorf("%s (%s): xmlsec1: %v", name, root, err)
					continue
				}
				if isReq {
					signedReq++
				} else {
					signedResp++
					if r, _, err := protocol.ParseResponse(b, 16<<20); err == nil && r.NumSegments > 1 && r.TransactionKey != nil {
						multiDown++
					}
				}
			}
			if multiDown == 0 {
				t.Errorf("no multi-segment download in the run (DownloadSegmentSize too large for the test)")
			}

			orders := s.Orders()
			if len(orders) != 1 {
				t.Fatalf("bank recorded %d orders, want 1", len(orders))
			}
			for _, o := range orders {
				if o.SignatureVersion != sigPub.Version {
					t.Errorf("order %s signed %s, the INI key is %s", o.OrderID, o.SignatureVersion, sigPub.Version)
				}
				// The profiles keep the default rule: CR, LF and Ctrl-Z are
				// left out of the ES digest (the bank does the same).
				if err := indep.VerifyES(o.SignatureVersion, sigPub.Key, indep.StripCRLFEOF(o.Data), o.Signature); err != nil {
					t.Errorf("order %s: openssl refuses the %s signature: %v", o.OrderID, o.SignatureVersion, err)
				}
			}
			t.Logf("%s: %d messages captured; xmlsec1 verified %d requests and %d responses (%d multi-segment download initialisations), %d unsigned by design; %d order signature(s) verified with openssl",
				profile, len(files), signedReq, signedResp, multiDown, unsigned, len(orders))
		})
	}
}
